"""Linear warmup then linear decay, in the shape of verl's own schedules (``verl/utils/torch_functional.py``).

Falcon-H1R's SFT used "linear, 4% warmup" (paper Table 1): the learning rate rises linearly from 0
to its peak over the warmup steps, then falls linearly to ``min_lr_ratio`` x peak at the last step.
The signature and the ``zero_indexed_step`` convention mirror verl's ``get_cosine_schedule_with_warmup``,
so the function can move upstream next to it unchanged (``upstream_prs/``).
"""

from __future__ import annotations

from typing import Any

#: the ``optim.lr_scheduler_type`` value that selects this schedule
LINEAR = "linear"


def linear_lr_ratio(
    step: int, num_warmup_steps: int, num_training_steps: int, min_lr_ratio: float = 0.0, zero_indexed_step: bool = True
) -> float:
    """The multiplier of the peak learning rate at ``step``."""
    if not zero_indexed_step:
        step += 1
    if step < num_warmup_steps:
        return float(step) / float(max(1, num_warmup_steps))
    progress = float(step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
    return max(min_lr_ratio, 1.0 - (1.0 - min_lr_ratio) * progress)


def get_linear_schedule_with_warmup(
    optimizer: Any,
    num_warmup_steps: int,
    num_training_steps: int,
    min_lr_ratio: float | None = 0.0,
    last_epoch: int = -1,
    zero_indexed_step: bool = True,
) -> Any:
    """A ``torch.optim.lr_scheduler.LambdaLR`` for :func:`linear_lr_ratio`."""
    from torch.optim.lr_scheduler import LambdaLR

    min_lr_ratio = 0.0 if min_lr_ratio is None else min_lr_ratio
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"optim.min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
    if num_training_steps <= 0:
        raise ValueError(f"a linear decay needs the number of training steps, got {num_training_steps}")

    def lr_lambda(step: int) -> float:
        return linear_lr_ratio(step, num_warmup_steps, num_training_steps, min_lr_ratio, zero_indexed_step)

    return LambdaLR(optimizer, lr_lambda, last_epoch)
