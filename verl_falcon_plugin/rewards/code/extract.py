"""The program in a model response: its last fenced code block, and the block's language.

The answer part is what follows the last ``</think>`` (drafts in the reasoning are not the
answer). The language comes from the fence's info string when it names one, otherwise from
marker scores over the code (``#include <iostream>`` → C++, ``package main`` → Go, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: fence info string -> canonical language
LANGUAGE_ALIASES: dict[str, str] = {
    "python": "python",
    "python3": "python",
    "py": "python",
    "py3": "python",
    "cpp": "cpp",
    "c++": "cpp",
    "cc": "cpp",
    "cxx": "cpp",
    "hpp": "cpp",
    "c": "c",
    "h": "c",
    "java": "java",
    "javascript": "javascript",
    "js": "javascript",
    "node": "javascript",
    "nodejs": "javascript",
    "bash": "bash",
    "sh": "bash",
    "shell": "bash",
    "zsh": "bash",
    "go": "go",
    "golang": "go",
}

#: canonical language -> Sandbox-Fusion's name. The protocol has no C: C goes to the C++ toolchain
#: (g++), which accepts almost all competitive-programming C; the metadata records the substitution.
SANDBOX_LANGUAGE: dict[str, str] = {
    "python": "python",
    "cpp": "cpp",
    "c": "cpp",
    "java": "java",
    "javascript": "nodejs",
    "bash": "bash",
    "go": "go",
}

# weighted markers; a language needs a positive score to be chosen
_MARKERS: dict[str, list[tuple[str, int]]] = {
    "cpp": [
        (r"#include\s*<(iostream|bits/stdc\+\+\.h|vector|string|algorithm|map|set)>", 5),
        (r"\bstd::", 4),
        (r"using\s+namespace\s+std", 5),
        (r"\bc(in|out)\s*(<<|>>)", 4),
        (r"\bvector\s*<", 2),
        (r"\bauto\b", 1),
    ],
    "c": [
        (r"#include\s*<(stdio|stdlib|string|math)\.h>", 4),
        (r"\b(printf|scanf|malloc)\s*\(", 2),
        (r"\bint\s+main\s*\(", 1),
    ],
    "java": [
        (r"\bpublic\s+class\b", 4),
        (r"\bpublic\s+static\s+void\s+main\b", 5),
        (r"System\.out\.print", 4),
        (r"\bimport\s+java\.", 5),
    ],
    "python": [
        (r"^\s*def\s+\w+\s*\(.*\)\s*(->.*)?:", 3),
        (r"^\s*(import|from)\s+\w+", 2),
        (r"\bprint\s*\(", 1),
        (r"\binput\s*\(\s*\)", 2),
        (r"if\s+__name__\s*==", 4),
        (r"^\s*(elif|for .* in .*:)", 2),
    ],
    "javascript": [
        (r"console\.log\s*\(", 4),
        (r"\brequire\s*\(\s*['\"]", 3),
        (r"\b(const|let)\s+\w+\s*=", 2),
        (r"=>", 1),
        (r"process\.stdin", 4),
        (r"\bfunction\s+\w+\s*\(", 1),
    ],
    "go": [(r"^\s*package\s+main\b", 6), (r"\bfunc\s+main\s*\(\s*\)", 5), (r"\bfmt\.", 4), (r":=", 1)],
    "bash": [
        (r"^#!\s*/(usr/)?bin/(env\s+)?(ba)?sh", 8),
        (r"^\s*echo\s", 2),
        (r"^\s*(fi|done|esac)\s*$", 3),
        (r"\$\(", 1),
        (r"^\s*read\s+(-r\s+)?\w+", 3),
        (r"\[\[?\s.*\s\]\]?", 1),
    ],
}
_COMPILED = {lang: [(re.compile(p, re.MULTILINE), w) for p, w in marks] for lang, marks in _MARKERS.items()}

# ``` or ~~~ fences of 3+ characters; the closing fence must match the opening one
_FENCE = re.compile(
    r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)\n" r"(?P<body>.*?)^[ \t]*(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


@dataclass(frozen=True)
class CodeBlock:
    code: str
    language: str | None  # canonical (LANGUAGE_ALIASES values); None when it cannot be told
    language_source: str  # "fence" or "detected" or "none"

    @property
    def sandbox_language(self) -> str | None:
        return SANDBOX_LANGUAGE.get(self.language) if self.language else None


def answer_part(response: str) -> str:
    """The text after the last ``</think>`` (the whole response when there is none)."""
    head, sep, tail = response.rpartition("</think>")
    return tail if sep else response


def detect_language(code: str) -> str | None:
    """The language whose markers score highest in ``code``; None when nothing matches."""
    scores = {lang: sum(w for rx, w in marks if rx.search(code)) for lang, marks in _COMPILED.items()}
    # C++ includes the C markers' vocabulary: C only when nothing C++-specific was seen
    if scores["cpp"] > 0:
        scores["c"] = 0
    best = max(scores, key=scores.get)
    return best if scores[best] > 0 else None


def extract_code(response: str) -> CodeBlock | None:
    """The last fenced code block of the answer part, with its language; None when there is none."""
    blocks = list(_FENCE.finditer(answer_part(response)))
    if not blocks:
        return None
    last = blocks[-1]
    code = last["body"]
    info = last["info"].strip().split()
    tagged = LANGUAGE_ALIASES.get(info[0].lower().lstrip("{.").rstrip("}")) if info else None
    if tagged:
        return CodeBlock(code, tagged, "fence")
    detected = detect_language(code)
    return CodeBlock(code, detected, "detected" if detected else "none")
