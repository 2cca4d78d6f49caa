"""Liger + the packing / Ulysses patches of ``verl_falcon_plugin.models.falcon_h1``, in either order.

Reference: transformers' unpatched Falcon-H1 run one sequence at a time (sp=1,
no packing), loss = the token mean over all sequences. The patched model runs
the same sequences packed in one row, with our fused linear CE computing the
loss from packed ``position_ids``; under sp=2 each rank computes its share on
its slice (``shift_labels`` rolled over the whole row, then padded and sliced
as verl's ``ulysses_pad_and_slice_inputs`` does), and shares and gradients are
summed over the group.

Tolerance: 2e-5 relative on the loss; gradients with
``verl_falcon_plugin.models.falcon_h1.equivalence.grad_error`` (relative to
each gradient's scale, floored at 1% of the largest) below 1e-4.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile

import pytest
import torch

from verl_falcon_plugin.testing.tiny_falcon_h1 import GROUPED_GEOMETRY, tiny_falcon_h1

pytestmark = pytest.mark.slow

falcon_h1_patch = pytest.importorskip("verl_falcon_plugin.models.falcon_h1.patch")
equivalence = pytest.importorskip("verl_falcon_plugin.models.falcon_h1.equivalence")

LENGTHS = (5, 1, 13, 3)  # ragged, one of length 1, one over two chunks of 8
SP_LENGTHS = (5, 1, 10)  # 16 tokens: 8 per rank, one sequence straddling the ranks
LAYERS = 2
LOSS_RTOL = 2e-5
GRAD_TOL = 1e-4
ORDERS = ("liger_then_packing", "packing_then_liger")
SP_ORDERS = ORDERS  # verl's order is the first: use_liger, then apply_monkey_patch


def reference_loss_and_grads(reference, sequences):
    """HF, unpatched, one sequence at a time: sum of token losses / number of targets."""
    total, count = 0.0, 0
    reference.train()
    for sequence in sequences:
        logits = reference(input_ids=sequence[None], use_cache=False).logits[0, :-1]
        total = total + torch.nn.functional.cross_entropy(logits, sequence[1:], reduction="sum")
        count += len(sequence) - 1
    loss = total / count
    loss.backward()
    return loss.detach()


def patched(reference, order: str):
    from liger_patches import apply_liger_kernel_to_falcon_h1

    model = copy.deepcopy(reference)
    steps = [lambda: apply_liger_kernel_to_falcon_h1(model=model), lambda: falcon_h1_patch.patch_falcon_h1(model)]
    for step in steps if order == ORDERS[0] else reversed(steps):
        step()
    return model.train()


@pytest.mark.parametrize("order", ORDERS)
def test_liger_with_packing_matches_hf_per_sequence(order):
    from liger_patches.equivalence import falcon_h1_module_restored

    reference = tiny_falcon_h1(GROUPED_GEOMETRY, seed=11, num_hidden_layers=LAYERS)
    input_ids, position_ids, sequences, _ = equivalence.packed_batch(LENGTHS, reference.config.vocab_size, seed=11)
    ref_loss = reference_loss_and_grads(reference, sequences)
    with falcon_h1_module_restored():
        model = patched(reference, order)
        # labels = input_ids: the fused CE drops the targets across the packed boundaries itself
        loss = model(input_ids=input_ids, position_ids=position_ids, labels=input_ids, use_cache=False).loss
        loss.backward()
    assert model.model.layers[0].mamba.norm.forward.__func__.__qualname__ == "LigerFalconH1RMSNormGated.forward"
    assert abs(loss.item() - ref_loss.item()) / ref_loss.item() < LOSS_RTOL
    grads, where = equivalence.grad_error(model, reference)
    assert grads < GRAD_TOL, f"gradient of {where} off by {grads:.2e}"


def test_liger_without_packing_is_wrong_on_packed_rows():
    """The check can fail: Liger alone (HF's mixer) leaks state across the packed sequences."""
    from liger_patches import apply_liger_kernel_to_falcon_h1
    from liger_patches.equivalence import falcon_h1_module_restored

    reference = tiny_falcon_h1(GROUPED_GEOMETRY, seed=11, num_hidden_layers=LAYERS)
    input_ids, position_ids, sequences, _ = equivalence.packed_batch(LENGTHS, reference.config.vocab_size, seed=11)
    reference_loss_and_grads(reference, sequences)
    with falcon_h1_module_restored():
        model = copy.deepcopy(reference)
        apply_liger_kernel_to_falcon_h1(model=model)
        loss = model.train()(input_ids=input_ids, position_ids=position_ids, labels=input_ids, use_cache=False).loss
        loss.backward()
    grads, _ = equivalence.grad_error(model, reference)
    assert grads > 100 * GRAD_TOL


# ----------------------------------------------------------------------------- sp=2 over gloo


def _rank_slice(t: torch.Tensor, rank: int, world: int, pad_value: int) -> torch.Tensor:
    """verl's ulysses_pad_and_slice_inputs: pad the row to a multiple of sp, keep this rank's part."""
    pad = -t.shape[1] % world
    t = torch.nn.functional.pad(t, (0, pad), value=pad_value)
    return t.chunk(world, dim=1)[rank]


def _sp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    import tests.liger.conftest  # noqa: F401  (TRITON_INTERPRET and the interpreter shim, in this process too)
    from liger_patches.equivalence import falcon_h1_module_restored
    from liger_patches.fused_ce import shift_labels_for_packed
    from verl_falcon_plugin.models.falcon_h1.ulysses import set_sequence_parallel_group

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    results = {}
    try:
        for order in SP_ORDERS:
            reference = tiny_falcon_h1(GROUPED_GEOMETRY, seed=12, num_hidden_layers=LAYERS)
            input_ids, position_ids, sequences, _ = equivalence.packed_batch(
                SP_LENGTHS, reference.config.vocab_size, seed=12
            )
            ref_loss = reference_loss_and_grads(reference, sequences)
            shift_labels = shift_labels_for_packed(input_ids, position_ids)  # over the whole row, before slicing
            ids = _rank_slice(input_ids, rank, world, 0)
            pos = _rank_slice(position_ids, rank, world, 0)
            targets = _rank_slice(shift_labels, rank, world, -100)
            with falcon_h1_module_restored():
                model = patched(reference, order)
                set_sequence_parallel_group(dist.group.WORLD)
                try:
                    share = model(input_ids=ids, position_ids=pos, shift_labels=targets, use_cache=False).loss
                    share.backward()
                finally:
                    set_sequence_parallel_group(None)
            loss = share.detach().clone()
            dist.all_reduce(loss)  # the shares add up to the loss
            for param in model.parameters():
                dist.all_reduce(param.grad)  # and so do their gradients
            grads, where = equivalence.grad_error(model, reference)
            results[order] = dict(
                loss_rel=abs(loss.item() - ref_loss.item()) / ref_loss.item(),
                share=share.item(),
                grads=grads,
                where=where,
            )
    finally:
        path = os.path.join(out_dir, f"rank{rank}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(results, f)
        os.replace(path + ".tmp", path)
        dist.destroy_process_group()


def test_liger_packed_sp2_matches_plain_sp1_in_either_order():
    import torch.multiprocessing as mp

    world = 2
    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(_sp_worker, args=(world, equivalence._free_port(), out_dir), nprocs=world, join=True)
        ranks = [json.load(open(os.path.join(out_dir, f"rank{r}.json"))) for r in range(world)]
    assert all(rank.keys() == set(SP_ORDERS) for rank in ranks)
    for order in SP_ORDERS:
        for rank in ranks:
            result = rank[order]
            assert result["loss_rel"] < LOSS_RTOL, (order, result)
            assert result["grads"] < GRAD_TOL, (order, result)
        # each rank held a real share, not the whole loss
        assert all(abs(rank[order]["share"]) > 0 for rank in ranks)
        assert abs(sum(rank[order]["share"] for rank in ranks) - ranks[0][order]["share"] * world) > 1e-6
