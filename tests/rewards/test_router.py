"""Router dispatch, the format combination, fixed result keys, batch scoring (no verl needed)."""

from __future__ import annotations

import asyncio
import json
import sys
import types

import pytest

from verl_falcon_plugin.rewards import router
from verl_falcon_plugin.rewards.result import RewardResult, RewardStatus

GOOD = "<think>\nwork\n</think>\nSo the answer is \\boxed{5}."


@pytest.fixture
def fake_code(monkeypatch):
    """Stands in for the code-reward module (owned elsewhere): records its calls."""
    calls = []

    def code_reward(response, tests, *, endpoints, **kwargs):
        calls.append((response, tests, endpoints, kwargs))
        return RewardResult(1.0, RewardStatus.CORRECT, {"tests": "all passed"})

    module = types.ModuleType("verl_falcon_plugin.rewards.code")
    module.code_reward = code_reward
    monkeypatch.setitem(sys.modules, "verl_falcon_plugin.rewards.code", module)
    import verl_falcon_plugin.rewards as rewards_pkg

    monkeypatch.setattr(rewards_pkg, "code", module, raising=False)
    return calls


@pytest.fixture
def fake_judge(monkeypatch):
    calls = []

    def judge_reward(question, response, ground_truth, *, endpoints, model=None, **kwargs):
        calls.append((question, ground_truth, endpoints, model))
        return RewardResult(1.0, RewardStatus.CORRECT, {})

    import verl_falcon_plugin.rewards.judge as judge

    monkeypatch.setattr(judge, "judge_reward", judge_reward)
    return calls


@pytest.mark.parametrize(
    "data_source,extra,domain",
    [
        ("aime25", None, "math"),
        ("lighteval/MATH", None, "math"),
        ("DigitalLearningGmbH/MATH-lighteval", None, "math"),
        ("livecodebench_v6", None, "code"),
        ("codeforces", None, "code"),
        ("Idavidrein/gpqa", None, "science"),
        ("my_mixed_set", {"domain": "code"}, "code"),
        ("aime25", {"domain": "science"}, "science"),  # the explicit domain wins
    ],
)
def test_resolve_domain(data_source, extra, domain):
    assert router.resolve_domain(data_source, extra) == domain


def test_unknown_domain_names_the_fix():
    with pytest.raises(ValueError, match="extra_info\\['domain'\\]"):
        router.resolve_domain("my_dataset")
    with pytest.raises(ValueError, match="not one of"):
        router.resolve_domain("aime", {"domain": "poetry"})


def test_math_dispatch_and_fixed_keys():
    out = router.compute_score("aime25", GOOD, "5")
    assert tuple(out) == router.RESULT_KEYS
    assert out["score"] == 1.0 and out["acc"] == 1.0 and out["domain"] == "math" and out["format_ok"]
    wrong = router.compute_score("aime25", GOOD.replace("{5}", "{6}"), "5")
    assert tuple(wrong) == router.RESULT_KEYS and wrong["score"] == 0.0 and wrong["status"] == "wrong"


def test_format_penalty_combination():
    correct_no_think = router.compute_score("aime25", "The answer is \\boxed{5}", "5")
    assert (correct_no_think["acc"], correct_no_think["format_penalty"], correct_no_think["score"]) == (1.0, 1.0, 0.0)
    wrong_no_think = router.compute_score("aime25", "The answer is \\boxed{4}", "5")
    assert wrong_no_think["score"] == -1.0
    assert "expected 1" in json.loads(correct_no_think["detail"])["format"][0]
    off = router.compute_score("aime25", "The answer is \\boxed{5}", "5", format_check=False)
    assert off["score"] == 1.0
    # prompt opened the think block (reasoning chat templates do): no penalty
    opened = router.compute_score("aime25", "work\n</think>\n\\boxed{5}", "5", think_opened_by_prompt=True)
    assert opened["score"] == 1.0


def test_language_penalty_uses_the_prompt_script():
    mixed = "<think>\nДавайте посчитаем this carefully\n</think>\nОтвет: \\boxed{5}"
    out = router.compute_score("aime25", mixed, "5", {"question": "Сколько будет 2+3?"})
    assert out["acc"] == 1.0 and out["format_penalty"] == 0.5 and out["score"] == 0.5
    assert 0.2 < out["foreign_share"] < 0.5


def test_code_dispatch_goes_to_the_code_reward(fake_code, monkeypatch):
    monkeypatch.setenv(router.ENV_SANDBOX_ENDPOINTS, "http://a:1, http://b:2")
    tests = {"inputs": ["1\n"], "outputs": ["1\n"]}
    out = router.compute_score("livecodebench", GOOD, tests, code_kwargs={"max_tests": 3})
    assert out["domain"] == "code" and out["score"] == 1.0
    assert fake_code == [(GOOD, tests, ["http://a:1", "http://b:2"], {"max_tests": 3})]


def test_code_without_endpoints_is_a_clear_error(fake_code, monkeypatch):
    monkeypatch.delenv(router.ENV_SANDBOX_ENDPOINTS, raising=False)
    with pytest.raises(ValueError, match="sandbox_endpoints"):
        router.compute_score("codeforces", GOOD, {"inputs": [], "outputs": []})


def test_science_dispatch(fake_judge):
    out = router.compute_score("gpqa_diamond", GOOD, "B", {"question": "Which?"}, judge_endpoints=["http://j:1"])
    assert out["domain"] == "science" and out["score"] == 1.0
    assert fake_judge == [("Which?", "B", ["http://j:1"], None)]
    with pytest.raises(ValueError, match="extra_info\\['question'\\]"):
        router.compute_score("gpqa_diamond", GOOD, "B", {}, judge_endpoints=["http://j:1"])


def test_verl_extra_kwargs_are_ignored():
    out = router.compute_score("aime25", GOOD, "5", {}, reward_router_address=None, reward_model_tokenizer=None)
    assert out["score"] == 1.0


def test_async_entry_point():
    out = asyncio.run(router.compute_score_async("aime25", GOOD, "5", {}))
    assert out["score"] == 1.0


def test_batch_of_512_keeps_order_and_isolates_failures(fake_code, monkeypatch):
    monkeypatch.setenv(router.ENV_SANDBOX_ENDPOINTS, "http://a:1")
    n = 512
    sources = ["aime25" if i % 3 else "codeforces" for i in range(n)]
    responses = [GOOD.replace("{5}", "{%d}" % (i % 7)) for i in range(n)]
    golds = [str(i % 7) if s == "aime25" else {"inputs": [], "outputs": []} for i, s in enumerate(sources)]
    sources[5] = "unknown_source"  # a bad row must not sink the batch
    out = router.compute_score_batch(sources, responses, golds)
    assert len(out) == n and all(tuple(o) == router.RESULT_KEYS for o in out)
    assert out[5]["status"] == "error" and "cannot tell" in out[5]["detail"]
    assert all(o["score"] == 1.0 for i, o in enumerate(out) if i != 5)
    assert len(fake_code) == sum(s == "codeforces" for s in sources)
    with pytest.raises(ValueError, match="differ in length"):
        router.compute_score_batch(sources[:2], responses, golds)


def test_rewards_import_neither_verl_nor_torch():
    import subprocess

    code = (
        "import sys\n"
        "from verl_falcon_plugin.rewards import compute_score, math_reward, judge_reward, check_format\n"
        "import verl_falcon_plugin.cli.score\n"
        "out = compute_score('aime', '<think>a</think>\\\\boxed{2^{1/3}}', '\\\\sqrt[3]{2}')\n"
        "assert out['score'] == 1.0, out\n"
        "print(sorted(m for m in ('torch', 'verl', 'vllm', 'transformers', 'sympy') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"  # even sympy stays in the math-verify worker processes
