"""A word-level tokenizer built in code (never downloaded), with ``<think>`` tags special or not."""

from __future__ import annotations

WORDS = ["reasoning", "answer", "the", "is", "5", "so", "let", "me", "think", "\\boxed{5}"]


def build_tokenizer(think_tags_special: bool):
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<eos>": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", eos_token="<eos>")
    tags = [AddedToken(t, special=think_tags_special, normalized=False) for t in ("<think>", "</think>")]
    if think_tags_special:
        tokenizer.add_special_tokens({"additional_special_tokens": tags})
    else:
        tokenizer.add_tokens(tags)
    return tokenizer
