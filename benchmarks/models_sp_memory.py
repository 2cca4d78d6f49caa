"""Per-rank activation memory of one long sequence under Falcon-H1 Ulysses SP (sp = 1, 2, 4).

A tiny-but-wide Falcon-H1 (hidden 256, 8 Q / 2 KV heads of 32, 16 SSM heads of 32,
d_state 16, 2 layers) takes one packed sequence of ``--length`` tokens, sliced with
verl's ``ulysses_pad_and_slice_inputs``; each rank runs forward and backward in gloo
processes. Measured per rank, in fresh processes for each sp:

* **activation bytes** (the target metric): the bytes autograd keeps for backward at the
  end of the forward, counted with ``torch.autograd.graph.saved_tensors_hooks`` (each
  storage once, parameters excluded). Exact and allocator-independent, which CPU peak
  memory is not: PyTorch has no CPU ``max_memory_allocated``;
* **peak RSS growth** (secondary, noisy): ``ru_maxrss`` after forward+backward minus
  after a warm-up step on a short sequence (glibc's allocator caching blurs it).

Prints the ratios sp=2/sp=1 and sp=4/sp=1 (target: sp=2 <= 0.6 of sp=1) and writes
``benchmarks/results/models_sp_memory.json``.

    python benchmarks/models_sp_memory.py               # ~1-2 min on 2 cores
    python benchmarks/models_sp_memory.py --length 2048 # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
WIDE_GEOMETRY = dict(
    hidden_size=256,
    num_attention_heads=8,
    num_key_value_heads=2,
    head_dim=32,
    intermediate_size=512,
    mamba_n_heads=16,
    mamba_d_head=32,
    mamba_d_ssm=512,
    mamba_n_groups=1,
    mamba_d_state=16,
)


class SavedActivations:
    """Bytes of the distinct non-parameter storages autograd saves while active."""

    def __init__(self, model) -> None:
        self.parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.storages: dict[int, int] = {}

    def pack(self, tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in self.parameters:
            self.storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    @property
    def bytes(self) -> int:
        return sum(self.storages.values())


def rank_worker(rank: int, world: int, port: int, length: int, out_dir: str) -> None:
    os.environ["VERL_USE_EXTERNAL_PLUGINS"] = "none"  # measure the model, not other plugins' imports
    import torch
    import torch.distributed as dist
    from verl.utils.ulysses import (
        gather_outputs_and_unpad,
        set_ulysses_sequence_parallel_group,
        ulysses_pad_and_slice_inputs,
    )

    from verl_falcon_plugin.models.falcon_h1.patch import patch_falcon_h1
    from verl_falcon_plugin.testing import tiny_falcon_h1

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    group = dist.new_group(list(range(world))) if world > 1 else None
    set_ulysses_sequence_parallel_group(group)
    model = tiny_falcon_h1(WIDE_GEOMETRY, mamba_chunk_size=128).train()
    patch_falcon_h1(model)

    def step(tokens: int, counter: SavedActivations | None = None):
        generator = torch.Generator().manual_seed(0)
        ids = torch.randint(3, model.config.vocab_size, (1, tokens), generator=generator)
        positions = torch.arange(tokens)[None]
        local_ids, local_positions, pad = ulysses_pad_and_slice_inputs(ids, positions, sp_size=world)
        if counter is not None:
            with torch.autograd.graph.saved_tensors_hooks(counter.pack, lambda t: t):
                logits = model(input_ids=local_ids, position_ids=local_positions, use_cache=False).logits
        else:
            logits = model(input_ids=local_ids, position_ids=local_positions, use_cache=False).logits
        if world > 1:
            logits = gather_outputs_and_unpad(logits, gather_dim=1, unpad_dim=1, padding_size=pad)
        logits.float().logsumexp(-1).mean().backward()
        model.zero_grad(set_to_none=True)

    step(64)  # warm-up: allocator, lazy inits
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    counter = SavedActivations(model)
    step(length, counter)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = dict(rank=rank, activation_bytes=counter.bytes, peak_rss_growth_bytes=(rss_after - rss_before) * 1024)
    path = Path(out_dir) / f"rank{rank}.json"
    path.with_suffix(".tmp").write_text(json.dumps(result))
    os.replace(path.with_suffix(".tmp"), path)
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(sp: int, length: int) -> dict:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(rank_worker, args=(sp, free_port(), length, out_dir), nprocs=sp, join=True)
        ranks = [json.loads((Path(out_dir) / f"rank{r}.json").read_text()) for r in range(sp)]
    return dict(
        sp=sp,
        activation_bytes_per_rank=max(r["activation_bytes"] for r in ranks),
        peak_rss_growth_bytes_per_rank=max(r["peak_rss_growth_bytes"] for r in ranks),
        ranks=ranks,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--sp", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()

    rows = [measure(sp, args.length) for sp in args.sp]
    base = rows[0]
    print(f"one sequence of {args.length} tokens, wide tiny Falcon-H1 {WIDE_GEOMETRY}")
    print(f"{'sp':>3} {'activation MiB/rank':>20} {'ratio':>6} {'peak RSS growth MiB/rank':>25} {'ratio':>6}")
    for row in rows:
        row["activation_ratio_vs_sp1"] = row["activation_bytes_per_rank"] / base["activation_bytes_per_rank"]
        row["rss_ratio_vs_sp1"] = row["peak_rss_growth_bytes_per_rank"] / max(base["peak_rss_growth_bytes_per_rank"], 1)
        print(
            f"{row['sp']:>3} {row['activation_bytes_per_rank'] / 2**20:>20.1f} {row['activation_ratio_vs_sp1']:>6.3f} "
            f"{row['peak_rss_growth_bytes_per_rank'] / 2**20:>25.1f} {row['rss_ratio_vs_sp1']:>6.3f}"
        )
    target = next((r for r in rows if r["sp"] == 2), None)
    if target is not None:
        verdict = "meets" if target["activation_ratio_vs_sp1"] <= 0.6 else "MISSES"
        print(
            f"sp=2 activation memory per rank = {target['activation_ratio_vs_sp1']:.3f} x sp=1: {verdict} the <= 0.6 target"
        )
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "models_sp_memory.json"
    path.with_suffix(".tmp").write_text(
        json.dumps(dict(length=args.length, geometry=WIDE_GEOMETRY, rows=rows), indent=2)
    )
    os.replace(path.with_suffix(".tmp"), path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
