"""The paper's SFT quality filters (Sec. 2), each a named reason counted in a :class:`FilterReport`.

Removed: empty reasoning or empty final answer; math without a final ``\\boxed{}``;
code that does not parse in its language (Python through :mod:`ast`, C++ through the
compiler when one is installed) or is in the wrong language; failed tool calls.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from verl_falcon_plugin.data.conversation import assistant_turns, is_tool_calling, split_think

FENCED_CODE = re.compile(r"```([A-Za-z0-9_+#.-]*)[ \t]*\n(.*?)```", re.DOTALL)
TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
LANGUAGE_ALIASES = {
    "py": "python", "python3": "python", "python": "python",
    "cpp": "cpp", "c++": "cpp", "cc": "cpp", "cxx": "cpp",
}  # fmt: skip


class Reason:
    EMPTY_REASONING = "empty_reasoning"
    EMPTY_ANSWER = "empty_answer"
    MATH_NO_BOXED = "math_no_boxed"
    CODE_MISSING = "code_missing"
    CODE_WRONG_LANGUAGE = "code_wrong_language"
    CODE_SYNTAX_ERROR = "code_syntax_error"
    FAILED_TOOL_CALL = "failed_tool_call"


@dataclass(frozen=True)
class FilterConfig:
    require_reasoning: bool = True
    math_categories: tuple[str, ...] = ("math",)
    code_categories: tuple[str, ...] = ("code",)
    #: language assumed for code samples without a ``language`` field
    default_code_language: str = "python"
    #: C++ compiler for the syntax check; ``"auto"`` finds g++/clang++, ``None`` disables it
    cpp_compiler: str | None = "auto"
    compile_timeout_s: float = 20.0

    @classmethod
    def from_mapping(cls, mapping: Any) -> "FilterConfig":
        values = dict(mapping or {})
        for key in ("math_categories", "code_categories"):
            if key in values:
                values[key] = tuple(values[key])
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"unknown quality-filter options {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**values)


@dataclass
class FilterReport:
    """Counts of rows seen, kept, dropped (by reason) and otherwise noted, per source."""

    seen: Counter = field(default_factory=Counter)
    kept: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)  # (source, reason) -> count
    notes: Counter = field(default_factory=Counter)  # (source, note) -> count, e.g. unchecked C++
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, source: str, reason: str | None) -> None:
        with self._lock:
            self.seen[source] += 1
            if reason is None:
                self.kept[source] += 1
            else:
                self.dropped[(source, reason)] += 1

    def note(self, source: str, what: str, count: int = 1) -> None:
        with self._lock:
            self.notes[(source, what)] += count

    def dropped_by_reason(self) -> Counter:
        totals: Counter = Counter()
        for (_, reason), count in self.dropped.items():
            totals[reason] += count
        return totals

    def as_dict(self) -> dict[str, Any]:
        return {
            "seen": dict(self.seen),
            "kept": dict(self.kept),
            "dropped": {f"{s}/{r}": c for (s, r), c in sorted(self.dropped.items())},
            "dropped_by_reason": dict(self.dropped_by_reason()),
            "notes": {f"{s}/{w}": c for (s, w), c in sorted(self.notes.items())},
        }


def quality_problem(sample: dict[str, Any], category: str, config: FilterConfig) -> tuple[str | None, list[str]]:
    """``(reason to drop or None, notes)`` for one parsed sample of the given category."""
    notes: list[str] = []
    messages = sample["messages"]
    final = messages[assistant_turns(messages)[-1]].get("content") or ""
    reasoning, answer = split_think(final)
    if config.require_reasoning and not (reasoning or "").strip():
        return Reason.EMPTY_REASONING, notes
    if not answer.strip():
        return Reason.EMPTY_ANSWER, notes
    if category in config.math_categories and not has_final_boxed(answer):
        return Reason.MATH_NO_BOXED, notes
    if category in config.code_categories:
        reason = code_problem(answer, sample.get("language") or config.default_code_language, config, notes)
        if reason:
            return reason, notes
    if is_tool_calling(sample) and has_failed_tool_call(messages):
        return Reason.FAILED_TOOL_CALL, notes
    return None, notes


def has_final_boxed(answer: str) -> bool:
    r"""A ``\boxed{...}`` with balanced braces in the final answer."""
    start = answer.rfind("\\boxed{")
    if start < 0:
        return False
    depth = 0
    for char in answer[start + len("\\boxed") :]:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return True
    return False


def normalise_language(name: str) -> str:
    return LANGUAGE_ALIASES.get(name.strip().lower(), name.strip().lower())


def code_problem(answer: str, language: str, config: FilterConfig, notes: list[str]) -> str | None:
    """Why the answer's last fenced code block is unusable, or ``None``."""
    blocks = FENCED_CODE.findall(answer)
    if not blocks:
        return Reason.CODE_MISSING
    tag, code = blocks[-1]
    expected = normalise_language(language)
    if tag and normalise_language(tag) != expected:
        return Reason.CODE_WRONG_LANGUAGE
    if expected == "python":
        return None if python_parses(code) else Reason.CODE_SYNTAX_ERROR
    if expected == "cpp":
        compiler = resolve_cpp_compiler(config.cpp_compiler)
        if compiler is None:
            notes.append("cpp_unchecked_no_compiler")
            return None
        return None if cpp_parses(code, compiler, config.compile_timeout_s) else Reason.CODE_SYNTAX_ERROR
    notes.append(f"{expected}_unchecked")
    return None


def python_parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):  # ValueError: source with NUL bytes
        return False
    return True


def resolve_cpp_compiler(setting: str | None) -> str | None:
    if setting is None:
        return None
    if setting != "auto":
        if shutil.which(setting) is None:
            raise FileNotFoundError(f"cpp_compiler={setting!r} is not on PATH; set it to 'auto' or null")
        return setting
    return shutil.which("g++") or shutil.which("clang++")


def cpp_parses(code: str, compiler: str, timeout_s: float) -> bool:
    """``-fsyntax-only``: parse and type-check, no object file, nothing executed."""
    try:
        done = subprocess.run(
            [compiler, "-fsyntax-only", "-std=c++17", "-x", "c++", "-"],
            input=code.encode(),
            capture_output=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def has_failed_tool_call(messages: list[dict[str, Any]]) -> bool:
    """A tool result that reports an error, or a call that is not a JSON object with a name."""
    for message in messages:
        role = message.get("role")
        if role == "assistant":
            for body in TOOL_CALL.findall(message.get("content") or ""):
                if not _is_named_call(body):
                    return True
            for call in message.get("tool_calls") or ():
                function = call.get("function", call) if isinstance(call, dict) else None
                if not isinstance(function, dict) or not function.get("name"):
                    return True
                arguments = function.get("arguments", {})
                if isinstance(arguments, str) and not _is_json(arguments):
                    return True
        elif role == "tool" and _tool_result_failed(message):
            return True
    return False


def _is_named_call(body: str) -> bool:
    try:
        call = json.loads(body)
    except json.JSONDecodeError:
        return False
    return isinstance(call, dict) and bool(call.get("name"))


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def _tool_result_failed(message: dict[str, Any]) -> bool:
    if message.get("error") or str(message.get("status", "")).lower() in {"error", "failed", "failure"}:
        return True
    try:
        payload = json.loads(message.get("content") or "")
    except (json.JSONDecodeError, TypeError):
        return False
    return isinstance(payload, dict) and bool(payload.get("error"))
