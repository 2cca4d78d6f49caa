"""Loss masks token by token, against verl's own MultiTurnSFTDataset on the same chat template."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from verl_falcon_plugin.data.conversation import (
    ChatTemplateError,
    is_tool_calling,
    prepare_conversation,
    strip_think,
    tokenize_conversation,
)

MULTI_TURN = {
    "messages": [
        {"role": "system", "content": "You are Falcon."},
        {"role": "user", "content": "solve 1+1"},
        {"role": "assistant", "content": "<think>one plus one</think>\nso \\boxed{2}"},
        {"role": "user", "content": "and 2+2"},
        {"role": "assistant", "content": "<think>two plus two</think>\nso \\boxed{4}"},
    ]
}
TOOL_CALLING = {
    "messages": [
        {"role": "user", "content": "sum 2 and 3 with the tool"},
        {
            "role": "assistant",
            "content": '<think>call it</think>\n<tool_call>{"name": "add", "arguments": {"a": 2}}</tool_call>',
        },
        {"role": "tool", "content": '{"result": 5}'},
        {"role": "assistant", "content": "<think>got 5</think>\nthe sum is 5"},
    ],
    "tools": [{"name": "add", "parameters": {"a": "int"}}],
}


def masked_text(tokenizer, tokens, mask):
    return tokenizer.decode([t for t, m in zip(tokens.input_ids, mask) if m])


def verl_reference(tokenizer, tmp_path, sample):
    """verl 0.9.1's MultiTurnSFTDataset: every assistant turn supervised, per-message tokenisation."""
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    path = tmp_path / "ref.parquet"
    row = {"messages": sample["messages"]}
    if sample.get("tools"):
        row["tools"] = sample["tools"]
    pd.DataFrame([row]).to_parquet(path)
    dataset = MultiTurnSFTDataset(str(path), tokenizer, {"pad_mode": "no_padding", "max_length": 4096})
    item = dataset[0]
    return item["input_ids"].tolist(), item["loss_mask"].tolist()


def test_strip_think_keeps_only_the_answer():
    assert strip_think("<think>a\nb</think>\n\nanswer") == "answer"
    assert strip_think("no reasoning here") == "no reasoning here"


def test_multi_turn_strips_earlier_reasoning_and_supervises_only_the_last_turn(chat_tokenizer):
    conversation = prepare_conversation(MULTI_TURN)
    assert not conversation.tool_calling
    assert conversation.supervised_turns == (4,)
    assert conversation.messages[2]["content"] == "so \\boxed{2}"
    assert conversation.messages[4]["content"] == MULTI_TURN["messages"][4]["content"]
    tokens = tokenize_conversation(chat_tokenizer, conversation)
    rendered = chat_tokenizer.decode(tokens.input_ids)
    assert "one plus one" not in rendered and "two plus two" in rendered
    # token by token: exactly the last assistant turn's body and its end-of-turn tokens
    assert masked_text(chat_tokenizer, tokens, tokens.loss_mask) == (
        "<think>two plus two</think>\nso \\boxed{4}<|im_end|>\n"
    )
    first_one = tokens.loss_mask.index(1)
    assert all(tokens.loss_mask[first_one:]) and not any(tokens.loss_mask[:first_one])


def test_multi_turn_mask_equals_verl_mask_restricted_to_the_last_turn(chat_tokenizer, tmp_path):
    conversation = prepare_conversation(MULTI_TURN)
    ours = tokenize_conversation(chat_tokenizer, conversation)
    ref_ids, ref_mask = verl_reference(chat_tokenizer, tmp_path, {"messages": conversation.messages})
    assert ours.input_ids == ref_ids
    last_start = ours.loss_mask.index(1)
    assert ours.loss_mask == [m if i >= last_start else 0 for i, m in enumerate(ref_mask)]
    # verl supervises the earlier turn too: the restriction is not vacuous
    assert sum(ref_mask) > sum(ours.loss_mask)


def test_tool_calling_keeps_reasoning_and_equals_verl_on_every_assistant_turn(chat_tokenizer, tmp_path):
    assert is_tool_calling(TOOL_CALLING)
    conversation = prepare_conversation(TOOL_CALLING)
    assert conversation.supervised_turns == (1, 3)
    ours = tokenize_conversation(chat_tokenizer, conversation, tools=TOOL_CALLING["tools"])
    ref_ids, ref_mask = verl_reference(chat_tokenizer, tmp_path, TOOL_CALLING)
    assert ours.input_ids == ref_ids
    assert ours.loss_mask == ref_mask
    text = masked_text(chat_tokenizer, ours, ours.loss_mask)
    assert "call it" in text and "got 5" in text and '"result": 5' not in text and "sum 2 and 3" not in text


def test_tool_calling_detected_from_tools_or_tool_turns():
    assert is_tool_calling({"messages": [{"role": "tool", "content": "x"}]})
    assert is_tool_calling({"messages": [], "tools": [{"name": "f"}]})
    assert not is_tool_calling(MULTI_TURN)


def test_conversation_must_end_with_the_assistant():
    with pytest.raises(ValueError, match="end with an assistant"):
        prepare_conversation({"messages": MULTI_TURN["messages"][:-1]})


def test_template_that_rewrites_earlier_turns_is_refused(chat_tokenizer):
    tokenizer = chat_tokenizer
    original = tokenizer.chat_template
    # This template prints only the last message: a prefix is not a prefix of the whole.
    tokenizer.chat_template = "{{ messages[-1]['content'] }}{% if add_generation_prompt %}<|im_start|>{% endif %}"
    try:
        with pytest.raises(ChatTemplateError):
            tokenize_conversation(tokenizer, prepare_conversation(json.loads(json.dumps(MULTI_TURN))))
    finally:
        tokenizer.chat_template = original
