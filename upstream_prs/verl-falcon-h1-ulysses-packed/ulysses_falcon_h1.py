"""verl's apply_monkey_patch on a tiny Falcon-H1, packed and under Ulysses SP=2 (gloo); prints JSON.

Run with ``PYTHONPATH`` at a copy of verl (patched or not) and ``VERL_USE_EXTERNAL_PLUGINS=none``. Shaped like
verl's ``tests/models/test_transformers_ulysses.py``: the packed row is padded and sliced with verl's
``ulysses_pad_and_slice_inputs`` under verl's SP group, the logits gathered with ``gather_outputs_and_unpad``,
the loss backpropagated and the rank gradients averaged over the group (FSDP's reduction). The reference is
transformers' Falcon-H1 run one sequence at a time, computed before verl patches anything.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

LENGTHS = [5, 1, 9, 6]  # 21 tokens: sp=2 pads one; sequences straddle the shards and scan chunks (4)
SP = 2


def tiny_model(**overrides):
    from transformers import FalconH1Config, FalconH1ForCausalLM

    settings = dict(
        vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, mamba_n_heads=4, mamba_d_head=8, mamba_d_ssm=32, mamba_n_groups=2,
        mamba_d_state=8, mamba_chunk_size=4, mamba_rms_norm=True, mamba_norm_before_gate=False, use_cache=False,
        attn_implementation="sdpa", embedding_multiplier=1.3, lm_head_multiplier=0.7, ssm_in_multiplier=1.2,
        ssm_out_multiplier=0.8, attention_in_multiplier=0.9, attention_out_multiplier=1.1, key_multiplier=1.2,
        mlp_multipliers=[0.8, 1.4], ssm_multipliers=[0.9, 1.1, 1.2, 0.8, 1.3],
    )  # fmt: skip
    settings.update(overrides)
    torch.manual_seed(0)
    model = FalconH1ForCausalLM(FalconH1Config(**settings))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "A_log" in name:
                parameter.uniform_(-1.0, 1.0)
            elif "dt_bias" in name:
                parameter.uniform_(-2.0, 0.5)
            else:
                parameter.add_(torch.randn_like(parameter) * 0.2)
    return model


def packed_batch(vocab_size: int):
    generator = torch.Generator().manual_seed(1)
    sequences = [torch.randint(0, vocab_size, (n,), generator=generator) for n in LENGTHS]
    labels = torch.cat([torch.cat([s[1:], torch.tensor([-100])]) for s in sequences])[None]
    position_ids = torch.cat([torch.arange(n) for n in LENGTHS])[None]
    return torch.cat(sequences)[None], position_ids, sequences, labels


def loss_of(logits, labels):
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)


def relative(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max())


def grad_error(model, reference) -> float:
    """Largest gradient error, relative to max(the parameter's largest gradient, 1% of the model's)."""
    expected = dict(reference.named_parameters())
    floor = 1e-2 * max(float(p.grad.abs().max()) for p in reference.parameters())
    return max(
        float((p.grad - expected[n].grad).abs().max()) / max(float(expected[n].grad.abs().max()), floor)
        for n, p in model.named_parameters()
    )


def run_packed(model, input_ids, position_ids, labels):
    """verl's remove-padding path without SP: the packed row as one input."""
    logits = model(input_ids=input_ids, position_ids=position_ids, use_cache=False).logits
    loss_of(logits, labels).backward()
    return logits.detach()


def run_sp(model, input_ids, position_ids, labels, group, sp_size):
    from verl.utils.ulysses import (
        gather_outputs_and_unpad,
        set_ulysses_sequence_parallel_group,
        ulysses_pad_and_slice_inputs,
    )

    set_ulysses_sequence_parallel_group(group)
    try:
        ids, pos, pad = ulysses_pad_and_slice_inputs(input_ids, position_ids_rmpad=position_ids, sp_size=sp_size)
        local = model(input_ids=ids, position_ids=pos, use_cache=False).logits
        logits = gather_outputs_and_unpad(local, gather_dim=1, unpad_dim=1, padding_size=pad)
        loss_of(logits, labels).backward()
    finally:
        set_ulysses_sequence_parallel_group(None)
    for parameter in model.parameters():
        dist.all_reduce(parameter.grad, group=group)
        parameter.grad /= sp_size
    return logits.detach()


def divisibility(apply_monkey_patch) -> str:
    """6 SSM heads cannot be split over 4 ranks (4 attention heads, 2 KV heads can)."""
    model = tiny_model(mamba_n_heads=6, mamba_d_ssm=48)
    try:
        apply_monkey_patch(model, ulysses_sp_size=4, use_remove_padding=True)
    except (ValueError, AssertionError) as error:
        return f"{type(error).__name__}: {error}"
    return "accepted"


def worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=SP)
    import verl
    from verl.models.transformers.monkey_patch import apply_monkey_patch

    reference = tiny_model()
    model = copy.deepcopy(reference)
    input_ids, position_ids, sequences, labels = packed_batch(reference.config.vocab_size)
    reference_logits = torch.cat([reference(input_ids=s[None], use_cache=False).logits for s in sequences], dim=1)
    loss_of(reference_logits, labels).backward()
    reference_logits = reference_logits.detach()

    apply_monkey_patch(model, ulysses_sp_size=SP, use_remove_padding=True)
    results = {"verl": verl.__file__}
    packed = copy.deepcopy(model)
    logits = run_packed(packed, input_ids, position_ids, labels)
    results["packed"] = {"logits": relative(logits, reference_logits), "grads": grad_error(packed, reference)}
    logits = run_sp(model, input_ids, position_ids, labels, dist.group.WORLD, SP)
    results["ulysses"] = {"logits": relative(logits, reference_logits), "grads": grad_error(model, reference)}
    if rank == 0:
        results["divisibility"] = divisibility(apply_monkey_patch)
        with open(out, "w") as f:
            json.dump(results, f)
    dist.destroy_process_group()


def main() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = sys.argv[1]
    mp.spawn(worker, args=(port, out), nprocs=SP, join=True)
    with open(out) as f:
        print(f.read())


if __name__ == "__main__":
    os.environ.setdefault("VERL_USE_EXTERNAL_PLUGINS", "none")
    main()
