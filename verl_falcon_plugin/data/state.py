"""The checkpointable position of a rank's SFT stream, for exact mid-epoch resume.

It pairs HF ``IterableDataset.state_dict()`` (exact for our pipeline: generator
sources, batch-size-1 maps, seeded probability interleaving and the example split,
tested in ``tests/data/test_resume.py``) with where the rank is in its epoch. verl's
``StatefulDataLoader`` saves it through the dataset's ``state_dict`` and restores it
before building the next iterator, so a resumed run yields exactly the batches the
uninterrupted run would have.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

STATE_VERSION = 1


@dataclass
class StreamPosition:
    dp_rank: int
    dp_size: int
    epoch: int = 0
    yielded_in_epoch: int = 0
    yielded_total: int = 0

    def advance(self) -> None:
        self.yielded_in_epoch += 1
        self.yielded_total += 1

    def next_epoch(self) -> None:
        self.epoch += 1
        self.yielded_in_epoch = 0


def pack_state(position: StreamPosition, stream_state: dict[str, Any] | None, fingerprint: str) -> dict[str, Any]:
    return {"version": STATE_VERSION, "position": asdict(position), "stream": stream_state, "fingerprint": fingerprint}


def unpack_state(state: dict[str, Any], dp_rank: int, dp_size: int, fingerprint: str) -> tuple[StreamPosition, Any]:
    """Validate a saved state against this run: same DP layout, same mixture."""
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"SFT stream state version {state.get('version')} is not {STATE_VERSION}; cannot resume")
    position = StreamPosition(**state["position"])
    if (position.dp_rank, position.dp_size) != (dp_rank, dp_size):
        raise ValueError(
            f"the checkpoint's data stream belongs to DP rank {position.dp_rank}/{position.dp_size}, "
            f"this rank is {dp_rank}/{dp_size}: resume with the same data-parallel layout"
        )
    if state.get("fingerprint") != fingerprint:
        raise ValueError(
            "the checkpoint's data stream was built from a different mixture (sources, probabilities, seed, "
            "filters or difficulty settings changed); resuming would not reproduce the run"
        )
    return position, state["stream"]
