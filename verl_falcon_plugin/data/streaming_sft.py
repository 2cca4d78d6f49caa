"""``StreamingSFTDataset``: the weighted, filtered, streaming SFT mixture for verl's SFT trainer.

Select it with::

    data.custom_cls.path=pkg://verl_falcon_plugin.data.streaming_sft
    data.custom_cls.name=StreamingSFTDataset
    +data.streaming.mixture_file=recipes/sft/mixture.yaml   # sources, filters, difficulty

**What verl 0.9.1 expects, and how this class meets it.** ``create_sft_dataset``
constructs ``cls(parquet_files=, tokenizer=, config=data_config, processor=, max_samples=)``
and items must be what ``MultiTurnSFTDataset`` returns (``input_ids``, ``position_ids``,
``loss_mask`` as 1-D int64 tensors; plus ``attention_mask`` and padding to ``max_length``
when ``pad_mode=right``). But ``SFTTrainer._build_dataloader`` wraps every dataset in a
``DistributedSampler`` over indices, which a stream cannot serve (a map-style facade
would need random access, i.e. an index of the whole corpus). So this is an
``IterableDataset`` with ``__len__`` (samples per DP rank per epoch), and the plugin's hook
of ``SFTTrainer._build_dataloader`` (installed when the plugin activates, never by this
constructor) shards it by DP rank and builds the ``StatefulDataLoader`` without a sampler
for it (other datasets take verl's path unchanged). That loader iterates in the trainer's
process; with ``data.num_workers > 0`` the dataset tokenises in worker processes of its own
(:mod:`verl_falcon_plugin.data.streaming_workers`): the same samples in the same order as
without workers, and the same exact resume.

An epoch is ``data.streaming.samples_per_epoch`` samples of the endless mixture
(default: the raw row count of all sources), rounded down per rank to whole batches so
that no sample is drawn and then dropped by ``drop_last``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Iterator

from verl_falcon_plugin.data.conversation import prepare_conversation, tokenize_conversation, with_system_prompt
from verl_falcon_plugin.data.difficulty import DifficultyConfig
from verl_falcon_plugin.data.filters import FilterConfig, FilterReport
from verl_falcon_plugin.data.mixture import MixtureConfig, build_mixture_stream
from verl_falcon_plugin.data.sources import SourceSpec, count_rows, malformed, sources_from_config
from verl_falcon_plugin.data.state import StreamPosition, pack_state, unpack_state
from verl_falcon_plugin.data.streaming_workers import WorkerSamples
from verl_falcon_plugin.data.trimming import DEFAULT_MAX_LENGTH, right_trim
from verl_falcon_plugin.requires import require

torch = require("torch", "the streaming SFT dataset")

logger = logging.getLogger(__name__)


def _plain(value: Any) -> Any:
    """OmegaConf containers -> plain Python (verl hands us a DictConfig)."""
    if hasattr(value, "_metadata") or type(value).__name__ in {"DictConfig", "ListConfig"}:
        return require("omegaconf", "reading the data config").OmegaConf.to_container(value, resolve=True)
    return value


def _same_files(files: Any, other: Any) -> bool:
    def as_list(value: Any) -> list[str]:
        value = _plain(value)
        return [value] if isinstance(value, str) else [str(v) for v in (value or [])]

    return bool(as_list(other)) and as_list(files) == as_list(other)


def with_mixture_file(streaming: dict[str, Any]) -> dict[str, Any]:
    """``streaming.mixture_file``: a YAML with the same keys (sources, filters, ...); inline keys win."""
    path = streaming.pop("mixture_file", None)
    if not path:
        return streaming
    yaml = require("yaml", "reading data.streaming.mixture_file")
    with open(path, encoding="utf-8") as handle:
        loaded = yaml.safe_load(handle) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: the mixture file must be a mapping (sources, filters, difficulty, ...)")
    return {**loaded, **streaming}


def resolve_system_prompt(value: Any) -> str | None:
    """``paper`` -> Falcon-H1R's system prompt; ``none``/empty -> no system prompt; else the text itself."""
    if value is None or str(value).strip().lower() in ("", "none", "null"):
        return None
    if str(value).strip().lower() == "paper":
        from verl_falcon_plugin.data.rl_rollouts import PAPER_SYSTEM_PROMPT

        return PAPER_SYSTEM_PROMPT
    return str(value)


class StreamingSFTDataset(torch.utils.data.IterableDataset):
    def __init__(
        self,
        parquet_files: str | list[str] | None,
        tokenizer: Any,
        config: Any,
        processor: Any = None,
        max_samples: int = -1,
    ):
        if processor is not None:
            raise NotImplementedError("StreamingSFTDataset is text-only; multimodal processors are not supported")
        data_config = _plain(config) or {}
        streaming = with_mixture_file(dict(data_config.get("streaming") or {}))
        self.tokenizer = tokenizer
        self.pad_mode = data_config.get("pad_mode", "no_padding")
        if self.pad_mode not in ("no_padding", "right"):
            raise ValueError(f"data.pad_mode must be 'no_padding' or 'right', got {self.pad_mode!r}")
        self.max_length = int(data_config.get("max_length") or DEFAULT_MAX_LENGTH)
        self.truncation = data_config.get("truncation", "right")
        if self.truncation not in ("right", "error"):
            raise ValueError(
                f"data.truncation={self.truncation!r}: the streaming dataset right-trims (paper) or raises; "
                "set data.truncation=right"
            )
        self.template_kwargs = dict(data_config.get("apply_chat_template_kwargs") or {})
        self.tools_key = data_config.get("tools_key", "tools")
        self.num_workers = int(data_config.get("num_workers", 0) or 0)
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {self.num_workers}")
        # verl builds the validation set with the same data config: it streams data.val_files
        # as they are (no mixture, no resampling), one pass per validation.
        self.is_validation = _same_files(parquet_files, data_config.get("val_files"))
        # data.streaming.system_prompt: "paper" (Falcon-H1R's, docs/paper-settings.md), any text, or none (default)
        self.system_prompt = resolve_system_prompt(streaming.get("system_prompt"))
        if self.is_validation:
            self.num_workers = 0  # validation is rare: a persistent worker pool would sit idle between passes
            streaming = {k: v for k, v in streaming.items() if k in ("seed", "filters")}
            streaming["difficulty"] = {"enabled": False}
        self.mixture = MixtureConfig(
            sources=tuple(self._sources(streaming, parquet_files)),
            seed=int(streaming.get("seed", 0)),
            filters=FilterConfig.from_mapping(streaming.get("filters")),
            difficulty=DifficultyConfig.from_mapping(streaming.get("difficulty")),
        )
        samples = streaming.get("samples_per_epoch") or sum(count_rows(s.files) for s in self.mixture.sources)
        if max_samples and max_samples > 0:
            samples = min(samples, max_samples)
        self.samples_per_epoch = int(samples)
        self.report = FilterReport()
        self.fingerprint = self._fingerprint()
        self.shard(dp_rank=0, dp_size=1)
        if "patch_verl_trainer" in streaming:
            logger.warning(
                "data.streaming.patch_verl_trainer is ignored: the plugin's activation installs verl's SFT "
                "trainer hooks, the dataset no longer patches verl"
            )

    @staticmethod
    def _sources(streaming: dict[str, Any], parquet_files: Any) -> list[SourceSpec]:
        if streaming.get("sources"):
            return sources_from_config(streaming["sources"])
        files = [parquet_files] if isinstance(parquet_files, str) else list(parquet_files or [])
        if not files:
            raise ValueError("no SFT data: set data.train_files or data.streaming.sources")
        return [SourceSpec(name="train", files=tuple(str(f) for f in files), probability=1.0, category="other")]

    def _fingerprint(self) -> str:
        described = repr((self.mixture, self.samples_per_epoch, self.max_length, self.pad_mode))
        if self.system_prompt:  # appended only when set, so older checkpoints' fingerprints still match
            described += repr(self.system_prompt)
        return hashlib.sha256(described.encode()).hexdigest()[:16]

    # -- sharding and length -------------------------------------------------------------
    def shard(self, dp_rank: int, dp_size: int, batch_size: int = 1) -> None:
        """Take DP rank ``dp_rank`` of ``dp_size``'s share; an epoch is whole batches of ``batch_size``."""
        self.batch_size = batch_size
        self.position = StreamPosition(dp_rank=dp_rank, dp_size=dp_size)
        self._stream = build_mixture_stream(self.mixture, dp_rank, dp_size, self.report)
        self._iterator: Iterator[dict[str, Any]] | None = None
        self._restored_stream_state: dict[str, Any] | None = None
        self._workers = WorkerSamples(self, self.num_workers, batch_size) if self.num_workers else None
        if len(self) == 0:
            raise ValueError(
                f"samples_per_epoch={self.samples_per_epoch} gives no full batch of {batch_size} "
                f"on each of {dp_size} DP ranks"
            )

    def __len__(self) -> int:
        per_rank = self.samples_per_epoch // self.position.dp_size
        return per_rank // self.batch_size * self.batch_size

    def set_epoch(self, epoch: int) -> None:
        """Called by the trainer; the stream is continuous across epochs, so only checked."""
        if epoch != self.position.epoch and self.position.yielded_in_epoch not in (0, len(self)):
            logger.warning("set_epoch(%d) while in the middle of stream epoch %d", epoch, self.position.epoch)

    # -- iteration -----------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self.position.yielded_in_epoch >= len(self):
            logger.info("SFT stream epoch %d done; filter report: %s", self.position.epoch, self.report.as_dict())
            self.position.next_epoch()
        while self.position.yielded_in_epoch < len(self):
            item = self._next_item()
            if item is None:
                continue
            self.position.advance()
            yield item

    def _next_item(self) -> dict[str, Any] | None:
        if self._workers is not None:
            return self._workers.next_item()
        if self._iterator is None:
            self._iterator = iter(self._stream)
            self._restored_stream_state = None  # the live iterator now carries the position
        record = next(self._iterator)
        return self.tokenize(record["row"], record["origin"], record["source"])

    def tokenize(self, row: str, origin: str, source: str) -> dict[str, Any] | None:
        """The verl item for one raw row, or ``None`` when trimming left nothing to learn."""
        sample = json.loads(row)
        try:
            if self.system_prompt:
                sample["messages"] = with_system_prompt(list(sample.get("messages") or []), self.system_prompt)
            conversation = prepare_conversation(sample)
            tokens = tokenize_conversation(
                self.tokenizer, conversation, tools=sample.get(self.tools_key) or None, **self.template_kwargs
            )
        except ValueError as err:
            raise malformed(origin, str(err)) from err
        input_ids, loss_mask, trimmed = right_trim(tokens.input_ids, tokens.loss_mask, self.max_length)
        if trimmed:
            if self.truncation == "error":
                raise malformed(origin, f"{len(tokens.input_ids)} tokens exceed data.max_length={self.max_length}")
            self.report.note(source, "trimmed")
        if not any(loss_mask):
            self.report.note(source, "no_loss_after_trim")
            return None
        return self._as_verl_item(input_ids, loss_mask)

    def _as_verl_item(self, input_ids: list[int], loss_mask: list[int]) -> dict[str, Any]:
        ids = torch.tensor(input_ids, dtype=torch.long)
        mask = torch.tensor(loss_mask, dtype=torch.long)
        positions = torch.arange(len(input_ids), dtype=torch.long)
        if self.pad_mode == "no_padding":
            return {"input_ids": ids, "position_ids": positions, "loss_mask": mask}
        pad = self.max_length - len(input_ids)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        return {
            "input_ids": torch.nn.functional.pad(ids, (0, pad), value=pad_id),
            "attention_mask": torch.nn.functional.pad(torch.ones_like(ids), (0, pad), value=0),
            "position_ids": torch.nn.functional.pad(positions, (0, pad), value=0),
            "loss_mask": torch.nn.functional.pad(mask, (0, pad), value=0),
        }

    # -- exact resume (torchdata's Stateful protocol) --------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self._workers is not None:
            return pack_state(self.position, {"workers": self._workers.state_dict()}, self.fingerprint)
        # Before the first sample is drawn, the position is the restored one (or the start).
        stream_state = self._stream.state_dict() if self._iterator is not None else self._restored_stream_state
        return pack_state(self.position, stream_state, self.fingerprint)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        position, stream_state = unpack_state(state, self.position.dp_rank, self.position.dp_size, self.fingerprint)
        saved_workers = (stream_state or {}).get("workers", {"num_workers": 0})
        if self._workers is not None or saved_workers["num_workers"]:
            if self._workers is None or saved_workers["num_workers"] != self.num_workers:
                raise ValueError(
                    f"the checkpoint's data stream was tokenised by {saved_workers['num_workers']} workers, this "
                    f"run has data.num_workers={self.num_workers}: resume with the same data.num_workers"
                )
            self._workers = WorkerSamples(self, self.num_workers, self.batch_size)
            self._workers.load_state_dict(saved_workers)
            self.position = position
            return
        self._stream = build_mixture_stream(self.mixture, position.dp_rank, position.dp_size, self.report)
        if stream_state is not None:
            self._stream.load_state_dict(stream_state)
        self.position = position
        self._iterator = None
        self._restored_stream_state = stream_state

    def __getstate__(self) -> dict[str, Any]:
        # worker processes get the dataset without its own worker pool (and without a live iterator)
        return {**self.__dict__, "_workers": None, "_iterator": None}
