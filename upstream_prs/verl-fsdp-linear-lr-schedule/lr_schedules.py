"""The learning rates verl's FSDP engine schedules for ``lr_scheduler_type="linear"``, next to references; JSON.

Run with ``PYTHONPATH`` at a copy of verl (patched or not) and ``VERL_USE_EXTERNAL_PLUGINS=none``. The
scheduler is built by ``FSDPEngine._build_lr_scheduler`` itself, from an ``FSDPOptimizerConfig``; the references
are transformers' ``get_linear_schedule_with_warmup`` (decay to 0) and torch's ``LinearLR`` (decay to a floor).
"""

from __future__ import annotations

import json
import types

import torch
import transformers
import verl
from verl.workers.config.optimizer import FSDPOptimizerConfig
from verl.workers.engine.fsdp.transformer_impl import FSDPEngine

LR, TOTAL_STEPS = 1e-3, 10


def engine_lrs(**optim: object) -> list[float] | str:
    try:
        config = FSDPOptimizerConfig(lr=LR, total_training_steps=TOTAL_STEPS, lr_scheduler_type="linear", **optim)
    except AssertionError as error:
        return f"rejected: {error}"
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    engine = types.SimpleNamespace(optimizer_config=config, rank=1)  # what _build_lr_scheduler reads
    scheduler = FSDPEngine._build_lr_scheduler(engine, optimizer)
    return lrs(optimizer, scheduler)


def lrs(optimizer: torch.optim.Optimizer, scheduler) -> list[float]:
    values = []
    for _ in range(TOTAL_STEPS + 2):  # past the end: the floor holds
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values


def reference_warmup_then_decay_to_zero(warmup: int) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    return lrs(optimizer, transformers.get_linear_schedule_with_warmup(optimizer, warmup, TOTAL_STEPS))


def reference_decay_to_floor(min_lr_ratio: float) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    decay = torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, min_lr_ratio, total_iters=TOTAL_STEPS)
    return lrs(optimizer, decay)


def main() -> None:
    print(
        json.dumps(
            {
                "verl": verl.__file__,
                "warmup": {
                    "engine": engine_lrs(lr_warmup_steps=3),
                    "reference": reference_warmup_then_decay_to_zero(3),
                },
                "floor": {
                    "engine": engine_lrs(lr_warmup_steps=0, lr_warmup_steps_ratio=0.0, min_lr_ratio=0.2),
                    "reference": reference_decay_to_floor(0.2),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
