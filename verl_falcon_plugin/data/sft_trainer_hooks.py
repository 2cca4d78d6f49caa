"""What verl's SFT trainer needs patched to train from :class:`StreamingSFTDataset`.

``SFTTrainer._build_dataloader`` (verl 0.9.1, ``verl/trainer/sft_trainer.py``) always
wraps the dataset in a ``DistributedSampler``; a stream has no indices. The patch
keeps verl's code path for every other dataset and, for a streaming one, shards it by
the engine's DP rank (so the ranks of one Ulysses group read identical samples) and
builds the ``StatefulDataLoader`` without a sampler. It also attaches the periodic
``empty_cache`` hook (``+trainer.empty_cache_every_n_steps=N``) after the engine exists.

:func:`install` is idempotent and registered in ``activation.INSTALLERS`` (run on every
``import verl``). Under ``python -m verl.trainer.sft_trainer`` the class that runs is
``__main__.SFTTrainer``, which does not exist yet when verl's plugins load; the dataset
therefore calls :func:`install` again when verl constructs it (before
``_build_dataloader``), which patches ``__main__``'s class. With verl's own dataset and the
``empty_cache`` hook, launch through ``python -m verl_falcon_plugin.data.run_sft`` instead.
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import Any

from verl_falcon_plugin.data.empty_cache import attach_to_trainer
from verl_falcon_plugin.requires import require

logger = logging.getLogger(__name__)

_PATCHED_FLAG = "_falcon_h1r_streaming"


def install() -> list[str]:
    """Patch ``SFTTrainer._build_dataloader`` in verl's module and, when verl's trainer runs as
    ``python -m verl.trainer.sft_trainer``, in ``__main__`` too: there the trainer class is a
    second class object, defined in ``__main__``, which patching the module would miss."""
    trainer_module = require("verl.trainer.sft_trainer", "the streaming SFT dataloader")
    patched = [_patch_class(trainer_module.SFTTrainer, "verl.trainer.sft_trainer.SFTTrainer")]
    main = sys.modules.get("__main__")
    main_spec = getattr(main, "__spec__", None)
    if main_spec is not None and main_spec.name == trainer_module.__name__ and hasattr(main, "SFTTrainer"):
        patched.append(_patch_class(main.SFTTrainer, "__main__.SFTTrainer"))
    return patched


def _patch_class(trainer_cls: type, name: str) -> str:
    description = f"{name}._build_dataloader (streaming datasets, empty_cache hook)"
    if getattr(trainer_cls._build_dataloader, _PATCHED_FLAG, False):
        return description
    original = trainer_cls._build_dataloader

    @functools.wraps(original)
    def _build_dataloader(self: Any) -> None:
        from verl_falcon_plugin.data.streaming_sft import StreamingSFTDataset

        if isinstance(self.train_dataset, StreamingSFTDataset):
            build_streaming_dataloaders(self)
        else:
            original(self)
        attach_to_trainer(self, int(self.config.trainer.get("empty_cache_every_n_steps", 0) or 0))

    setattr(_build_dataloader, _PATCHED_FLAG, True)
    trainer_cls._build_dataloader = _build_dataloader
    logger.debug("patched %s", description)  # activation reports it at INFO
    return description


def build_streaming_dataloaders(trainer: Any) -> None:
    """Set what verl's ``_build_dataloader`` sets, for streaming train (and val) datasets."""
    stateful = require("torchdata.stateful_dataloader", "the streaming SFT dataloader")
    collator = require("verl.utils.dataset.dataset_utils", "the streaming SFT dataloader").SFTTensorCollator
    config = trainer.config
    dp_rank = trainer.engine.get_data_parallel_rank()
    dp_size = trainer.engine.get_data_parallel_size()
    trainer.global_batch_size = config.data.train_batch_size
    if trainer.global_batch_size % dp_size:
        raise ValueError(f"data.train_batch_size={trainer.global_batch_size} is not divisible by {dp_size} DP ranks")
    trainer.train_batch_size_per_dp = trainer.global_batch_size // dp_size
    trainer.collate_fn = collator(config.data.pad_mode)

    def loader(dataset: Any) -> Any:
        dataset.shard(dp_rank=dp_rank, dp_size=dp_size, batch_size=trainer.train_batch_size_per_dp)
        return stateful.StatefulDataLoader(
            dataset=dataset,
            batch_size=trainer.train_batch_size_per_dp,
            collate_fn=trainer.collate_fn,
            num_workers=0,
            pin_memory=False,
            drop_last=True,
        )

    trainer.train_sampler = trainer.train_dataset  # fit() calls train_sampler.set_epoch(epoch)
    trainer.train_dataloader = loader(trainer.train_dataset)
    trainer.val_sampler = None
    trainer.val_dataloader = loader(trainer.val_dataset) if trainer.val_dataset else None
    logger.info(
        "streaming SFT: DP rank %d/%d, %d samples per rank per epoch, batch %d",
        dp_rank, dp_size, len(trainer.train_dataset), trainer.train_batch_size_per_dp,
    )  # fmt: skip
