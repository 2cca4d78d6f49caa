"""Each quality filter on hand-built samples: the bad case is dropped with its reason, the good case kept."""

from __future__ import annotations

import shutil

import pytest

from verl_falcon_plugin.data.filters import FilterConfig, FilterReport, Reason, has_final_boxed, quality_problem


def chat(answer: str, **extra):
    return {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": answer}], **extra}


CONFIG = FilterConfig()
CASES = [
    ("math", chat("<think>ok</think>\n\\boxed{3}"), None),
    ("math", chat("<think>   </think>\n\\boxed{3}"), Reason.EMPTY_REASONING),
    ("math", chat("\\boxed{3}"), Reason.EMPTY_REASONING),
    ("math", chat("<think>ok</think>\n  "), Reason.EMPTY_ANSWER),
    ("math", chat("<think>ok</think>\nthe answer is 3"), Reason.MATH_NO_BOXED),
    ("math", chat("<think>ok</think>\n\\boxed{3"), Reason.MATH_NO_BOXED),
    ("code", chat("<think>ok</think>\n```python\ndef f():\n    return 1\n```"), None),
    ("code", chat("<think>ok</think>\n```python\ndef f(:\n    return 1\n```"), Reason.CODE_SYNTAX_ERROR),
    ("code", chat("<think>ok</think>\nno code at all"), Reason.CODE_MISSING),
    ("code", chat("<think>ok</think>\n```cpp\nint main(){}\n```"), Reason.CODE_WRONG_LANGUAGE),
    ("science", chat("<think>ok</think>\nit is 3 (no box needed)"), None),
]


@pytest.mark.parametrize("category,sample,expected", CASES)
def test_quality_filter_branches(category, sample, expected):
    assert quality_problem(sample, category, CONFIG)[0] == expected


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("clang++") is None, reason="no C++ compiler")
def test_cpp_is_checked_by_the_compiler():
    good = chat(
        "<think>ok</think>\n```cpp\n#include <vector>\nint main(){std::vector<int> v; return v.size();}\n```",
        language="cpp",
    )
    bad = chat("<think>ok</think>\n```cpp\nint main( { return 0 }\n```", language="c++")
    assert quality_problem(good, "code", CONFIG) == (None, [])
    assert quality_problem(bad, "code", CONFIG)[0] == Reason.CODE_SYNTAX_ERROR


def test_cpp_without_a_compiler_is_kept_and_noted():
    sample = chat("<think>ok</think>\n```cpp\nint main( {\n```", language="cpp")
    assert quality_problem(sample, "code", FilterConfig(cpp_compiler=None)) == (None, ["cpp_unchecked_no_compiler"])


def tool_chat(call: str, result: str, **tool_fields):
    return {
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": f"<think>call</think>\n<tool_call>{call}</tool_call>"},
            {"role": "tool", "content": result, **tool_fields},
            {"role": "assistant", "content": "<think>done</think>\nanswer"},
        ]
    }


@pytest.mark.parametrize(
    "sample,expected",
    [
        (tool_chat('{"name": "add", "arguments": {}}', '{"result": 1}'), None),
        (tool_chat('{"name": "add", "arguments": {}}', '{"error": "timeout"}'), Reason.FAILED_TOOL_CALL),
        (tool_chat('{"name": "add"}', "plain text", status="error"), Reason.FAILED_TOOL_CALL),
        (tool_chat('{"name": "add", "arguments": {', '{"result": 1}'), Reason.FAILED_TOOL_CALL),
        (tool_chat('{"arguments": {}}', '{"result": 1}'), Reason.FAILED_TOOL_CALL),
    ],
)
def test_failed_tool_calls(sample, expected):
    assert quality_problem(sample, "other", CONFIG)[0] == expected


def test_boxed_needs_balanced_braces():
    assert has_final_boxed("x \\boxed{\\frac{1}{2}}")
    assert not has_final_boxed("x \\boxed{\\frac{1}{2}")


def test_report_counts_each_reason():
    report = FilterReport()
    for category, sample, _ in CASES:
        report.record(category, quality_problem(sample, category, CONFIG)[0])
    by_reason = report.dropped_by_reason()
    assert by_reason[Reason.EMPTY_REASONING] == 2 and by_reason[Reason.MATH_NO_BOXED] == 2
    assert sum(report.seen.values()) == len(CASES)
    assert sum(report.kept.values()) == sum(1 for *_, e in CASES if e is None)


def test_unknown_filter_option_is_named():
    with pytest.raises(ValueError, match="cpp_compilr"):
        FilterConfig.from_mapping({"cpp_compilr": "g++"})
