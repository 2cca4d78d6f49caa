"""Pull the final answer out of a reasoning response, where math-verify's own extraction would.

A Falcon-H1R response is ``<think> ... </think> answer``. **Where the project differs from
math-verify on purpose:** only the answer part (after the last ``</think>``) is graded, so a
candidate boxed while thinking never counts; math-verify alone reads the whole text.

Inside the answer part the rules are math-verify 0.9's (``math_verify/parser.py``):

* ``The final answer is X. I hope it is correct.`` (the Minerva form) wins over everything;
* otherwise the right-most of the last box and the last ``final answer ... is X`` statement
  (an answer stated after the last box counts);
* boxes joined only by ``,``, ``and`` or ``or`` (``\\boxed{3} and \\boxed{7}``) are one
  answer, the list of their contents (math-verify makes it a set);
* otherwise ``Answer: X``.

``X`` is the ``$...$`` / ``\\(...\\)`` math right after the anchor, else the rest of the
sentence (``12 apples``, ``1 000``: tier 1 abstains on what it cannot read). When nothing matches,
:func:`extract_answer` returns None and the reward hands the answer part to math-verify,
whose extraction then decides (its last-number fallback included).
"""

from __future__ import annotations

import re

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_BOX_JOIN = re.compile(r"^\s*\$*\s*(?:,?\s*and|,?\s*or|,)\s*\$*\s*$")
_MAX_JOINED_BOXES = 6  # math-verify joins the first box and up to five more
_VALUE = (
    r"(?:\$(?P<dollar>(?:\\\$|[^$])+)\$"
    r"|\\\((?P<paren>.+?)\\\)"
    r"|\\\[(?P<bracket>.+?)\\\]"
    r"|(?P<word>[^\s$](?:[^\n$]*?[^\s$])??)(?=\.?\s*(?:I hope|\n|$)|\.\s))"
)
_MINERVA = re.compile(r"final answer is:?\s*" + _VALUE + r"\.?\s*I hope", re.IGNORECASE | re.DOTALL)
_FINAL_IS = re.compile(r"final answer.{0,100}?\s+is:?\s*" + _VALUE, re.IGNORECASE | re.DOTALL)
_ANSWER_COLON = re.compile(r"answer:\s*" + _VALUE, re.IGNORECASE)


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


def boxes(text: str) -> list[tuple[int, int, str]]:
    """Every complete ``\\boxed{...}`` / ``\\fbox{...}`` / ``\\boxed 5``, as (start, end, content), in order."""
    found = []
    for command in _BOX_COMMANDS:
        for match in re.finditer(re.escape(command) + r"(?![A-Za-z])", text):
            after = match.end()
            if text[after : after + 1] == "{":
                group = _braced(text, after)
                if group is not None:
                    found.append((match.start(), group[1], group[0].strip()))
            else:
                word = re.match(r" +([^\s$]+)", text[after:])
                if word:
                    found.append((match.start(), after + word.end(), word.group(1)))
    return sorted(found)


def last_boxed(text: str) -> str | None:
    """Content of the last complete box, else None."""
    found = boxes(text)
    return found[-1][2] if found else None


def last_box_group(text: str) -> tuple[int, str] | None:
    """(end, answer) of the last box and the boxes joined to it by ``,`` / ``and`` / ``or``."""
    found = boxes(text)
    if not found:
        return None
    group = [found[-1]]
    for previous in reversed(found[:-1]):
        if len(group) == _MAX_JOINED_BOXES or not _BOX_JOIN.match(text[previous[1] : group[0][0]]):
            break
        group.insert(0, previous)
    contents = list(dict.fromkeys(content for _, _, content in group))  # a set: repeats count once
    return found[-1][1], ", ".join(contents)


def _value(match: re.Match) -> str | None:
    for name in ("dollar", "paren", "bracket"):
        if match.group(name):
            inner = match.group(name).strip()
            return last_boxed(inner) or inner
    word = match.group("word")  # the rest of the sentence: "12 apples", "1 000" (tier 1 reads what it can)
    return last_boxed(word) or word or None


def _last(pattern: re.Pattern, text: str) -> tuple[int, str] | None:
    hits = [(m.end(), _value(m)) for m in pattern.finditer(text)]
    hits = [(end, value) for end, value in hits if value]
    return hits[-1] if hits else None


BOXED = "boxed"  # the answer is the content of the last box (group)
STATED = "stated"  # the answer follows an anchor such as "final answer is" or "Answer:"


def extract_answer_and_source(response: str) -> tuple[str | None, str | None]:
    """(answer, :data:`BOXED` or :data:`STATED`), or (None, None) when there is no anchor.

    The source matters to the reward: math-verify reads a stated answer in running text with its own
    rules (``Answer: 3,5`` is 3.5 to it, ``\\boxed{3,5}`` the set {3, 5}), so a stated answer is handed
    to it as written, a boxed one as a box.
    """
    part = answer_part(response)
    minerva = _last(_MINERVA, part)
    if minerva:
        return minerva[1], STATED
    box, stated = last_box_group(part), _last(_FINAL_IS, part)
    if box and (not stated or box[0] >= stated[0]):
        return box[1], BOXED
    if stated:
        return stated[1], STATED
    colon = _last(_ANSWER_COLON, part)
    return (colon[1], STATED) if colon else (None, None)


def extract_answer(response: str) -> str | None:
    """The final answer of ``response`` (see the module docstring), or None when there is no anchor."""
    return extract_answer_and_source(response)[0]
