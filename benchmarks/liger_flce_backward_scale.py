"""Liger's fused linear cross-entropy: what an upstream gradient != 1 costs in its backward.

Liger computes the input and weight gradients in the forward; its backward only rescales them when the
gradient flowing in is not exactly 1 (``fused_linear_cross_entropy_backward``), with ``element_mul_kernel``
launched on one program per row: BT rows for the input gradient and V (vocabulary) rows for the weight
gradient. A loss normalised outside the kernel (``sum / N``, a coefficient, a balanced DP token loss) always
takes that path. This times forward+backward with ``loss`` (gradient 1) and ``0.5 * loss`` (gradient 0.5) in
the same run, interleaved, and prints min/median/max and the median ratio, per vocabulary size.

Without a GPU the kernels run under the Triton interpreter, where every program is a Python call: the ratio
there is the interpreter's, an upper bound; on a GPU the rescale is one extra read and write of the V x H
weight gradient (not measured here).

    TRITON_INTERPRET=1 python benchmarks/liger_flce_backward_scale.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def timed(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def run(vocab: int, hidden: int, tokens: int, repeats: int) -> dict:
    import torch
    from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

    torch.manual_seed(0)
    x = torch.randn(tokens, hidden, requires_grad=True)
    weight = torch.randn(vocab, hidden, requires_grad=True)
    target = torch.randint(0, vocab, (tokens,))

    def step(scale: float):
        def go():
            loss = liger_fused_linear_cross_entropy(x, weight, target, reduction="mean")
            (loss * scale if scale != 1.0 else loss).backward()
            x.grad = weight.grad = None

        return go

    step(1.0)(), step(0.5)()  # compile / warm up both paths
    samples = {"grad 1": [], "grad 0.5": []}
    for _ in range(repeats):
        samples["grad 1"].append(timed(step(1.0)))
        samples["grad 0.5"].append(timed(step(0.5)))
    summary = {k: {"min": min(v), "median": statistics.median(v), "max": max(v)} for k, v in samples.items()}
    summary["ratio_median"] = summary["grad 0.5"]["median"] / summary["grad 1"]["median"]
    summary["programs_for_rescale"] = vocab + tokens
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vocab", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    mode = "triton interpreter" if os.environ.get("TRITON_INTERPRET") == "1" else "compiled triton"
    results = {"mode": mode, "hidden": args.hidden, "tokens": args.tokens}
    for vocab in args.vocab:
        results[f"V={vocab}"] = summary = run(vocab, args.hidden, args.tokens, args.repeats)
        print(
            f"V={vocab:>6} ({mode}): grad 1 median {summary['grad 1']['median']:.3f}s "
            f"[{summary['grad 1']['min']:.3f}, {summary['grad 1']['max']:.3f}], grad 0.5 median "
            f"{summary['grad 0.5']['median']:.3f}s [{summary['grad 0.5']['min']:.3f}, {summary['grad 0.5']['max']:.3f}]"
            f" -> x{summary['ratio_median']:.2f} ({summary['programs_for_rescale']} rescale programs)"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "liger_flce_backward_scale.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
