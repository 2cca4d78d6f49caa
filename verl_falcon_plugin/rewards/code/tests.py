"""Test cases of a code item: parsing the dataset formats, seeded sampling, judging an output.

Accepted formats (a dict or its JSON string), as in verl's ``sandbox_fusion``/``prime_code``:

* ``{"inputs": [...], "outputs": [...]}`` — stdin/stdout tests;
* the same plus ``"fn_name": "f"`` — function-call tests (Python only): each input is the call's
  arguments, either a list or verl's string of one JSON value per line; each output is the
  return value (a JSON string or the value; APPS' ``[value]`` wrapping is accepted too);
* ``{"assert_case": [code, ...]}`` (optional ``inputs``) — verl's assert tests: the code is appended
  to the program and a test passes when the program exits 0;
* a list of ``{"input": ..., "output": ...}`` (also ``stdin``/``stdout``) objects.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TestCase:
    __test__ = False  # not a pytest class

    index: int
    stdin: str
    expected: Any  # stdout text for stdio tests; the return value for call tests
    fn_name: str | None = None
    appendix: str = ""  # verl's assert_case: code appended to the program; passing = exiting 0

    @property
    def is_call(self) -> bool:
        return self.fn_name is not None


def parse_tests(tests: Any) -> list[TestCase]:
    """Normalise ``tests`` into :class:`TestCase` objects; malformed data raises, naming the field."""
    if isinstance(tests, (str, bytes)):
        try:
            tests = json.loads(tests)
        except json.JSONDecodeError as err:
            raise ValueError(f"tests: not valid JSON ({err}); pass a dict with 'inputs' and 'outputs'") from err
    if isinstance(tests, list):
        return [_from_pair(i, case) for i, case in enumerate(tests)]
    if not isinstance(tests, dict):
        raise ValueError(
            f"tests: expected a dict with 'inputs'/'outputs' or a list of cases, got {type(tests).__name__}"
        )
    missing = [k for k in ("inputs", "outputs") if k not in tests and "assert_case" not in tests]
    if missing:
        raise ValueError(f"tests: missing {missing}; expected {{'inputs': [...], 'outputs': [...]}}")
    if "assert_case" in tests:
        return _assert_cases(tests)
    inputs, outputs = tests["inputs"], tests["outputs"]
    if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
        raise ValueError(
            "tests: 'inputs' and 'outputs' must be lists of the same length "
            f"(got {_describe(inputs)} and {_describe(outputs)})"
        )
    fn_name = tests.get("fn_name")
    if fn_name is not None and (not isinstance(fn_name, str) or not fn_name.isidentifier()):
        raise ValueError(f"tests: 'fn_name' must be a Python identifier, got {fn_name!r}")
    if fn_name:
        return [
            TestCase(i, _call_stdin(inp, i), _decode_json(out), fn_name)
            for i, (inp, out) in enumerate(zip(inputs, outputs))
        ]
    return [
        TestCase(i, _text(inp, f"inputs[{i}]"), _text(out, f"outputs[{i}]"))
        for i, (inp, out) in enumerate(zip(inputs, outputs))
    ]


def sample_tests(cases: list[TestCase], max_tests: int | None, seed: int) -> list[TestCase]:
    """Up to ``max_tests`` cases, chosen reproducibly per item (``seed`` and the cases' content)."""
    if max_tests is not None and max_tests < 1:
        raise ValueError(f"max_tests must be >= 1 or None (all tests), got {max_tests}")
    if max_tests is None or len(cases) <= max_tests:
        return list(cases)
    digest = hashlib.sha256(repr([(c.stdin, c.expected, c.fn_name, c.appendix) for c in cases]).encode()).hexdigest()
    chosen = random.Random(f"{seed}:{digest}").sample(range(len(cases)), max_tests)
    return [cases[i] for i in sorted(chosen)]


def stdout_matches(actual: str, expected: str) -> bool:
    """Judge-style comparison: line endings and trailing whitespace (per line and at the end) ignored."""
    return _normalise(actual) == _normalise(expected)


def call_result_matches(stdout: str, expected: Any) -> bool:
    """The harness prints the return value as JSON on its last line; compare it as data."""
    lines = stdout.strip().splitlines()
    if not lines:
        return False
    try:
        actual = json.loads(lines[-1])
    except json.JSONDecodeError:
        return False
    if actual == expected:
        return True
    return isinstance(expected, list) and len(expected) == 1 and actual == expected[0]  # APPS wraps in a list


def call_harness(code: str, fn_name: str) -> str:
    """``code`` plus a driver that calls ``fn_name`` (a function, or a method of ``Solution``) on
    the JSON arguments read from stdin (one per line) and prints the result as JSON."""
    return (
        f"{code}\n\n"
        "def _falcon_h1r_call():\n"
        "    import json as _json, sys as _sys\n"
        "    _args = [_json.loads(_line) for _line in _sys.stdin.read().splitlines() if _line.strip()]\n"
        f"    _target = globals().get({fn_name!r})\n"
        "    if _target is None and 'Solution' in globals():\n"
        f"        _target = getattr(globals()['Solution'](), {fn_name!r}, None)\n"
        "    if _target is None:\n"
        f"        _sys.exit('function {fn_name} is not defined')\n"
        "    print(_json.dumps(_target(*_args)))\n\n"
        "_falcon_h1r_call()\n"
    )


def _assert_cases(tests: dict) -> list[TestCase]:
    asserts = tests["assert_case"]
    if not isinstance(asserts, list) or not all(isinstance(a, str) for a in asserts):
        raise ValueError("tests: 'assert_case' must be a list of code strings")
    inputs = tests.get("inputs") or [""] * len(asserts)
    if len(inputs) != len(asserts):
        raise ValueError(f"tests: 'inputs' has {len(inputs)} items but 'assert_case' {len(asserts)}")
    return [
        TestCase(i, _text(inp, f"inputs[{i}]"), None, appendix=a) for i, (inp, a) in enumerate(zip(inputs, asserts))
    ]


def _normalise(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _from_pair(index: int, case: Any) -> TestCase:
    if not isinstance(case, dict):
        raise ValueError(f"tests[{index}]: expected an object with 'input' and 'output', got {type(case).__name__}")
    inp = case.get("input", case.get("stdin"))
    out = case.get("output", case.get("stdout"))
    if inp is None or out is None:
        raise ValueError(f"tests[{index}]: needs 'input' and 'output' (or 'stdin' and 'stdout'), has {sorted(case)}")
    return TestCase(index, _text(inp, f"tests[{index}].input"), _text(out, f"tests[{index}].output"))


def _text(value: Any, field: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)  # prime_code's list-of-lines form
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"{field}: expected text, got {type(value).__name__}")


def _call_stdin(value: Any, index: int) -> str:
    if isinstance(value, str):
        return value  # verl's form: one JSON value per line
    if isinstance(value, list):
        return "\n".join(json.dumps(arg) for arg in value)
    raise ValueError(f"inputs[{index}]: a function-call input must be a list of arguments or JSON lines")


def _decode_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value  # a bare string return value
    return value


def _describe(value: Any) -> str:
    return f"{len(value)} items" if isinstance(value, list) else type(value).__name__
