"""The streaming dataset inside verl 0.9.1's real ``SFTTrainer.fit`` loop (engine stubbed):
exact mid-epoch resume through verl's StatefulDataLoader state, and the empty_cache hook."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from tests.data.corpus import streaming_config, write_mixture
from verl_falcon_plugin.data import empty_cache
from verl_falcon_plugin.data.sft_trainer_hooks import install

BATCH = 4


class RecordingClient:
    def __init__(self):
        self.batches = []

    def train_batch(self, data):
        ids = data["input_ids"]
        self.batches.append([row.tolist() for row in ids.unbind()])
        return {}

    def start_profile(self):
        pass

    def step_profile(self):
        pass

    def stop_profile(self):
        pass


class SavingHandler:
    def __init__(self, trainer):
        self.trainer = trainer
        self.saved = {}

    def save_checkpoint(self, step):
        self.saved[step] = self.trainer.train_dataloader.state_dict()


def make_trainer(dataset, *, total_steps, resume_step=0, epochs=3, empty_cache_every=0, dp_rank=0, dp_size=1):
    from verl.trainer.sft_trainer import SFTTrainer

    install()
    trainer = object.__new__(SFTTrainer)
    trainer.config = OmegaConf.create(
        {
            "data": {"train_batch_size": BATCH * dp_size, "pad_mode": "no_padding", "num_workers": 0,
                     "use_dynamic_bsz": False, "max_token_len_per_gpu": 1024, "micro_batch_size_per_gpu": 1},
            "model": {"use_remove_padding": True},
            "trainer": {"total_epochs": epochs, "empty_cache_every_n_steps": empty_cache_every},
        }
    )  # fmt: skip
    trainer.engine = SimpleNamespace(
        get_data_parallel_rank=lambda: dp_rank,
        get_data_parallel_size=lambda: dp_size,
        is_mp_src_rank_with_outputs=lambda: False,
        get_data_parallel_group=lambda: None,
    )
    trainer.training_client = RecordingClient()
    trainer.train_dataset, trainer.val_dataset = dataset, None
    trainer._build_dataloader()
    trainer.steps_per_epoch = len(trainer.train_dataloader)
    trainer.total_training_steps = total_steps
    trainer.resume_global_step = resume_step
    trainer.rank, trainer.device_name = 0, "cpu"
    trainer.start_profile_step = trainer.end_profile_step = -1
    trainer.test_freq, trainer.save_freq = -1, 1
    trainer.model_config = SimpleNamespace(tokenizer=dataset.tokenizer)
    trainer.ckpt_handler = SavingHandler(trainer)
    return trainer


@pytest.fixture(autouse=True)
def no_gpu_memory_logging(monkeypatch):
    """``fit`` logs CUDA memory at each epoch start, which asserts on a CPU-only torch."""
    import verl.trainer.sft_trainer as sft_trainer

    monkeypatch.setattr(sft_trainer, "log_gpu_memory_usage", lambda *args, **kwargs: None)


@pytest.fixture
def make_dataset(tmp_path, chat_tokenizer):
    from verl_falcon_plugin.data.streaming_sft import StreamingSFTDataset

    files = write_mixture(tmp_path, {"math": 23, "code": 17})
    config = streaming_config(files, {"math": 0.6, "code": 0.4}, streaming={"samples_per_epoch": 22, "seed": 5})
    return lambda: StreamingSFTDataset(None, chat_tokenizer, config)


def test_streaming_dataloader_replaces_verls_sampler(make_dataset):
    trainer = make_trainer(make_dataset(), total_steps=1)
    assert trainer.train_sampler is trainer.train_dataset
    assert len(trainer.train_dataloader) == 22 // BATCH  # whole batches only


def test_resume_mid_epoch_reproduces_the_uninterrupted_run(make_dataset):
    total = 13  # 5 steps per epoch: resume at 7 is mid-epoch 2, the run crosses into epoch 3
    full = make_trainer(make_dataset(), total_steps=total)
    full.fit()
    assert len(full.training_client.batches) == total

    stop = 7
    first = make_trainer(make_dataset(), total_steps=stop)
    first.fit()
    state = first.ckpt_handler.saved[stop]

    resumed = make_trainer(make_dataset(), total_steps=total, resume_step=stop)
    resumed.train_dataloader.load_state_dict(state)
    resumed.fit()
    assert first.training_client.batches + resumed.training_client.batches == full.training_client.batches
    # without the saved stream state the "resumed" run would replay the start of the stream
    unrestored = make_trainer(make_dataset(), total_steps=total, resume_step=stop)
    unrestored.fit()
    assert unrestored.training_client.batches != full.training_client.batches[stop:]
    # samples of consecutive epochs differ (the stream continues rather than restarting)
    assert full.training_client.batches[0] != full.training_client.batches[5]


def test_resume_refuses_another_dp_layout(make_dataset):
    first = make_trainer(make_dataset(), total_steps=2)
    first.fit()
    other = make_trainer(make_dataset(), total_steps=4, dp_rank=1, dp_size=2)
    other.train_dataloader.load_state_dict(first.ckpt_handler.saved[2])
    with pytest.raises(ValueError, match="same data-parallel layout"):
        next(iter(other.train_dataloader))


def test_empty_cache_hook_runs_every_n_steps_in_fit(make_dataset, monkeypatch):
    calls = []
    monkeypatch.setattr(empty_cache, "cuda_empty_cache", lambda: lambda: calls.append(1))
    trainer = make_trainer(make_dataset(), total_steps=10, empty_cache_every=3)
    trainer.fit()
    assert len(trainer.training_client.batches) == 10
    assert len(calls) == 3  # after steps 3, 6, 9


def test_empty_cache_is_a_no_op_without_cuda(make_dataset):
    assert not torch.cuda.is_available()
    assert empty_cache.cuda_empty_cache() is None
    trainer = make_trainer(make_dataset(), total_steps=4, empty_cache_every=2)
    trainer.fit()
    hook = trainer.training_client.train_batch.empty_cache_hook
    assert (hook.steps, hook.releases) == (4, 0)


def test_cuda_empty_cache_is_torchs_when_cuda_is_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert empty_cache.cuda_empty_cache() is torch.cuda.empty_cache


def test_verls_map_style_path_is_untouched(tmp_path, chat_tokenizer):
    """Any other dataset still gets verl's DistributedSampler."""
    import pandas as pd
    from torch.utils.data import DistributedSampler
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    path = tmp_path / "t.parquet"
    pd.DataFrame(
        [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}] * 8
    ).to_parquet(path)
    dataset = MultiTurnSFTDataset(str(path), chat_tokenizer, {"pad_mode": "no_padding", "max_length": 64})
    trainer = make_trainer(dataset, total_steps=1)
    assert isinstance(trainer.train_sampler, DistributedSampler)


def compose_sft_config(overrides):
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        return compose(config_name="sft_trainer_engine", overrides=overrides)


def test_verls_own_factory_builds_the_dataset_from_data_custom_cls(tmp_path, chat_tokenizer):
    from omegaconf import open_dict
    from verl.trainer.sft_trainer import create_sft_dataset

    from verl_falcon_plugin.data.streaming_sft import StreamingSFTDataset

    files = write_mixture(tmp_path, {"math": 10, "code": 10})
    config = compose_sft_config(
        ["data.custom_cls.path=pkg://verl_falcon_plugin.data.streaming_sft", "data.custom_cls.name=StreamingSFTDataset",
         f"data.train_files={files['math']}", "data.max_length=256", "data.truncation=right"]
    )  # fmt: skip
    with open_dict(config):
        config.data.streaming = {
            "sources": [{"name": c, "files": [str(p)], "probability": 0.5} for c, p in files.items()]
        }
    with pytest.raises(ValueError, match="num_workers=0"):  # verl's default is 8
        create_sft_dataset(config.data.train_files, config.data, chat_tokenizer, None)
    config.data.num_workers = 0
    dataset = create_sft_dataset(config.data.train_files, config.data, chat_tokenizer, None, max_samples=12)
    assert isinstance(dataset, StreamingSFTDataset) and len(dataset) == 12
    assert {item["input_ids"].dtype for item in dataset} == {torch.long}


def test_install_also_patches_the_trainer_class_of_python_m_verl_trainer_sft_trainer(monkeypatch):
    """Under ``python -m verl.trainer.sft_trainer`` the running class lives in ``__main__``."""
    import importlib.machinery
    import sys
    import types

    class MainSFTTrainer:
        def _build_dataloader(self):
            pass

    fake_main = types.ModuleType("__main__")
    fake_main.__spec__ = importlib.machinery.ModuleSpec("verl.trainer.sft_trainer", None)
    fake_main.SFTTrainer = MainSFTTrainer
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    patched = install()
    assert any(p.startswith("__main__.SFTTrainer") for p in patched)
    assert getattr(MainSFTTrainer._build_dataloader, "_falcon_h1r_streaming", False)


def test_two_dp_ranks_resume_exactly_and_split_the_global_stream(make_dataset):
    total, stop = 8, 3  # 2 steps per epoch per rank: the resume crosses epochs
    per_rank = []
    for rank in range(2):
        kwargs = dict(dp_rank=rank, dp_size=2)
        full = make_trainer(make_dataset(), total_steps=total, **kwargs)
        full.fit()
        first = make_trainer(make_dataset(), total_steps=stop, **kwargs)
        first.fit()
        resumed = make_trainer(make_dataset(), total_steps=total, resume_step=stop, **kwargs)
        resumed.train_dataloader.load_state_dict(first.ckpt_handler.saved[stop])
        resumed.fit()
        assert first.training_client.batches + resumed.training_client.batches == full.training_client.batches
        per_rank.append([seq for batch in full.training_client.batches for seq in batch])
    # rank r trains on samples r, r+2, r+4, ... of the one global stream: disjoint, covering
    single = make_dataset()
    single.samples_per_epoch = 10**6  # one long epoch, to read the global stream
    global_stream = [item["input_ids"].tolist() for _, item in zip(range(2 * len(per_rank[0])), single)]
    assert per_rank[0] == global_stream[0::2] and per_rank[1] == global_stream[1::2]


def test_state_saved_right_after_a_restore_keeps_the_restored_position(make_dataset):
    first = make_trainer(make_dataset(), total_steps=3)
    first.fit()
    restored = make_dataset()
    restored.load_state_dict(first.train_dataset.state_dict())
    again = make_dataset()
    again.load_state_dict(restored.state_dict())  # checkpointed before drawing anything
    assert [i["input_ids"].tolist() for _, i in zip(range(6), again)] == [
        i["input_ids"].tolist() for _, i in zip(range(6), restored)
    ]
    fresh = make_dataset()
    assert [i["input_ids"].tolist() for _, i in zip(range(6), fresh)] != [
        i["input_ids"].tolist() for _, i in zip(range(6), again)
    ]
