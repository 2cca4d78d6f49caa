"""The format reward: ``<think> ... </think> answer`` structure and a single language.

Two independent checks, each a penalty in [0, 1] that the router subtracts from the
correctness score (see :mod:`verl_falcon_plugin.rewards.router`):

* structure: exactly one ``<think>`` and one ``</think>``, in that order, with a
  non-empty answer after ``</think>``. Chat templates of reasoning models often put
  ``<think>`` into the generation prompt, so the response legitimately starts inside
  the think block: ``think_opened_by_prompt=True`` accepts a response without ``<think>``.
* language: the share of letters outside the prompt's script (LaTeX, code and
  ``<think>`` tags ignored); penalised above ``max_foreign_share``.

verl decodes responses with ``skip_special_tokens=True``. If the tokenizer registers
``<think>``/``</think>`` as *special* tokens, the decoded text has no tags and every
response would fail the structure check. :func:`think_tags_survive_decode` detects that
from the tokenizer; the fix is to make the tags non-special added tokens (they are still
single tokens) or to decode with ``skip_special_tokens=False``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from verl_falcon_plugin.rewards.extract import THINK_CLOSE, THINK_OPEN

DEFAULT_MAX_FOREIGN_SHARE = 0.05


@dataclass(frozen=True)
class FormatResult:
    structure_ok: bool
    foreign_share: float
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def penalty(self, structure_penalty: float, language_penalty: float, max_foreign_share: float) -> float:
        total = 0.0 if self.structure_ok else structure_penalty
        if self.foreign_share > max_foreign_share:
            total += language_penalty
        return total


def check_structure(response: str, *, think_opened_by_prompt: bool = False) -> tuple[bool, list[str]]:
    """Whether ``response`` is one think block followed by a non-empty answer, and why not."""
    reasons = []
    opens, closes = response.count(THINK_OPEN), response.count(THINK_CLOSE)
    expected_opens = 0 if think_opened_by_prompt and opens == 0 else 1
    if opens != expected_opens:
        reasons.append(f"{opens} '{THINK_OPEN}' tags (expected {expected_opens})")
    if closes != 1:
        reasons.append(f"{closes} '{THINK_CLOSE}' tags (expected 1)")
    if opens == 1 and closes == 1:
        if response.index(THINK_OPEN) > response.index(THINK_CLOSE):
            reasons.append(f"'{THINK_CLOSE}' comes before '{THINK_OPEN}'")
        elif response[: response.index(THINK_OPEN)].strip():
            reasons.append(f"text before '{THINK_OPEN}'")
    if closes >= 1 and not response.rpartition(THINK_CLOSE)[2].strip():
        reasons.append(f"empty answer after '{THINK_CLOSE}'")
    return not reasons, reasons


_CODE_BLOCK = re.compile(r"```.*?(?:```|$)", re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_MATH = re.compile(r"\$\$.*?\$\$|\$[^$]*\$|\\\[.*?\\\]|\\\(.*?\\\)", re.DOTALL)
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+\*?(?:\{[^{}]*\})*")
_TAGS = re.compile(r"</?think>")
# a lone Latin letter is a variable name ("let x be"), not English prose
_LONE_LETTER = re.compile(r"(?<![A-Za-z])[A-Za-z](?![A-Za-z])")


def strip_math_and_code(text: str) -> str:
    """The prose of ``text``: no code, LaTeX math, LaTeX commands with their arguments, or lone variables."""
    for pattern in (_CODE_BLOCK, _INLINE_CODE, _MATH, _TAGS, _LATEX_COMMAND, _LONE_LETTER):
        text = pattern.sub(" ", text)
    return text


_SCRIPT_ALIASES = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "HANGUL": "CJK", "CJK": "CJK"}


def script_of(ch: str) -> str | None:
    """The Unicode script of a letter (first word of its name: LATIN, CYRILLIC, CJK...), None for non-letters."""
    if not ch.isalpha():
        return None
    try:
        first = unicodedata.name(ch).split(" ")[0]
    except ValueError:
        return None
    return _SCRIPT_ALIASES.get(first, first)


def script_counts(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ch in strip_math_and_code(text):
        script = script_of(ch)
        if script is not None:
            counts[script] = counts.get(script, 0) + 1
    return counts


def dominant_script(text: str) -> str | None:
    counts = script_counts(text)
    return max(counts, key=counts.get) if counts else None


def foreign_share(response: str, expected_script: str) -> float:
    """Share of the response's prose letters that are not in ``expected_script`` (0 when it has no prose)."""
    counts = script_counts(response)
    letters = sum(counts.values())
    if letters == 0:
        return 0.0
    # A CJK prompt legitimately mixes in Latin variable names and units; Latin prose in
    # a CJK answer still counts, because prose letters are all that survive stripping.
    return 1.0 - counts.get(expected_script, 0) / letters


def check_format(
    response: str,
    prompt: str | None = None,
    *,
    think_opened_by_prompt: bool = False,
    expected_script: str | None = None,
) -> FormatResult:
    """Structure and language checks of ``response``; the script defaults to the prompt's (else Latin)."""
    ok, reasons = check_structure(response, think_opened_by_prompt=think_opened_by_prompt)
    script = expected_script or (dominant_script(prompt) if prompt else None) or "LATIN"
    share = foreign_share(response, script)
    return FormatResult(ok, share, tuple(reasons))


def think_tags_survive_decode(tokenizer) -> bool:
    """True when ``tokenizer.decode(..., skip_special_tokens=True)`` keeps ``<think>`` and ``</think>``.

    This is what verl's reward managers do before calling the reward function.
    """
    text = f"{THINK_OPEN}reasoning{THINK_CLOSE}answer"
    ids = tokenizer.encode(text, add_special_tokens=False)
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    return THINK_OPEN in decoded and THINK_CLOSE in decoded


def require_think_tags_survive_decode(tokenizer) -> None:
    """Raise with the fix when the tokenizer's decode drops the think tags (the format reward would be useless)."""
    if not think_tags_survive_decode(tokenizer):
        raise ValueError(
            f"{type(tokenizer).__name__}.decode(skip_special_tokens=True), which verl's reward managers call, "
            f"drops '{THINK_OPEN}'/'{THINK_CLOSE}' because they are special tokens: the format reward would "
            "penalise every response. Register them as non-special added tokens "
            "(tokenizer.add_tokens([AddedToken('<think>', special=False), ...])) or set "
            "format_check=False in reward_kwargs."
        )
