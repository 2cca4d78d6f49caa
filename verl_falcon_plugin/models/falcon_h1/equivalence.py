"""Numerical equivalence of the patched Falcon-H1 with unpatched transformers, shared by tests and preflight.

The reference is always transformers' own Falcon-H1 run *one sequence at a time*
(unpatched), never the code under test. Errors are relative: ``max|a - b| / max|b|``.

- :func:`packed_check`: the patched model on a packed row vs the reference; also the
  unpatched model on the same packed row (which must be wrong, proving the check can fail).
- :func:`sp_check`: spawns gloo processes and runs the patched model under Ulysses SP
  with verl's own ``ulysses_pad_and_slice_inputs`` / ``gather_outputs_and_unpad`` exactly
  as verl's FSDP engine calls them; rank grads are averaged over the SP group (what
  FSDP's reduction does) before the comparison. Its negative controls
  (:mod:`.sp_controls`) are what verl 0.9.1 runs without the plugin: its generic Ulysses
  attention patch with the unpatched mixer, and with a packing-correct mixer that is not
  head-parallel.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import tempfile
from dataclasses import dataclass
from typing import Any

from verl_falcon_plugin.requires import require

torch = require("torch", "the Falcon-H1 equivalence checks")
F = torch.nn.functional

#: ragged: length 1, lengths not multiples of the chunk size (8 in the tiny models), one over several chunks
DEFAULT_LENGTHS = (5, 1, 13, 30, 8, 3)
LOGITS_TOLERANCE = 1e-5
GRAD_TOLERANCE = 1e-4


def relative_error(actual: "torch.Tensor", expected: "torch.Tensor") -> float:
    scale = expected.abs().max().clamp_min(1e-30)
    return float((actual - expected).abs().max() / scale)


def packed_batch(lengths, vocab_size: int, seed: int = 0):
    """(input_ids (1, T), position_ids (1, T), per-sequence ids, next-token labels (1, T) with -100 at each end)."""
    generator = torch.Generator().manual_seed(seed)
    sequences = [torch.randint(3, vocab_size, (n,), generator=generator) for n in lengths]
    input_ids = torch.cat(sequences)[None]
    position_ids = torch.cat([torch.arange(n) for n in lengths])[None]
    labels = torch.cat([torch.cat([s[1:], torch.tensor([-100])]) for s in sequences])[None]
    return input_ids, position_ids, sequences, labels


def next_token_loss(logits: "torch.Tensor", labels: "torch.Tensor") -> "torch.Tensor":
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)


def sequential_logits(model, sequences) -> "torch.Tensor":
    """The reference: each sequence alone through ``model`` (no position_ids, no packing)."""
    return torch.cat([model(input_ids=s[None], use_cache=False).logits for s in sequences], dim=1)


#: a parameter's gradient error is relative to max(its largest gradient, this x the model's largest gradient)
GRAD_SCALE_FLOOR = 1e-2


def grad_error(model, reference) -> tuple[float, str]:
    """Largest relative gradient error over all parameters, and the parameter it is on.

    Each parameter's error is ``max|g - g_ref| / max(max|g_ref|, 1% of the model's largest
    gradient)``. The floor keeps fp32 cancellation in a near-zero gradient from counting:
    transformers' own Falcon-H1, run with two chunk sizes (the same function), differs by
    1.4e-4 relative on a first-layer ``D`` whose gradient is 1000x smaller than the others.
    A wrong or missing gradient still shows as an error of order 1e-2 or more.
    """
    expected = dict(reference.named_parameters())
    missing = [n for n, p in model.named_parameters() if p.grad is None or expected[n].grad is None]
    if missing:
        raise AssertionError(f"parameters without a gradient: {missing}")
    floor = GRAD_SCALE_FLOOR * max(float(p.grad.abs().max()) for p in reference.parameters())
    worst, where = 0.0, ""
    for name, param in model.named_parameters():
        ref_grad = expected[name].grad
        scale = max(float(ref_grad.abs().max()), floor)
        error = float((param.grad - ref_grad).abs().max()) / scale
        if error > worst:
            worst, where = error, name
    return worst, where


#: shapes of the (query, key) each call of :func:`varlen_flash_stand_in` received: (batch, seq, heads, dim)
STAND_IN_CALLS: list[tuple[tuple[int, ...], tuple[int, ...]]] = []


def varlen_flash_stand_in(
    query,
    key,
    value,
    attention_mask,
    query_length,
    is_causal=True,
    dropout=0.0,
    position_ids=None,
    softmax_scale=None,
    cu_seq_lens_q=None,
    cu_seq_lens_k=None,
    max_length_q=None,
    max_length_k=None,
    **kwargs,
):
    """CPU stand-in for flash-attn's varlen kernel, with transformers' ``_flash_attention_forward`` signature.

    Lets the checks run the ``flash_attention_2`` dispatch *and verl's generic Ulysses
    wrapper around it* without a GPU: q/k/v are (1, seq, heads, dim); sequences come
    only from ``cu_seq_lens_q``. Receiving ``position_ids`` is an error: verl's wrapper
    would then have exchanged the heads a second time.
    """
    if position_ids is not None:
        raise AssertionError("flash attention got position_ids: verl's Ulysses wrapper all-to-alls a second time")
    if cu_seq_lens_q is None or max_length_q is None or not torch.equal(cu_seq_lens_q, cu_seq_lens_k):
        raise AssertionError("the packed path must pass cu_seq_lens_q/k and max_length_q/k to flash attention")
    STAND_IN_CALLS.append((tuple(query.shape), tuple(key.shape)))
    return attend_per_sequence(query, key, value, cu_seq_lens_q, is_causal, softmax_scale)


def attend_per_sequence(query, key, value, cu_seqlens, is_causal: bool, softmax_scale) -> "torch.Tensor":
    """What flash-attn's varlen kernel computes, with SDPA: q/k/v (1, seq, heads, dim), sequences from cu_seqlens."""
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # (heads, seq, dim)
    k, v = (t.repeat_interleave(q.shape[0] // t.shape[0], dim=0) for t in (k, v))
    bounds = cu_seqlens.tolist()
    pieces = [
        F.scaled_dot_product_attention(q[:, a:b], k[:, a:b], v[:, a:b], is_causal=is_causal, scale=softmax_scale)
        for a, b in zip(bounds[:-1], bounds[1:])
    ]
    return torch.cat(pieces, dim=1).transpose(0, 1)[None]


def use_flash_stand_in(model, sp_size: int = 1) -> None:
    """Switch ``model`` to ``flash_attention_2`` behind verl's generic Ulysses wrapper and the CPU stand-in."""
    from verl.models.transformers import monkey_patch

    monkey_patch.apply_monkey_patch(model, ulysses_sp_size=sp_size, use_remove_padding=True)
    monkey_patch._flash_attention_forward = varlen_flash_stand_in
    model.config._attn_implementation = "flash_attention_2"


@dataclass
class PackedResult:
    logits: float
    loss: float
    grads: float
    worst_grad_param: str
    unpatched_logits: float


def packed_check(
    geometry: dict[str, Any] | None = None,
    lengths=DEFAULT_LENGTHS,
    *,
    attn_implementation: str = "sdpa",
    seed: int = 0,
    gradient_checkpointing: bool = False,
    device: str = "cpu",
    **config_overrides: Any,
) -> PackedResult:
    """Patched model on one packed row vs unpatched HF one sequence at a time (forward and backward).

    On a CUDA ``device`` both run their GPU paths when mamba_ssm / causal_conv1d are
    installed (HF's fused kernels; ours with ``seq_idx``). ``flash_attention_2`` on CPU
    runs :func:`varlen_flash_stand_in` behind verl's generic Ulysses wrapper (needs verl).
    """
    from verl_falcon_plugin.models.falcon_h1.patch import patch_falcon_h1
    from verl_falcon_plugin.testing import tiny_falcon_h1

    flash_stand_in = attn_implementation == "flash_attention_2" and device == "cpu"
    reference_attention = "sdpa" if flash_stand_in else attn_implementation
    reference = tiny_falcon_h1(geometry, seed=seed, attn_implementation=reference_attention, **config_overrides)
    reference = reference.to(device)
    model = copy.deepcopy(reference)
    patch_falcon_h1(model)
    if flash_stand_in:
        use_flash_stand_in(model)
    batch = packed_batch(lengths, reference.config.vocab_size, seed)
    input_ids, position_ids, labels = (t.to(device) for t in (batch[0], batch[1], batch[3]))
    sequences = [s.to(device) for s in batch[2]]
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.train()

    with torch.no_grad():
        unpatched = reference(input_ids=input_ids, position_ids=position_ids, use_cache=False).logits
    packed_logits = model(input_ids=input_ids, position_ids=position_ids, use_cache=False).logits
    reference_logits = sequential_logits(reference, sequences)
    packed_loss = next_token_loss(packed_logits, labels)
    reference_loss = next_token_loss(reference_logits, labels)
    packed_loss.backward()
    reference_loss.backward()
    grads, where = grad_error(model, reference)
    return PackedResult(
        logits=relative_error(packed_logits.detach(), reference_logits.detach()),
        loss=relative_error(packed_loss.detach(), reference_loss.detach()),
        grads=grads,
        worst_grad_param=where,
        unpatched_logits=relative_error(unpatched, reference_logits.detach()),
    )


# ----------------------------------------------------------------------------- Ulysses SP (multi-process)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sp_case(model, reference_model, reference_logits, input_ids, position_ids, labels, group, sp_size):
    """One SP forward/backward as verl's FSDP engine runs it; returns (logits error, grad error, param)."""
    from verl.utils.ulysses import (
        gather_outputs_and_unpad,
        set_ulysses_sequence_parallel_group,
        ulysses_pad_and_slice_inputs,
    )

    set_ulysses_sequence_parallel_group(group)
    try:
        ids, pos, pad = ulysses_pad_and_slice_inputs(input_ids, position_ids_rmpad=position_ids, sp_size=sp_size)
        local_logits = model(input_ids=ids, position_ids=pos, use_cache=False).logits
        logits = gather_outputs_and_unpad(local_logits, gather_dim=1, unpad_dim=1, padding_size=pad)
        next_token_loss(logits, labels).backward()
    finally:
        set_ulysses_sequence_parallel_group(None)
    for param in model.parameters():
        torch.distributed.all_reduce(param.grad, group=group)
        param.grad /= sp_size
    grads, where = grad_error(model, reference_model)
    return relative_error(logits.detach(), reference_logits), grads, where


def _negative_controls(reference, reference_logits, input_ids, position_ids, lengths, group, sp_size) -> dict:
    """verl 0.9.1 alone, and verl's attention with a packing-correct mixer that is not head-parallel.

    See :mod:`.sp_controls`: the second one's error sits exactly on the tokens whose sequence
    began on an earlier shard, the error only the head-parallel mixer removes.
    """
    from verl_falcon_plugin.models.falcon_h1 import sp_controls

    generic = sp_controls.verl_generic_sp_logits(reference, input_ids, position_ids, group, sp_size)
    local = sp_controls.shard_local_mixer_sp_logits(reference, input_ids, position_ids, group, sp_size)
    errors = sp_controls.token_errors(local, reference_logits)
    earlier = sp_controls.started_on_earlier_shard(lengths, sp_size)
    if not earlier.any():
        raise ValueError(f"lengths {lengths} at sp={sp_size}: no sequence crosses a shard, the control shows nothing")
    return dict(
        verl_generic_logits=relative_error(generic, reference_logits),
        shard_local_mixer_own_shard=float(errors[~earlier].max()),
        shard_local_mixer_earlier_shard=float(errors[earlier].max()),
    )


def _sp_worker(rank: int, world: int, port: int, cases: list[dict[str, Any]], out_dir: str) -> None:
    # The check calls patch_falcon_h1 itself: skip verl's plugin discovery, which would run every
    # area's installer (and import verl's whole FSDP engine) in each of these short-lived processes.
    os.environ["VERL_USE_EXTERNAL_PLUGINS"] = "none"
    import torch.distributed as dist

    from verl_falcon_plugin.models.falcon_h1.patch import patch_falcon_h1
    from verl_falcon_plugin.testing import tiny_falcon_h1

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    groups: dict[int, Any] = {}
    results = []
    try:
        for sp_size in sorted({c["sp_size"] for c in cases}):
            # every rank creates every subgroup, in the same order (torch.distributed requires it)
            subgroups = [dist.new_group(list(range(s, s + sp_size))) for s in range(0, world, sp_size)]
            groups[sp_size] = subgroups[rank // sp_size]
        for case in cases:
            sp_size, group = case["sp_size"], groups[case["sp_size"]]
            flash = case["attn"] == "flash_attention_2"
            attn = "sdpa" if flash else case["attn"]
            reference = tiny_falcon_h1(case["geometry"], seed=case["seed"], attn_implementation=attn)
            model = copy.deepcopy(reference)
            patch_falcon_h1(model)
            if flash:
                use_flash_stand_in(model, sp_size)
                STAND_IN_CALLS.clear()
            input_ids, position_ids, sequences, labels = packed_batch(
                case["lengths"], reference.config.vocab_size, case["seed"]
            )
            reference_logits = sequential_logits(reference, sequences)
            next_token_loss(reference_logits, labels).backward()
            logits_error, grads_error, where = _sp_case(
                model, reference, reference_logits.detach(), input_ids, position_ids, labels, group, sp_size
            )
            flash_calls = list(STAND_IN_CALLS) if flash else []
            reference.zero_grad()
            results.append(
                dict(
                    case=case["name"],
                    sp_size=sp_size,
                    logits=logits_error,
                    grads=grads_error,
                    worst_grad_param=where,
                    flash_calls=flash_calls,
                    **_negative_controls(
                        reference, reference_logits.detach(), input_ids, position_ids, case["lengths"], group, sp_size
                    ),
                )
            )
    finally:
        path = os.path.join(out_dir, f"rank{rank}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(results, f)
        os.replace(path + ".tmp", path)
        dist.destroy_process_group()


def sp_check(cases: list[dict[str, Any]], world_size: int) -> list[dict[str, Any]]:
    """Run ``cases`` (dicts: name, sp_size, geometry, lengths, attn, seed) on ``world_size`` gloo processes.

    Returns one result per (rank, case): logits/grads relative errors of the patched
    model under SP; the negative controls (:mod:`.sp_controls`, relative logits errors):
    ``verl_generic_logits`` for verl 0.9.1 alone (its generic Ulysses attention patch,
    transformers' mixer), ``shard_local_mixer_own_shard`` / ``_earlier_shard`` for verl's
    attention patch with a packing-correct but not head-parallel mixer, on the tokens whose
    sequence starts on their own shard / began on an earlier one; and for
    ``attn="flash_attention_2"`` (the CPU stand-in behind verl's generic Ulysses wrapper)
    the (query, key) shapes flash attention received.
    """
    require("verl", "the Falcon-H1 Ulysses equivalence check (it uses verl's own SP input utilities)")
    mp = require("torch.multiprocessing", "the Falcon-H1 Ulysses equivalence check")
    for case in cases:
        if world_size % case["sp_size"]:
            raise ValueError(f"case {case['name']}: sp_size={case['sp_size']} does not divide world_size={world_size}")
    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(_sp_worker, args=(world_size, _free_port(), cases, out_dir), nprocs=world_size, join=True)
        results = []
        for rank in range(world_size):
            with open(os.path.join(out_dir, f"rank{rank}.json")) as f:
                results.extend(dict(rank=rank, **r) for r in json.load(f))
    return results
