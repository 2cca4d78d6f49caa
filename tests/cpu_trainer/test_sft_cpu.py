"""SFT through ``torchrun -m verl_falcon_plugin.data.run_sft`` on CPU: 2 ranks, Ulysses SP=2, packed sequences,
the streaming weighted mixture and the balanced DP token loss, a few steps of verl's real ``SFTTrainer.fit``.

What ran is read from the trainer's own output: its per-step console metrics (``train/loss``,
``train/global_tokens``), the streaming dataloader's and the Falcon-H1 patch's log lines. The balanced
loss is verl's ``sft_loss`` with eps added to the global token count, identical to it otherwise; a second
run with a huge eps (1e9) proves that verl really trains with it: the loss it logs collapses to ~0.
"""

from __future__ import annotations

import math
import sys

import pytest
import yaml

from tests.data.corpus import write_mixture
from verl_falcon_plugin.testing.trainer_run import leftover_processes, run_trainer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

STEPS = 3


@pytest.fixture(scope="module")
def mixture_file(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("sft_mixture")
    files = write_mixture(root, {"math": 40, "code": 40}, think_words=6)
    mixture = {
        "seed": 0,
        "samples_per_epoch": 32,
        "sources": [{"name": name, "probability": 0.5, "files": [str(path)]} for name, path in files.items()],
    }
    path = root / "mixture.yaml"
    path.write_text(yaml.safe_dump(mixture))
    return str(path)


def run_sft(smoke_inputs, mixture_file, tmp_path, *extra: str):
    tmp_path.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "verl_falcon_plugin.data.run_sft",
        f"model.path={smoke_inputs['model']}", "model.use_remove_padding=true",
        "engine.ulysses_sequence_parallel_size=2",
        "data.custom_cls.path=pkg://verl_falcon_plugin.data.streaming_sft", "data.custom_cls.name=StreamingSFTDataset",
        f"+data.streaming.mixture_file={mixture_file}", "data.train_files=[]",
        "data.balance_dp_token=True", "data.train_batch_size=4", "data.micro_batch_size_per_gpu=2",
        "data.max_length=128", "data.truncation=right", "data.use_dynamic_bsz=false",
        f"trainer.total_training_steps={STEPS}", "trainer.logger=[console]", "trainer.save_freq=-1",
        f"trainer.default_local_dir={tmp_path / 'checkpoints'}", *extra,
    ]  # fmt: skip
    return run_trainer(command, cwd=tmp_path, timeout_s=800)


def test_sft_two_ranks_sp2_streaming_mixture_balanced_loss(smoke_inputs, mixture_file, tmp_path) -> None:
    run = run_sft(smoke_inputs, mixture_file, tmp_path)
    assert run.returncode == 0, run.log[-6000:]
    assert sorted(run.metrics) == list(range(1, STEPS + 1))
    losses = [run.metrics[step]["train/loss"] for step in sorted(run.metrics)]
    assert all(math.isfinite(loss) and loss > 1.0 for loss in losses)
    assert all(run.metrics[step]["train/global_tokens"] > 0 for step in run.metrics)
    # both ranks read the streaming mixture (one DP group of 2 SP ranks: both see DP rank 0/1)
    assert run.log.count("streaming SFT: DP rank 0/1") == 2
    assert run.log.count("falcon_h1r: apply_monkey_patch patched") == 2
    assert "data.balance_dp_token=True -> balanced DP token loss" in run.log
    print(f"\n[cpu_trainer] sft 2 ranks SP=2: {run.summary()} losses {losses}")

    control = run_sft(smoke_inputs, mixture_file, tmp_path / "huge_eps", "+data.balance_dp_token_eps=1e9")
    assert control.returncode == 0, control.log[-6000:]
    control_losses = [control.metrics[step]["train/loss"] for step in sorted(control.metrics)]
    print(f"[cpu_trainer] sft eps=1e9 control: {control.summary()} losses {control_losses}")
    assert all(abs(loss) < 1e-3 for loss in control_losses)
    assert leftover_processes(str(tmp_path)) == []  # no torchrun rank outlives its run
