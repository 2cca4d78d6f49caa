"""The streaming dataset inside verl 0.9.1's real ``SFTTrainer.fit`` loop (engine stubbed):
exact mid-epoch resume through the loader state verl checkpoints, with and without tokenising
workers (``data.num_workers``), and the empty_cache hook."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from tests.data.corpus import streaming_config, write_mixture
from verl_falcon_plugin.data import empty_cache
from verl_falcon_plugin.data.sft_trainer_hooks import install
from verl_falcon_plugin.data.streaming_sft import StreamingSFTDataset

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

    files = write_mixture(tmp_path, {"math": 23, "code": 17})
    config = streaming_config(files, {"math": 0.6, "code": 0.4}, streaming={"samples_per_epoch": 22, "seed": 5})
    return lambda num_workers=0: StreamingSFTDataset(None, chat_tokenizer, {**config, "num_workers": num_workers})


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


@pytest.fixture
def make_dataset_with_drops(tmp_path, chat_tokenizer):
    """Every 4th math row has a prompt longer than max_length: right-trimming leaves it nothing to learn, so the
    stream drops it (which a worker learns only by tokenising it)."""

    files = write_mixture(tmp_path, {"math": 23, "code": 17})
    rows = [json.loads(line) for line in open(files["math"])]
    for index in range(0, len(rows), 4):
        rows[index]["messages"][0]["content"] = "long question " * 40
    files["math"].write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = streaming_config(
        files, {"math": 0.6, "code": 0.4}, max_length=64, streaming={"samples_per_epoch": 22, "seed": 5}
    )
    return lambda num_workers=0: StreamingSFTDataset(None, chat_tokenizer, {**config, "num_workers": num_workers})


@pytest.mark.slow  # worker processes
def test_tokenising_workers_give_the_batches_of_no_workers_and_resume_exactly(make_dataset_with_drops):
    """``data.num_workers=2`` in verl's fit: the very batches of ``num_workers=0`` (the reference path), dropped
    samples included, and a mid-epoch resume (crossing epochs) through verl's loader state reproduces them."""
    total, stop = 13, 7  # 5 steps per epoch
    plain = make_trainer(make_dataset_with_drops(), total_steps=total)
    plain.fit()
    dropped = sum(c for (_, note), c in plain.train_dataset.report.notes.items() if note == "no_loss_after_trim")
    assert dropped > 0, "the scenario must drop samples"
    workers = make_trainer(make_dataset_with_drops(num_workers=2), total_steps=total)
    workers.fit()
    assert workers.train_dataset._workers._iterator is not None, "the samples must come from the worker processes"
    assert workers.training_client.batches == plain.training_client.batches

    first = make_trainer(make_dataset_with_drops(num_workers=2), total_steps=stop)
    first.fit()
    resumed = make_trainer(make_dataset_with_drops(num_workers=2), total_steps=total, resume_step=stop)
    resumed.train_dataloader.load_state_dict(first.ckpt_handler.saved[stop])
    resumed.fit()
    assert first.training_client.batches + resumed.training_client.batches == plain.training_client.batches
    # without the saved state the workers would start the stream again
    unrestored = make_trainer(make_dataset_with_drops(num_workers=2), total_steps=total, resume_step=stop)
    unrestored.fit()
    assert unrestored.training_client.batches != plain.training_client.batches[stop:]


def test_resume_refuses_another_dp_layout(make_dataset):
    first = make_trainer(make_dataset(), total_steps=2)
    first.fit()
    other = make_trainer(make_dataset(), total_steps=4, dp_rank=1, dp_size=2)
    other.train_dataloader.load_state_dict(first.ckpt_handler.saved[2])
    with pytest.raises(ValueError, match="same data-parallel layout"):
        next(iter(other.train_dataloader))
    more_workers = make_trainer(make_dataset(num_workers=1), total_steps=4)
    more_workers.train_dataloader.load_state_dict(first.ckpt_handler.saved[2])
    with pytest.raises(ValueError, match="same data.num_workers"):
        next(iter(more_workers.train_dataloader))


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


    files = write_mixture(tmp_path, {"math": 10, "code": 10})
    config = compose_sft_config(
        ["data.custom_cls.path=pkg://verl_falcon_plugin.data.streaming_sft", "data.custom_cls.name=StreamingSFTDataset",
         f"data.train_files={files['math']}", "data.max_length=256", "data.truncation=right"]
    )  # fmt: skip
    with open_dict(config):
        config.data.streaming = {
            "sources": [{"name": c, "files": [str(p)], "probability": 0.5} for c, p in files.items()]
        }
    assert config.data.num_workers == 8  # verl's default: accepted, the dataset tokenises in 8 worker processes
    dataset = create_sft_dataset(config.data.train_files, config.data, chat_tokenizer, None, max_samples=12)
    assert isinstance(dataset, StreamingSFTDataset) and len(dataset) == 12 and dataset.num_workers == 8
    assert {item["input_ids"].dtype for item in dataset} == {torch.long}


def test_constructing_the_dataset_patches_nothing_and_imports_no_trainer_hook(tmp_path):
    """Installing verl hooks is activation's job: the dataset module neither imports them nor calls them."""
    import json
    import subprocess
    import sys

    files = write_mixture(tmp_path, {"math": 4})
    config = streaming_config(files, {"math": 1.0}, streaming={"samples_per_epoch": 4})
    script = f"""
import json, sys
from verl_falcon_plugin.data.streaming_sft import StreamingSFTDataset
from verl_falcon_plugin.data.tiny_chat_tokenizer import build_chat_tokenizer
dataset = StreamingSFTDataset(None, build_chat_tokenizer(), json.loads({json.dumps(config)!r}))
assert len(list(dataset)) == 4
loaded = [m for m in sys.modules if m == "verl" or m.startswith(("verl.", "verl_falcon_plugin.data.sft"))]
print(json.dumps(sorted(loaded)))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


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
