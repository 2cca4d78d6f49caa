"""Final-answer extraction for voting (Falcon-H1R paper, Sec. 5.1).

``math_verify.parse`` first (it reads LaTeX, plain expressions and non-boxed
forms); when it finds nothing, the content of the last ``\\boxed{...}`` (the
reference DeepConf extractor's rule, with brace matching). Answers are then
normalised to canonical strings so equal values vote together: ``0.5``,
``\\frac{1}{2}`` and ``1/2`` all become ``"1/2"``, ``42.0`` becomes ``"42"``.
"""

from __future__ import annotations

import threading

from verl_falcon_plugin.requires import require

_BOXED = "\\boxed"


def last_boxed(text: str) -> str | None:
    """The brace-matched content of the last ``\\boxed{...}``, or None."""
    start = text.rfind(_BOXED + "{")
    if start < 0:
        return None
    depth, begin = 0, start + len(_BOXED)
    for pos in range(begin, len(text)):
        if text[pos] == "{":
            depth += 1
        elif text[pos] == "}":
            depth -= 1
            if depth == 0:
                return text[begin + 1 : pos].strip()
    return None  # unbalanced: the trace was cut off inside the box


def canonical(parsed: object) -> str:
    """A canonical string for a math_verify result (sympy object) or a raw string."""
    sympy = require("sympy", "DeepConf answer normalisation")
    if isinstance(parsed, sympy.Float):
        parsed = sympy.nsimplify(parsed, rational=True)
    if isinstance(parsed, sympy.Basic):
        return str(parsed)
    return "".join(str(parsed).split())


def extract_answer(text: str) -> str | None:
    """The canonical final answer of a trace, or None when it has none."""
    math_verify = require("math_verify", "DeepConf answer extraction")
    # math_verify times out with signal.alarm, which only works in the main thread
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    parsed = math_verify.parse(text, parsing_timeout=timeout)
    answer = canonical(parsed[0]) if parsed else None
    if not answer:
        boxed = last_boxed(text)
        answer = canonical(boxed) if boxed else None
    return answer or None
