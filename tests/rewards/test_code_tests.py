"""Test-case formats, seeded sampling and output judging."""

from __future__ import annotations

import json

import pytest

from verl_falcon_plugin.rewards.code.tests import (
    call_result_matches,
    parse_tests,
    sample_tests,
    stdout_matches,
)


def test_stdin_stdout_dict_and_its_json_string_parse_the_same():
    tests = {"inputs": ["1 2\n", "3 4\n"], "outputs": ["3\n", "7\n"]}
    assert parse_tests(tests) == parse_tests(json.dumps(tests))
    cases = parse_tests(tests)
    assert [(c.stdin, c.expected, c.is_call) for c in cases] == [("1 2\n", "3\n", False), ("3 4\n", "7\n", False)]


def test_list_of_pairs_and_prime_code_line_lists():
    cases = parse_tests([{"input": "1", "output": "2"}, {"stdin": ["a", "b"], "stdout": 5}])
    assert [(c.stdin, c.expected) for c in cases] == [("1", "2"), ("a\nb", "5")]


def test_function_call_inputs_as_json_lines_or_argument_lists():
    cases = parse_tests({"fn_name": "add", "inputs": ["[1, 2]\n3", [[1, 2], 3]], "outputs": ["[4]", [4]]})
    assert cases[0].stdin == "[1, 2]\n3" and cases[1].stdin == "[1, 2]\n3"
    assert cases[0].expected == [4] == cases[1].expected and cases[0].fn_name == "add"


def test_verls_assert_cases():
    cases = parse_tests({"assert_case": ["assert f(1) == 2", "assert f(2) == 4"]})
    assert [(c.stdin, c.expected, c.appendix) for c in cases] == [
        ("", None, "assert f(1) == 2"),
        ("", None, "assert f(2) == 4"),
    ]


@pytest.mark.parametrize(
    "bad, field",
    [
        ("{not json", "not valid JSON"),
        ({"inputs": ["1"]}, "missing ['outputs']"),
        ({"inputs": ["1"], "outputs": ["1", "2"]}, "same length"),
        ({"inputs": ["1"], "outputs": ["1"], "fn_name": "not an identifier"}, "'fn_name'"),
        ([{"input": "1"}], "tests[0]"),
        ({"inputs": [{"x": 1}], "outputs": ["1"]}, "inputs[0]"),
        (42, "expected a dict"),
    ],
)
def test_malformed_tests_name_the_field(bad, field):
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_tests(bad)


def test_sampling_is_seeded_per_item_and_bounded():
    cases = parse_tests({"inputs": [str(i) for i in range(50)], "outputs": [str(i) for i in range(50)]})
    first = sample_tests(cases, 8, seed=0)
    assert len(first) == 8 and len({c.index for c in first}) == 8
    assert [c.index for c in first] == sorted(c.index for c in first)
    assert sample_tests(cases, 8, seed=0) == first  # reproducible
    assert sample_tests(cases, 8, seed=1) != first  # the seed matters
    other_item = parse_tests({"inputs": [f"x{i}" for i in range(50)], "outputs": ["0"] * 50})
    assert [c.index for c in sample_tests(other_item, 8, seed=0)] != [c.index for c in first]  # per item
    assert sample_tests(cases, None, seed=0) == cases and sample_tests(cases[:3], 8, seed=0) == cases[:3]
    with pytest.raises(ValueError, match="max_tests"):
        sample_tests(cases, 0, seed=0)


@pytest.mark.parametrize(
    "actual, expected, same",
    [
        ("3\n", "3", True),
        ("3 \r\n4\n\n", "3\n4", True),
        ("3\n4", "3 4", False),
        ("03", "3", False),
        ("", "", True),
        ("a  b", "a b", False),
    ],
)
def test_stdout_comparison_ignores_only_trailing_whitespace(actual, expected, same):
    assert stdout_matches(actual, expected) is same


def test_stdout_comparison_agrees_with_verl_where_verl_is_exact():
    """verl compares ``actual.rstrip('\\n') == expected.rstrip('\\n')``: whatever verl accepts, we accept."""
    for actual, expected in [("3\n", "3"), ("a b\nc\n\n", "a b\nc"), ("x", "x\n")]:
        assert actual.rstrip("\n") == expected.rstrip("\n") and stdout_matches(actual, expected)


@pytest.mark.parametrize(
    "stdout, expected, same",
    [
        ("[1, 2]\n", [1, 2], True),
        ("log line\n7\n", 7, True),
        ("7\n", [7], True),
        ('"ab"\n', "ab", True),
        ("[1, 2]\n", [[1, 2]], True),
        ("8\n", 7, False),
        ("not json\n", 7, False),
        ("", None, False),
    ],
)
def test_call_results_compare_as_data_with_apps_wrapping(stdout, expected, same):
    assert call_result_matches(stdout, expected) is same
