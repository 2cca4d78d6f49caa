"""A small byte-level BPE tokenizer with a ChatML + ``<think>`` chat template, built in code.

Tests, benchmarks and the vLLM rollout test need a *real* tokenizer with a *real*
chat template (never a download): this one is trained in about a second on a
generated corpus and wrapped in ``transformers.PreTrainedTokenizerFast``.
"""

from __future__ import annotations

import random
from typing import Any

from verl_falcon_plugin.requires import require

SPECIAL_TOKENS = [
    "<|pad|>",
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
]

# ChatML. Tools are declared once, before the first turn, so rendering any prefix
# of a conversation is a prefix of rendering all of it (the loss masks rely on it).
CHAT_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n# Tools\n{{ tools | tojson }}<|im_end|>\n{% endif %}"
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


_WORDS = (
    "the a of to and is in that for it as with on be by this are from at or an which solve answer "
    "compute prove integer sum product number prime square root triangle circle angle area volume "
    "function def return print import class if else for while range len list dict int str float "
    "energy mass force velocity acceleration charge molecule reaction atom cell gene protein "
    "user assistant system tool call result error think therefore so we get boxed frac sqrt pi"
).split()


def _corpus(seed: int, lines: int) -> list[str]:
    rng = random.Random(seed)
    symbols = list("0123456789+-*/=()[]{}<>\\^_.,:;!?'\"#%&|$ \n") + [r"\boxed{", r"\frac{"]
    out = []
    for _ in range(lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 16))]
        words += [rng.choice(symbols) for _ in range(rng.randint(2, 8))]
        rng.shuffle(words)
        out.append(" ".join(words))
    return out


def build_chat_tokenizer(vocab_size: int = 512, seed: int = 0) -> Any:
    """A ``PreTrainedTokenizerFast`` with ChatML special tokens and :data:`CHAT_TEMPLATE`."""
    tokenizers = require("tokenizers", "building the tiny test tokenizer")
    transformers = require("transformers", "building the tiny test tokenizer")
    model = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token=None))
    model.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    model.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    model.train_from_iterator(_corpus(seed, 2000), trainer=trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=model,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token=None,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
