"""Multi-turn and tool-calling SFT samples: which turns keep their reasoning, which carry the loss.

The paper (Sec. 2):

* plain multi-turn chats: the ``<think>`` block of every *earlier* assistant turn is
  removed and only the *last* assistant turn is supervised;
* tool-calling chats: reasoning stays in every turn and *every* assistant turn is
  supervised.

Loss masks come from the tokenizer's own chat template, rendered incrementally: an
assistant turn's tokens are ``render(messages[:i+1])`` minus
``render(messages[:i], add_generation_prompt=True)``. That holds for any template whose
renderings are prefix-stable, which is checked on every sample rather than assumed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

THINK_BLOCK = re.compile(r"^\s*<think>(.*?)</think>(.*)$", re.DOTALL)


@dataclass(frozen=True)
class PreparedConversation:
    messages: list[dict[str, Any]]
    #: indices into ``messages`` of the assistant turns that carry the loss
    supervised_turns: tuple[int, ...]
    tool_calling: bool


@dataclass(frozen=True)
class TokenizedConversation:
    input_ids: list[int]
    loss_mask: list[int]


class ChatTemplateError(ValueError):
    """The chat template renders a conversation inconsistently with its own prefixes."""


def split_think(content: str) -> tuple[str | None, str]:
    """``(reasoning, answer)``; reasoning is ``None`` when the turn has no ``<think>`` block."""
    match = THINK_BLOCK.match(content)
    if match is None:
        return None, content
    return match.group(1), match.group(2)


def strip_think(content: str) -> str:
    """The turn as a later turn sees it: the answer only, without the reasoning block."""
    reasoning, answer = split_think(content)
    return content if reasoning is None else answer.lstrip("\n")


def is_tool_calling(sample: dict[str, Any]) -> bool:
    """A sample with declared tools, a tool turn, or structured tool calls."""
    if sample.get("tools"):
        return True
    return any(m.get("role") == "tool" or m.get("tool_calls") for m in sample.get("messages", ()))


def assistant_turns(messages: Sequence[dict[str, Any]]) -> list[int]:
    return [i for i, m in enumerate(messages) if m.get("role") == "assistant"]


def with_system_prompt(messages: list[dict[str, Any]], system_prompt: str | None) -> list[dict[str, Any]]:
    """``messages`` with ``system_prompt`` as the first turn, unless the conversation already has one."""
    if not system_prompt or (messages and messages[0].get("role") == "system"):
        return messages
    return [{"role": "system", "content": system_prompt}, *messages]


def prepare_conversation(sample: dict[str, Any]) -> PreparedConversation:
    """Apply the paper's multi-turn rules to ``sample["messages"]``."""
    messages = [dict(m) for m in sample["messages"]]
    turns = assistant_turns(messages)
    if not turns:
        raise ValueError("the conversation has no assistant turn to learn from")
    if turns[-1] != len(messages) - 1:
        raise ValueError("the conversation must end with an assistant turn (trailing non-assistant turns)")
    if is_tool_calling(sample):
        return PreparedConversation(messages, tuple(turns), tool_calling=True)
    for index in turns[:-1]:
        messages[index]["content"] = strip_think(messages[index].get("content") or "")
    return PreparedConversation(messages, (turns[-1],), tool_calling=False)


def tokenize_conversation(
    tokenizer: Any,
    conversation: PreparedConversation,
    tools: list[dict[str, Any]] | None = None,
    **template_kwargs: Any,
) -> TokenizedConversation:
    """Token ids of the whole conversation and a 0/1 loss mask over the supervised turns."""

    def render(messages: list[dict[str, Any]], generation_prompt: bool) -> list[int]:
        text = tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=generation_prompt, **template_kwargs
        )
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    messages = conversation.messages
    input_ids = render(messages, generation_prompt=False)
    loss_mask = [0] * len(input_ids)
    for turn in conversation.supervised_turns:
        prompt = render(messages[:turn], generation_prompt=True) if turn else []
        # the last turn's rendering is the whole conversation's: do not tokenise a long trace twice
        upto = input_ids if turn == len(messages) - 1 else render(messages[: turn + 1], generation_prompt=False)
        if input_ids[: len(upto)] != upto:
            raise ChatTemplateError(
                f"rendering the first {turn + 1} messages is not a prefix of rendering them all; "
                "the loss mask cannot be located from this chat template (does it rewrite earlier turns?)"
            )
        if upto[: len(prompt)] != prompt:
            raise ChatTemplateError(
                f"turn {turn}: the prompt rendered with the generation prompt is not a prefix of the rendered turn"
            )
        loss_mask[len(prompt) : len(upto)] = [1] * (len(upto) - len(prompt))
    return TokenizedConversation(input_ids, loss_mask)
