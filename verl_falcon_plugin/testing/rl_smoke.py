"""A tiny RL task a tiny model gets *sometimes* right, built in code: model dir, tokenizer, parquet.

GRPO learns only from groups whose rewards differ. An untrained model under a strict
reward gets everything wrong, every group has zero advantage, and the online sampler
rightly stops (``GenerationBudgetExceeded``). So the smoke model is first taught, in a
few seconds of in-code training, the answer *format* of the task
(``<think>...</think>\\boxed{N}``) with answers drawn at random from
:data:`ANSWERS`: its answer is right about one time in three, whatever the question,
and the reward router (math domain, format check) gives groups of mixed rewards.

* :func:`build_smoke_tokenizer`: byte-level BPE with a ChatML template; ``<think>`` and
  ``</think>`` are ordinary added tokens, so they survive verl's
  ``decode(skip_special_tokens=True)`` (the format reward needs them).
* :func:`build_smoke_model_dir`: the above, a tiny Falcon-H1 taught the format, saved as
  a HF model directory (``actor_rollout_ref.model.path``).
* :func:`write_rl_parquet`: verl ``RLHFDataset`` rows (``data_source`` ``math_smoke``).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from verl_falcon_plugin.requires import require
from verl_falcon_plugin.testing.tiny_falcon_h1 import VLLM_SERVABLE_GEOMETRY, tiny_falcon_h1

ANSWERS = ("1", "2", "3")
DATA_SOURCE = "math_smoke"  # the router's "math" prefix: the two-tier math reward
SPECIAL_TOKENS = ["<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
THINK_TOKENS = ["<think>", "</think>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_WORDS = ("so", "we", "add", "the", "two", "numbers", "and", "get", "count", "sum", "then", "it", "is")


def question(rng: random.Random) -> tuple[str, str]:
    """A question and its ground truth (an element of :data:`ANSWERS`)."""
    a = rng.randint(0, 2)
    b = int(rng.choice(ANSWERS)) - a
    return f"What is {a} + {b}?", str(a + b)


def _response(rng: random.Random) -> str:
    thought = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 5)))
    return f"<think>{thought}</think>\\boxed{{{rng.choice(ANSWERS)}}}"


def build_smoke_tokenizer(vocab_size: int = 300, seed: int = 0) -> Any:
    tokenizers = require("tokenizers", "the RL smoke tokenizer")
    transformers = require("transformers", "the RL smoke tokenizer")
    rng = random.Random(seed)
    corpus = [f"{question(rng)[0]} {_response(rng)}" for _ in range(500)]
    model = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token=None))
    model.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    model.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    model.train_from_iterator(corpus, trainer=trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=model, eos_token="<|im_end|>", pad_token="<|pad|>", bos_token=None, unk_token=None
    )
    tokenizer.add_tokens(THINK_TOKENS)  # not special: they must survive skip_special_tokens decoding
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _teach_format(model: Any, tokenizer: Any, steps: int, seed: int) -> float:
    """A few AdamW steps of next-token loss on (question, random-answer) chats; returns the last loss."""
    torch = require("torch", "the RL smoke model")
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    loss = float("nan")
    for _ in range(steps):
        texts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": question(rng)[0]}, {"role": "assistant", "content": _response(rng)}],
                tokenize=False,
            )
            for _ in range(16)
        ]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        loss = float(out.loss.detach())
    model.eval()
    return loss


def build_smoke_model_dir(path: str | Path, *, seed: int = 0, steps: int = 60, geometry: dict | None = None) -> Path:
    """Save the smoke tokenizer and a tiny Falcon-H1 taught the answer format to ``path``; returns it."""
    torch = require("torch", "the RL smoke model")
    path = Path(path)
    tokenizer = build_smoke_tokenizer(seed=seed)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.convert_tokens_to_ids("<|pad|>")
    vocab = (len(tokenizer) + 63) // 64 * 64
    model = tiny_falcon_h1(
        geometry or VLLM_SERVABLE_GEOMETRY,
        seed=seed,
        vocab_size=vocab,
        eos_token_id=eos,
        pad_token_id=pad,
        bos_token_id=None,
        max_position_embeddings=512,
    )
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same weights on every machine (reduction order), and no oversubscription
    try:
        _teach_format(model, tokenizer, steps, seed)
    finally:
        torch.set_num_threads(threads)
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = pad
    model.generation_config.bos_token_id = None
    model.config.use_cache = False
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def rl_rows(count: int, *, seed: int, split: str) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        text, truth = question(rng)
        rows.append(
            {
                "data_source": DATA_SOURCE,
                "prompt": [{"role": "user", "content": text}],
                "ability": "math",
                "reward_model": {"style": "rule", "ground_truth": truth},
                "extra_info": {"index": index, "split": split, "question": text},
            }
        )
    return rows


def write_rl_parquet(path: str | Path, count: int, *, seed: int = 0, split: str = "train") -> Path:
    """``count`` smoke-task rows in verl's RL parquet layout."""
    pandas = require("pandas", "the RL smoke parquet")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pandas.DataFrame(rl_rows(count, seed=seed, split=split)).to_parquet(path)
    return path
