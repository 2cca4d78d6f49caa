"""Memory that fused linear CE saves on Falcon-H1R's LM head: analytic at the paper's shapes, measured on CPU.

HF's loss materialises ``logits = lm_head(h) * lm_head_multiplier`` (T x V in the
parameter dtype), upcasts them to fp32 inside the loss and keeps log-softmax's
fp32 output for the backward. Fused linear CE (``liger_patches.fused_ce``) never
builds them: it walks the tokens in chunks and keeps one chunk of logits
(Liger bounds it to about T x H elements).

Analytic part: Falcon-H1R-7B (vocab 130,048, d_model 3,072), one 36K-token
packed micro-batch (36 x 1024 = 36,864 tokens; the paper's SFT context), per
GPU without and with Ulysses SP=2 (the paper's degree: each rank holds half
the tokens), logits in bf16 (the paper's precision) and fp32.

Measured part: peak resident memory (Linux VmHWM, reset between runs through
/proc/self/clear_refs) of the HF loss and of the fused one, forward + backward,
on this CPU (Triton interpreter), at a few token counts with the real vocabulary
and a small hidden size (the logits do not depend on it), compared with the
same analytic model. Speed is not measured: it means something only on a GPU,
which this project does not have.

Run: python benchmarks/liger_fused_ce_memory.py [--tokens 128 256 512] [--hidden 64]
Writes benchmarks/results/liger_fused_ce_memory.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time

os.environ.setdefault("TRITON_INTERPRET", "1")  # no GPU here; must precede any triton import

VOCAB = 130_048
HIDDEN = 3_072
CONTEXT = 36 * 1024
LM_HEAD_MULTIPLIER = 0.0130  # released Falcon-H1R config
GiB = 1024**3
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "liger_fused_ce_memory.json")


def liger_chunk_rows(tokens: int, vocab: int, hidden: int) -> int:
    """Liger 0.8.5's chunk: next_pow2(ceil(T / ceil(V / H))), at most T (ops/fused_linear_cross_entropy.py)."""
    inc_factor = math.ceil(vocab / hidden)
    return min(tokens, 1 << max(0, math.ceil(math.log2(math.ceil(tokens / inc_factor)))))


def analytic(tokens: int, vocab: int, hidden: int, logits_bytes: int) -> dict[str, float]:
    """Bytes of logit-sized buffers: what HF keeps from forward to backward vs Liger's one chunk."""
    elements = tokens * vocab
    hf_held = elements * (logits_bytes + 4)  # the logits + log-softmax's fp32 output, kept for the backward
    fused = liger_chunk_rows(tokens, vocab, hidden) * vocab * logits_bytes  # one chunk of logits
    return dict(
        tokens=tokens,
        logits_one_copy=elements * logits_bytes,
        hf_held_fwd_to_bwd=hf_held,
        fused_chunk=fused,
        saved_held=hf_held - fused,
    )


def print_analytic() -> list[dict]:
    rows = []
    print(f"Analytic, Falcon-H1R-7B LM head (V={VOCAB:,}, H={HIDDEN:,}), one {CONTEXT:,}-token micro-batch")
    print("HF held = the logits + log-softmax's fp32 output, alive from the forward to the backward (a lower bound:")
    print("the backward adds fp32 gradient buffers of the same size, see the measurement below)")
    print(
        f"{'logits':>6} {'SP':>3} {'tokens/GPU':>10} {'1 copy':>9} {'HF held':>9} {'fused':>9} {'saved':>9} "
        f"{'HF/fused':>9}"
    )
    for logits_bytes, name in ((2, "bf16"), (4, "fp32")):
        for sp in (1, 2):
            row = analytic(CONTEXT // sp, VOCAB, HIDDEN, logits_bytes)
            row.update(logits_dtype=name, ulysses_sp=sp)
            rows.append(row)
            print(
                f"{name:>6} {sp:>3} {row['tokens']:>10,} {row['logits_one_copy'] / GiB:>7.2f}Gi "
                f"{row['hf_held_fwd_to_bwd'] / GiB:>7.2f}Gi {row['fused_chunk'] / GiB:>7.3f}Gi "
                f"{row['saved_held'] / GiB:>7.2f}Gi {row['hf_held_fwd_to_bwd'] / row['fused_chunk']:>8.0f}x"
            )
    return rows


def _peak_rss_bytes() -> int:
    return 1024 * int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))


def _current_rss_bytes() -> int:
    return 1024 * int(re.search(r"VmRSS:\s+(\d+)", open("/proc/self/status").read()).group(1))


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # "5" resets VmHWM to the current RSS (Linux >= 4.0)
        f.write("5")


def measure(run) -> tuple[int, float]:
    """Peak RSS above the RSS before ``run`` (bytes), and seconds."""
    import gc

    gc.collect()
    _reset_peak()
    before = _current_rss_bytes()
    start = time.perf_counter()
    run()
    return _peak_rss_bytes() - before, time.perf_counter() - start


def hf_loss_step(hidden, weight, targets):
    import torch

    def run():
        h, w = hidden.clone().requires_grad_(True), weight.clone().requires_grad_(True)
        logits = torch.nn.functional.linear(h, w) * LM_HEAD_MULTIPLIER  # FalconH1ForCausalLM.forward
        loss = torch.nn.functional.cross_entropy(logits.float(), targets, ignore_index=-100)  # ForCausalLMLoss
        loss.backward()

    return run


def fused_loss_step(hidden, weight, targets):
    from liger_patches.fused_ce import falcon_h1_fused_linear_cross_entropy

    def run():
        h, w = hidden.clone().requires_grad_(True), weight.clone().requires_grad_(True)
        falcon_h1_fused_linear_cross_entropy(h, w, LM_HEAD_MULTIPLIER, targets).backward()

    return run


def print_measured(token_counts: list[int], hidden_size: int) -> list[dict]:
    import torch

    torch.manual_seed(0)
    weight = torch.randn(VOCAB, hidden_size) * 0.02
    rows = []
    print(f"\nMeasured on this CPU (fp32, V={VOCAB:,}, H={hidden_size}; peak RSS above the start, forward+backward;")
    print("the weight's copy and gradient are in both peaks)")
    print(
        f"{'tokens':>7} {'HF peak':>9} {'fused peak':>10} {'HF/fused':>9} {'HF - fused':>10} {'B/logit':>8} "
        f"{'-> saved at 36,864 tok':>22} {'SP=2':>9}"
    )
    fused_loss_step(torch.randn(8, hidden_size), weight, torch.zeros(8, dtype=torch.long))()  # warm-up: imports
    for tokens in token_counts:
        hidden = torch.randn(tokens, hidden_size)
        targets = torch.randint(0, VOCAB, (tokens,))
        fused, fused_s = measure(fused_loss_step(hidden, weight, targets))
        hf, hf_s = measure(hf_loss_step(hidden, weight, targets))
        per_logit = (hf - fused) / (tokens * VOCAB)
        at_context = per_logit * CONTEXT * VOCAB
        row = dict(
            tokens=tokens,
            hidden=hidden_size,
            hf_peak=hf,
            fused_peak=fused,
            saved=hf - fused,
            saved_bytes_per_logit=per_logit,
            extrapolated_saved_at_context=at_context,
            hf_seconds=hf_s,
            fused_interpreter_seconds=fused_s,
        )
        rows.append(row)
        print(
            f"{tokens:>7} {hf / 2**20:>7.0f}Mi {fused / 2**20:>8.0f}Mi {hf / max(fused, 1):>8.2f}x "
            f"{(hf - fused) / 2**20:>8.0f}Mi {per_logit:>8.1f} {at_context / GiB:>20.1f}Gi "
            f"{at_context / 2 / GiB:>7.1f}Gi"
        )
    if len(rows) >= 2:
        # the slope between the two largest runs: fixed costs (weight copy and gradient, allocator) cancel
        a, b = rows[-2], rows[-1]
        slope = (b["saved"] - a["saved"]) / ((b["tokens"] - a["tokens"]) * VOCAB)
        held = analytic(CONTEXT, VOCAB, HIDDEN, 4)["hf_held_fwd_to_bwd"] / (CONTEXT * VOCAB)
        at_context = slope * CONTEXT * VOCAB
        print(
            f"marginal saving {slope:.1f} B per fp32 logit = {slope / held:.2f} x the analytic held buffers "
            f"({held:.0f} B): {at_context / GiB:.1f} GiB per {CONTEXT:,}-token micro-batch, "
            f"{at_context / 2 / GiB:.1f} GiB per rank with Ulysses SP=2"
        )
        rows.append(
            dict(
                marginal_saved_bytes_per_fp32_logit=slope,
                ratio_to_analytic_held=slope / held,
                extrapolated_saved_at_context=at_context,
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--tokens", type=int, nargs="+", default=[128, 256, 512], help="token counts to measure (ascending)"
    )
    parser.add_argument("--hidden", type=int, default=64, help="hidden size for the CPU measurement")
    args = parser.parse_args(argv)
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
        # glibc keeps freed large blocks in its heap (dynamic mmap threshold), and reused pages do not raise
        # the peak RSS: a fixed threshold makes every large tensor an mmap returned to the OS when freed
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"})
    if not os.path.exists("/proc/self/clear_refs"):
        print("peak-RSS measurement needs Linux /proc/self/clear_refs; printing the analytic part only")
        measured = []
        analytic_rows = print_analytic()
    else:
        analytic_rows = print_analytic()
        measured = print_measured(args.tokens, args.hidden)
    print(
        "\nSpeed: not measured. The fused kernel's time means something only on a GPU (here it runs in "
        "Triton's CPU interpreter); this project has none."
    )
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    tmp = RESULTS + ".tmp"
    with open(tmp, "w") as f:
        json.dump(dict(analytic=analytic_rows, measured_cpu=measured), f, indent=2)
    os.replace(tmp, RESULTS)
    print(f"wrote {os.path.relpath(RESULTS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
