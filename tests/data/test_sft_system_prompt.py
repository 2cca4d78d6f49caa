"""`data.streaming.system_prompt: paper` puts Falcon-H1R's system prompt into every SFT sample, unsupervised."""

from __future__ import annotations

from tests.data.corpus import streaming_config, write_mixture
from verl_falcon_plugin.data.rl_rollouts import PAPER_SYSTEM_PROMPT


def first_item(tmp_path, chat_tokenizer, system_prompt):
    from verl_falcon_plugin.data.streaming_sft import StreamingSFTDataset

    files = write_mixture(tmp_path, {"math": 4})
    streaming = {"samples_per_epoch": 2} if system_prompt is None else {"samples_per_epoch": 2,
                                                                        "system_prompt": system_prompt}  # fmt: skip
    config = streaming_config(files, {"math": 1.0}, max_length=512, streaming=streaming)
    return next(iter(StreamingSFTDataset(None, chat_tokenizer, config)))


def test_paper_system_prompt_is_rendered_by_the_chat_template_and_not_supervised(tmp_path, chat_tokenizer):
    item = first_item(tmp_path, chat_tokenizer, "paper")
    text = chat_tokenizer.decode(item["input_ids"].tolist())
    assert text.startswith(f"<|im_start|>system\n{PAPER_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n")
    supervised = chat_tokenizer.decode(item["input_ids"][item["loss_mask"].bool()].tolist())
    assert "You are Falcon" not in supervised and supervised.lstrip().startswith("<think>")


def test_without_the_setting_no_system_turn_is_added(tmp_path, chat_tokenizer):
    item = first_item(tmp_path, chat_tokenizer, None)
    assert not chat_tokenizer.decode(item["input_ids"].tolist()).startswith("<|im_start|>system")
