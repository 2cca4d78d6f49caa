"""Pull the final answer out of a reasoning response.

A Falcon-H1R response is ``<think> ... </think> answer``; the reward looks only at
the answer part, so that a candidate boxed while thinking is never graded.
"""

from __future__ import annotations

import re

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_ANSWER_IS = re.compile(
    r"(?:final answer|the answer|^answer)\s*(?:is|:)\s*:?\s*(?P<ans>\$[^$\n]+\$|[^\n]+?)\s*(?:\.\s*)?$",
    re.IGNORECASE | re.MULTILINE,
)


def answer_part(response: str) -> str:
    """The text after the last ``</think>``; the whole response when there is none.

    The format reward penalises a missing ``</think>``; correctness still looks at the
    whole text so that a tokenizer which strips the tags does not zero every reward.
    """
    head, sep, tail = response.rpartition(THINK_CLOSE)
    return tail if sep else response


def _braced(text: str, start: int) -> tuple[str, int] | None:
    """The content of the ``{...}`` group opening at ``text[start]`` (nested braces), and its end."""
    if start >= len(text) or text[start] != "{":
        return None
    depth = 0
    i = start
    while i < len(text):
        ch = text[i]
        if ch == "\\":  # an escaped brace (\{ or \}) does not open or close a group
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
        i += 1
    return None  # unbalanced: the response was cut off inside the box


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` (or ``\\fbox{...}``, ``\\boxed 5``), else None."""
    best: tuple[int, str] | None = None
    for command in _BOX_COMMANDS:
        pos = text.rfind(command)
        while pos != -1:
            after = pos + len(command)
            if text[after : after + 1] == "{":
                group = _braced(text, after)
                if group is not None:
                    content = group[0]
                    break
            elif text[after : after + 1] == " ":
                match = re.match(r" +([^\s$]+)", text[after:])
                if match:
                    content = match.group(1)
                    break
            pos = text.rfind(command, 0, pos)
        else:
            continue
        if best is None or pos > best[0]:
            best = (pos, content)
    return None if best is None else best[1].strip()


def answer_is_fallback(text: str) -> str | None:
    """``The final answer is X`` / ``Answer: X`` when nothing was boxed."""
    matches = list(_ANSWER_IS.finditer(text))
    if not matches:
        return None
    answer = matches[-1].group("ans").strip()
    return answer.strip("$").strip() or None


def extract_answer(response: str) -> str | None:
    """The final answer of ``response``: last box of the answer part, then the 'answer is' fallback."""
    part = answer_part(response)
    boxed = last_boxed(part)
    return boxed if boxed is not None else answer_is_fallback(part)
