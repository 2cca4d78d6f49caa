"""Tokenising the streaming SFT dataset in ``data.num_workers`` processes, in order, exactly resumable.

Tokenising 36K-token traces is the expensive part of the stream, so with ``data.num_workers > 0`` the
dataset runs it in worker processes of its own (a torchdata ``StatefulDataLoader`` inside the dataset,
whatever loader verl wraps the dataset in). The order must not depend on the workers, or resuming (and
comparing runs) would break:

* worker ``w`` of ``W`` streams samples ``w, w+W, w+2W, ...`` of its DP rank's stream (one more
  ``split_dataset_by_node`` by examples: DP rank ``r`` of ``R`` and worker ``w`` read node ``r + R*w``
  of ``R*W`` of the one global stream), tokenises them and hands every one over, a sample that
  right-trimming left without loss tokens as an empty marker rather than skipped;
* the ``StatefulDataLoader`` (``batch_size=None``, in order) takes one sample from each worker in
  turn, so the dataset receives its rank's stream in order and drops the markers itself.

Hence the samples, and so the batches, are the same for every ``num_workers``, 0 included (tested in
verl's ``fit``). The dataset's checkpoint state then holds torchdata's (each worker's HF stream position,
snapshotted with every sample it hands over); resuming needs the same DP layout and ``num_workers``.
Every worker reads and filters all rows of its rank (filtering is cheap next to tokenising) and keeps its
own filter report.
"""

from __future__ import annotations

from typing import Any, Iterator

from verl_falcon_plugin.data.mixture import build_mixture_stream
from verl_falcon_plugin.requires import require

torch = require("torch", "the streaming SFT dataset")
stateful_dataloader = require("torchdata.stateful_dataloader", "the streaming SFT dataset's workers")

#: what a worker hands over for a sample that trimming left with nothing to learn (dropped by the dataset)
EMPTY: dict[str, Any] = {}


def _as_is(sample: dict[str, Any]) -> dict[str, Any]:
    """``StatefulDataLoader``'s per-sample collate: hand the tokenised sample over unchanged."""
    return sample


class WorkerShare(torch.utils.data.IterableDataset):
    """One worker's share of a DP rank's stream, tokenised; checkpointable (torchdata's Stateful protocol)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self._stream: Any = None
        self._restored: dict[str, Any] | None = None

    def layout(self) -> tuple[int, int]:
        """(node, nodes) of the global stream this worker reads."""
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        position = self.dataset.position
        return position.dp_rank + position.dp_size * worker, position.dp_size * workers

    def __iter__(self) -> Iterator[dict[str, Any]]:
        node, nodes = self.layout()
        if self._stream is None:
            self._stream = build_mixture_stream(self.dataset.mixture, node, nodes, self.dataset.report)
            if self._restored is not None:
                self._stream.load_state_dict(self._restored)
        self._restored = None  # the live iteration now carries the position
        # ``iter(batch_size=1)``, not ``iter(stream)``: inside a torch worker HF's ``__iter__`` would split the
        # stream's shards between the workers itself (our one generator shard would go to worker 0 alone)
        for record in self._stream.iter(batch_size=1):
            item = self.dataset.tokenize(record["row"][0], record["origin"][0], record["source"][0])
            yield EMPTY if item is None else item

    def state_dict(self) -> dict[str, Any]:
        node, nodes = self.layout()
        stream = self._stream.state_dict() if self._stream is not None and self._restored is None else self._restored
        return {"node": node, "nodes": nodes, "stream": stream}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        node, nodes = self.layout()
        if (state["node"], state["nodes"]) != (node, nodes):
            raise ValueError(
                f"the checkpoint's data stream was read as node {state['node']} of {state['nodes']}, this worker "
                f"reads node {node} of {nodes}: resume with the same data-parallel layout and data.num_workers"
            )
        self._stream = None
        self._restored = state["stream"]


class WorkerSamples:
    """The rank's tokenised samples, in stream order, from ``num_workers`` processes (persistent: the stream
    continues across epochs inside them, where fresh workers would restart it)."""

    def __init__(self, dataset: Any, num_workers: int, batch_size: int, prefetch_batches: int = 2) -> None:
        per_worker = -(-batch_size // num_workers)
        self.num_workers = num_workers
        self._loader = stateful_dataloader.StatefulDataLoader(
            WorkerShare(dataset),
            batch_size=None,
            collate_fn=_as_is,
            num_workers=num_workers,
            persistent_workers=True,
            prefetch_factor=max(2, prefetch_batches * per_worker),
        )
        self._iterator: Iterator[dict[str, Any]] | None = None

    def next_item(self) -> dict[str, Any] | None:
        """The next sample, ``None`` for one trimming emptied."""
        if self._iterator is None:
            self._iterator = iter(self._loader)
        return next(self._iterator) or None

    def state_dict(self) -> dict[str, Any]:
        return {"num_workers": self.num_workers, "samples": self._loader.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["num_workers"] != self.num_workers:
            raise ValueError(
                f"the checkpoint's data stream was tokenised by {state['num_workers']} workers, this run has "
                f"data.num_workers={self.num_workers}: resume with the same data-parallel layout and data.num_workers"
            )
        self._loader.load_state_dict(state["samples"])
        self._iterator = None
