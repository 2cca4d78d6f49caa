"""``code_reward`` end to end: official client, two embedded sandboxes; verdicts cross-checked
against verl's own ``sandbox_fusion.check_correctness`` on the same program and tests."""

from __future__ import annotations

import shutil

import pytest

from tests.rewards.sandbox_helpers import dead_endpoint, sandbox_servers, verl_sandbox_fusion_utils
from verl_falcon_plugin.rewards.code import code_reward, extract_code
from verl_falcon_plugin.rewards.result import RewardStatus

ADD = {"inputs": ["1 2\n", "-5 5\n"], "outputs": ["3\n", "0\n"]}

CASES = {
    # name: (response, expected status, expected per-test status, verl's code for every test)
    "correct_python": (
        "```python\na, b = map(int, input().split())\nprint(a + b)\n```",
        RewardStatus.CORRECT,
        "passed",
        True,
    ),
    "wrong_python": (
        "```python\na, b = map(int, input().split())\nprint(a - b)\n```",
        RewardStatus.WRONG,
        "wrong_answer",
        None,
    ),
    "runtime_error": ("```python\nraise ValueError('boom')\n```", RewardStatus.WRONG, "runtime_error", -2),
    "timeout": ("```python\nwhile True:\n    pass\n```", RewardStatus.WRONG, "timeout", -3),
    "compile_error": ("```cpp\nint main( {\n```", RewardStatus.WRONG, "compile_error", -4),
    "correct_cpp": (
        "```cpp\n#include <iostream>\nint main(){long a,b;std::cin>>a>>b;std::cout<<a+b<<std::endl;}\n```",
        RewardStatus.CORRECT,
        "passed",
        True,
    ),
    "correct_c_via_cpp": (
        '```c\n#include <stdio.h>\nint main(void){long a,b;scanf("%ld %ld",&a,&b);printf("%ld\\n",a+b);return 0;}\n```',
        RewardStatus.CORRECT,
        "passed",
        True,
    ),
    "correct_javascript": (
        "```javascript\nconst lines = require('fs').readFileSync(0, 'utf8').trim().split('\\n');\n"
        "const [a, b] = lines[0].split(' ').map(Number);\nconsole.log(a + b);\n```",
        RewardStatus.CORRECT,
        "passed",
        True,
    ),
    "correct_java": (
        "```java\nimport java.util.*;\npublic class Main {\n  public static void main(String[] args) {\n"
        "    Scanner in = new Scanner(System.in);\n    System.out.println(in.nextLong() + in.nextLong());\n"
        "  }\n}\n```",
        RewardStatus.CORRECT,
        "passed",
        True,
    ),
    "correct_bash": ("```bash\nread a b\necho $((a + b))\n```", RewardStatus.CORRECT, "passed", True),
}


@pytest.fixture(scope="module")
def endpoints():
    with sandbox_servers(2, workers=2) as servers:
        yield [s.url for s in servers], servers


@pytest.mark.parametrize("name", sorted(CASES))
def test_verdicts_agree_with_verls_check_correctness(endpoints, name):
    urls, _ = endpoints
    response, status, per_test, verl_code = CASES[name]
    result = code_reward(response, ADD, endpoints=urls, run_timeout=1.5, stop_on_failure=False)
    assert result.status is status, result.metadata
    assert result.score == (1.0 if status is RewardStatus.CORRECT else 0.0)
    assert [t["status"] for t in result.metadata["tests"]] == [per_test] * len(ADD["inputs"])

    block = extract_code(response)
    verl_results, _ = verl_sandbox_fusion_utils().check_correctness(
        f"{urls[0]}/run_code",
        dict(ADD),
        block.code,
        language=block.sandbox_language,
        timeout=10 if block.sandbox_language in ("cpp", "java") else 2,
    )  # verl's one timeout is also the compiler's
    if verl_code is None:  # a wrong answer: verl says False for at least one test
        assert False in verl_results
    else:
        assert verl_results == [verl_code] * len(ADD["inputs"])
    assert (result.status is RewardStatus.CORRECT) == all(r is True for r in verl_results)


def test_no_code_block_is_no_answer(endpoints):
    result = code_reward("I would print the sum.", ADD, endpoints=endpoints[0])
    assert result.status is RewardStatus.NO_ANSWER and result.score == 0.0


def test_unreachable_sandboxes_are_an_error_never_a_silent_zero():
    down = [dead_endpoint(), dead_endpoint()]
    result = code_reward("```python\nprint(3)\n```", ADD, endpoints=down)
    assert result.status is RewardStatus.ERROR
    assert all(url in result.metadata["error"] for url in down)


def test_only_the_sampled_tests_run_and_the_sample_is_seeded(endpoints):
    urls, servers = endpoints
    many = {"inputs": [f"{i} {i}\n" for i in range(20)], "outputs": [f"{2 * i}\n" for i in range(20)]}
    response = CASES["correct_python"][0]
    before = sum(s.requests_served for s in servers)
    first = code_reward(response, many, endpoints=urls, max_tests=5, seed=3)
    assert sum(s.requests_served for s in servers) - before == 5
    assert first.metadata["tests_sampled"] == 5 and first.metadata["tests_total"] == 20
    again = code_reward(response, many, endpoints=urls, max_tests=5, seed=3)
    assert [t["index"] for t in again.metadata["tests"]] == [t["index"] for t in first.metadata["tests"]]


def test_the_first_definite_failure_stops_the_remaining_tests(endpoints):
    urls, servers = endpoints
    before = sum(s.requests_served for s in servers)
    result = code_reward(CASES["wrong_python"][0], ADD, endpoints=urls, concurrency=1)
    assert [t["status"] for t in result.metadata["tests"]] == ["wrong_answer", "skipped"]
    assert sum(s.requests_served for s in servers) - before == 1


@pytest.mark.parametrize(
    "response, status",
    [
        (
            "```python\nclass Solution:\n    def twoSum(self, nums, target):\n        seen = {}\n"
            "        for i, x in enumerate(nums):\n            if target - x in seen:\n                return [seen[target - x], i]\n"
            "            seen[x] = i\n```",
            RewardStatus.CORRECT,
        ),
        ("```python\ndef twoSum(nums, target):\n    return [0, 0]\n```", RewardStatus.WRONG),
        ("```cpp\nint twoSum() { return 0; }\n```", RewardStatus.WRONG),
    ],
)
def test_function_call_tests(endpoints, response, status):
    tests = {"fn_name": "twoSum", "inputs": ["[2, 7, 11, 15]\n9", [[3, 2, 4], 6]], "outputs": ["[0, 1]", [[1, 2]]]}
    result = code_reward(response, tests, endpoints=endpoints[0], stop_on_failure=False)
    assert result.status is status, result.metadata


def test_verls_assert_case_tests(endpoints):
    tests = {"assert_case": ["assert double(2) == 4", "assert double(-1) == -2"]}
    good = code_reward("```python\ndef double(x):\n    return 2 * x\n```", tests, endpoints=endpoints[0])
    bad = code_reward("```python\ndef double(x):\n    return x + 2\n```", tests, endpoints=endpoints[0])
    assert good.status is RewardStatus.CORRECT and bad.status is RewardStatus.WRONG


def test_malformed_tests_raise_naming_the_field(endpoints):
    with pytest.raises(ValueError, match="'outputs'"):
        code_reward("```python\nprint(1)\n```", {"inputs": ["1"]}, endpoints=endpoints[0])


def test_an_unsupported_language_on_the_embedded_sandbox_is_an_error(endpoints):
    if shutil.which("go"):
        pytest.skip("Go is installed here, so the embedded sandbox supports it")
    result = code_reward("```go\npackage main\nfunc main() {}\n```", ADD, endpoints=endpoints[0])
    assert result.status is RewardStatus.ERROR
    assert "not supported by the embedded sandbox" in result.metadata["error"]


def test_call_inputs_with_a_trailing_newline_where_verl_fails(endpoints):
    """verl's fn_name wrapper splits stdin on '\\n' and json-parses the empty last piece
    (verl/utils/reward_score/sandbox_fusion/utils.py:244): a correct function is scored wrong."""
    code = "def add(a, b):\n    return a + b\n"
    tests = {"inputs": ["1\n2\n"], "outputs": ["3"], "fn_name": "add"}
    verl_results, verl_meta = verl_sandbox_fusion_utils().check_correctness(
        f"{endpoints[0][0]}/run_code", dict(tests), code, timeout=5
    )
    assert verl_results == [False] and "WrapperError" in verl_meta[0]["stderr"]
    assert code_reward(f"```python\n{code}```", tests, endpoints=endpoints[0]).status is RewardStatus.CORRECT
