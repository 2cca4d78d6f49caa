"""Format reward: structure, mixed-language share, and what verl's decode does to the think tags."""

from __future__ import annotations

import pytest

from tests.rewards.tiny_tokenizer import build_tokenizer
from verl_falcon_plugin.rewards.format import (
    check_format,
    check_structure,
    foreign_share,
    require_think_tags_survive_decode,
    strip_math_and_code,
    think_tags_survive_decode,
)


@pytest.mark.parametrize(
    "response,ok",
    [
        ("<think>\nwork\n</think>\nanswer", True),
        ("  <think>work</think> answer", True),
        ("<think>work</think>", False),  # empty answer
        ("<think>work</think>   \n", False),
        ("work</think>answer", False),  # missing <think>
        ("<think>work answer", False),  # never closed (truncated)
        ("<think>a</think><think>b</think>answer", False),  # two think blocks
        ("</think><think>answer", False),
        ("preamble <think>work</think>answer", False),
        ("answer only", False),
    ],
)
def test_structure(response, ok):
    assert check_structure(response)[0] is ok


def test_think_opened_by_the_prompt():
    assert check_structure("work</think>answer", think_opened_by_prompt=True)[0]
    assert not check_structure("work</think>", think_opened_by_prompt=True)[0]
    assert check_structure("<think>work</think>answer", think_opened_by_prompt=True)[0]


def test_latex_and_code_are_not_language():
    text = "Ответ $\\alpha + \\beta$ и ```python\nprint('hello world')\n``` и `x_max` \\frac{a}{b}"
    prose = strip_math_and_code(text)
    assert "alpha" not in prose and "print" not in prose and "x_max" not in prose and "frac" not in prose
    assert foreign_share(text, "CYRILLIC") == 0.0


def test_mixed_language_share():
    assert foreign_share("<think>просто</think> ok", "CYRILLIC") == pytest.approx(2 / 8)
    assert foreign_share("全部是中文的回答", "CJK") == 0.0
    assert foreign_share("答案是 five", "CJK") == pytest.approx(4 / 7)
    result = check_format("<think>Let me think 然后计算</think>The answer is 5", prompt="What is 2+3?")
    assert result.structure_ok and result.foreign_share == pytest.approx(4 / 25)  # 21 Latin letters, 4 Han
    assert result.penalty(1.0, 0.5, 0.05) == 0.5
    assert check_format("<think>Let me think</think>5", prompt="What is 2+3?").penalty(1.0, 0.5, 0.05) == 0.0


def test_special_think_tags_are_stripped_by_verls_decode():
    """verl's reward managers decode with skip_special_tokens=True: special think tags vanish."""
    text = "<think> let me think </think> the answer is \\boxed{5}"
    special = build_tokenizer(think_tags_special=True)
    plain = build_tokenizer(think_tags_special=False)
    for tokenizer in (special, plain):  # both encode the tags as single tokens
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert tokenizer.convert_tokens_to_ids("<think>") in ids
    stripped = special.decode(special.encode(text, add_special_tokens=False), skip_special_tokens=True)
    kept = plain.decode(plain.encode(text, add_special_tokens=False), skip_special_tokens=True)
    assert "<think>" not in stripped and "</think>" not in stripped
    assert "<think>" in kept and "</think>" in kept
    # the format reward would fail every response decoded by the special-token tokenizer...
    assert not check_structure(stripped)[0] and check_structure(kept)[0]
    # ...which the detection catches with the fix in the message
    assert not think_tags_survive_decode(special) and think_tags_survive_decode(plain)
    with pytest.raises(ValueError, match="non-special added tokens"):
        require_think_tags_survive_decode(special)
    require_think_tags_survive_decode(plain)
