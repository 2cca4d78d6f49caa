"""Balanced vs naive DP token loss on ragged batches: per-token weight spread and gradient deviation.

Each of R data-parallel ranks gets sequences with log-normal lengths (long reasoning
traces next to short answers, as in Falcon-H1R's SFT mixture). Every rank's loss is
verl's ``agg_loss(token-mean)``: *naive* with its own token count (the per-rank
mean), *balanced* with the DP-global count and ``dp_size`` (what verl's engine
passes, plus our eps). The gradient all-reduce average is emulated by summing the
ranks' gradients / R. Baseline: one process's token mean over the union of all
tokens. Reported:

* weight spread: max/min per-token weight in the averaged loss (1.0 = every token equal);
* gradient deviation: ||g - g_global|| / ||g_global|| for a tiny bigram model whose long and
  short sequences come from different token distributions (reasoning traces vs short answers).

Run: ``python benchmarks/losses_balanced_dp.py`` (about 15 s of compute plus verl's import). Writes
``benchmarks/results/losses_balanced_dp.json``.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import tempfile
from pathlib import Path

import torch

from verl_falcon_plugin.losses.balanced_dp import DEFAULT_EPS
from verl_falcon_plugin.losses.dp_harness import tiny_model

RESULTS = Path(__file__).resolve().parent / "results" / "losses_balanced_dp.json"

# (ranks, sequences per rank, log-normal mu, sigma, placement)
SETTINGS = [
    (2, 8, 5.0, 0.5, "random"),
    (2, 8, 5.0, 1.0, "random"),
    (8, 8, 5.0, 1.0, "random"),
    (8, 8, 5.0, 1.5, "random"),
    (32, 4, 5.0, 1.0, "random"),
    (8, 8, 5.0, 1.0, "by_length"),  # worst case: a length-grouped sampler puts the long traces together
]


def make_ranks(ranks: int, per_rank: int, mu: float, sigma: float, placement: str, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    lengths = [max(1, min(8192, round(rng.lognormvariate(mu, sigma)))) for _ in range(ranks * per_rank)]
    if placement == "by_length":
        lengths.sort()
    return [lengths[r * per_rank : (r + 1) * per_rank] for r in range(ranks)]


def per_token_losses(
    model: torch.nn.Module, lengths: list[int], gen: torch.Generator, long_from: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(bs, max_len) token NLLs and their mask (padded, as agg_loss expects).

    Long sequences ("reasoning traces", length >= ``long_from``) draw tokens from the upper half of
    the vocabulary, short ones from the lower half: the two kinds pull the gradient different ways,
    as long math traces and short chat answers do.
    """
    width = max(lengths)
    half = model[0].num_embeddings // 2
    low = torch.randint(0, half, (len(lengths), width + 1), generator=gen)
    is_long = (torch.tensor(lengths) >= long_from).unsqueeze(1)
    ids = torch.where(is_long, low + half, low)
    logp = torch.log_softmax(model(ids[:, :-1]), dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    mask = torch.arange(width).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    return -logp, mask


def averaged_gradient(model: torch.nn.Module, rank_batches: list, mode: str) -> tuple[torch.Tensor, list[float]]:
    """Gradient after the DP average, and every token's weight in the averaged loss."""
    from verl.trainer.ppo.core_algos import agg_loss

    ranks = len(rank_batches)
    global_tokens = sum(int(mask.sum()) for _, mask in rank_batches)
    model.zero_grad()
    weights: list[float] = []
    for losses, mask in rank_batches:
        local = int(mask.sum())
        if mode == "naive":
            loss = agg_loss(losses, mask, "token-mean", dp_size=1, batch_num_tokens=local)
            weights += [1.0 / (ranks * local)] * local
        elif mode == "balanced":
            loss = agg_loss(losses, mask, "token-mean", dp_size=ranks, batch_num_tokens=global_tokens + DEFAULT_EPS)
            weights += [ranks / (global_tokens + DEFAULT_EPS) / ranks] * local
        else:
            raise ValueError(f"mode must be naive or balanced, got {mode!r}")
        (loss / ranks).backward(retain_graph=True)  # the all-reduce average over ranks
    return torch.cat([p.grad.flatten() for p in model.parameters()]).clone(), weights


def global_gradient(model: torch.nn.Module, rank_batches: list) -> torch.Tensor:
    model.zero_grad()
    losses = torch.cat([token_losses[mask] for token_losses, mask in rank_batches])
    losses.mean().backward(retain_graph=True)
    return torch.cat([p.grad.flatten() for p in model.parameters()]).clone()


def measure(setting: tuple, seed: int = 0) -> dict:
    ranks, per_rank, mu, sigma, placement = setting
    model = tiny_model()
    gen = torch.Generator().manual_seed(seed)
    lengths = make_ranks(ranks, per_rank, mu, sigma, placement, seed)
    median = sorted(n for rank_lengths in lengths for n in rank_lengths)[ranks * per_rank // 2]
    batches = [per_token_losses(model, rank_lengths, gen, median) for rank_lengths in lengths]
    reference = global_gradient(model, batches)
    row = {
        "ranks": ranks,
        "seqs_per_rank": per_rank,
        "mu": mu,
        "sigma": sigma,
        "placement": placement,
        "tokens": sum(map(sum, lengths)),
        "rank_token_ratio": max(map(sum, lengths)) / min(map(sum, lengths)),
    }
    for mode in ("naive", "balanced"):
        grad, weights = averaged_gradient(model, batches, mode)
        row[f"{mode}_weight_spread"] = max(weights) / min(weights)
        row[f"{mode}_grad_deviation"] = float((grad - reference).norm() / reference.norm())
    return row


def write_atomically(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=2)
    os.replace(tmp, path)


def main() -> int:
    torch.manual_seed(0)
    rows = [measure(s) for s in SETTINGS]
    header = (
        f"{'R':>3} {'seq/r':>5} {'sigma':>5} {'placement':>9} {'tokens':>7} {'tok max/min':>11} | "
        f"{'spread naive':>12} {'spread bal':>10} | {'dev naive':>9} {'dev bal':>9} {'naive/bal dev':>13}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        ratio = r["naive_grad_deviation"] / max(r["balanced_grad_deviation"], sys.float_info.min)
        print(
            f"{r['ranks']:>3} {r['seqs_per_rank']:>5} {r['sigma']:>5.1f} {r['placement']:>9} {r['tokens']:>7} "
            f"{r['rank_token_ratio']:>11.2f} | "
            f"{r['naive_weight_spread']:>12.2f} {r['balanced_weight_spread']:>10.2f} | "
            f"{r['naive_grad_deviation']:>9.2e} {r['balanced_grad_deviation']:>9.2e} "
            f"{(f'{ratio:.1e}' if math.isfinite(ratio) else 'inf'):>13}"
        )
    write_atomically(RESULTS, rows)
    print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
