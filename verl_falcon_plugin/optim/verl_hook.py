"""``optim.lr_scheduler_type=linear`` for verl 0.9.1's FSDP engine (SFT trainer and the new-engine actor).

verl has no schedule registry: ``FSDPOptimizerConfig.__post_init__`` asserts the type is
``constant`` or ``cosine`` (``verl/workers/config/optimizer.py:123``) and
``FSDPEngine._build_lr_scheduler`` builds one of those two (``verl/workers/engine/fsdp/
transformer_impl.py:503``). The hook lets ``linear`` through both and leaves every other
value to verl's own code, so ``constant``/``cosine`` and verl's errors are unchanged.
Warmup steps are derived exactly as verl derives them (``lr_warmup_steps``, else
``lr_warmup_steps_ratio`` x total steps).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from verl_falcon_plugin.optim.linear_schedule import LINEAR, get_linear_schedule_with_warmup
from verl_falcon_plugin.requires import require

logger = logging.getLogger(__name__)
_FLAG = "_falcon_h1r_linear_schedule"


def install() -> list[str]:
    config_cls = require("verl.workers.config.optimizer", "the linear LR schedule").FSDPOptimizerConfig
    engine_cls = require("verl.workers.engine.fsdp.transformer_impl", "the linear LR schedule").FSDPEngine
    _wrap(config_cls, "__post_init__", _post_init)
    _wrap(engine_cls, "_build_lr_scheduler", _build_lr_scheduler)
    return [
        "FSDPOptimizerConfig accepts lr_scheduler_type=linear",
        "FSDPEngine._build_lr_scheduler builds the linear schedule (warmup, then linear decay)",
    ]


def _wrap(cls: type, name: str, make: Any) -> None:
    original = getattr(cls, name)
    if getattr(original, _FLAG, False):
        return
    wrapper = functools.wraps(original)(make(original))
    setattr(wrapper, _FLAG, True)
    setattr(cls, name, wrapper)


def _post_init(original: Any) -> Any:
    def __post_init__(self: Any) -> None:
        if self.lr_scheduler_type != LINEAR or self.warmup_style is not None:
            return original(self)
        self.lr_scheduler_type = "constant"  # past verl's assertion, then back
        try:
            original(self)
        finally:
            self.lr_scheduler_type = LINEAR

    return __post_init__


def _build_lr_scheduler(original: Any) -> Any:
    def build(self: Any, optimizer: Any) -> Any:
        config = self.optimizer_config
        if config.lr_scheduler_type != LINEAR:
            return original(self, optimizer)
        total_steps = config.total_training_steps
        warmup_steps = config.lr_warmup_steps
        if warmup_steps <= 0:
            warmup_steps = int(config.lr_warmup_steps_ratio * total_steps)
        if getattr(self, "rank", 0) == 0:
            logger.info("linear LR schedule: %d warmup steps of %d, min_lr_ratio %s",
                        warmup_steps, total_steps, config.min_lr_ratio)  # fmt: skip
        return get_linear_schedule_with_warmup(
            optimizer,
            num_warmup_steps=warmup_steps,
            num_training_steps=total_steps,
            min_lr_ratio=config.min_lr_ratio,
            zero_indexed_step=config.zero_indexed_step,
        )

    return build
