"""Fused linear cross-entropy with ``lm_head_multiplier``: vs HF logits + torch CE, packed and sharded.

Tolerance: 1e-5 absolute on the loss and 1e-5 on gradients (fp32, interpreter).
"""

from __future__ import annotations

import pytest
import torch

from liger_patches.fused_ce import falcon_h1_fused_linear_cross_entropy, shift_labels_for_packed

pytestmark = pytest.mark.slow

TOL = 1e-5
VOCAB, HIDDEN, MULTIPLIER = 96, 32, 0.37


def reference_loss(hidden, weight, multiplier, shift_labels, normaliser=None):
    logits = torch.nn.functional.linear(hidden, weight) * multiplier  # HF: lm_head(h) * lm_head_multiplier
    total = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), shift_labels.reshape(-1), ignore_index=-100, reduction="sum"
    )
    return total / (normaliser if normaliser is not None else (shift_labels != -100).sum())


def leaf(t):
    return t.detach().clone().requires_grad_(True)


def test_fused_linear_ce_folds_lm_head_multiplier_forward_and_backward():
    torch.manual_seed(0)
    hidden = torch.randn(2, 24, HIDDEN)
    weight = torch.randn(VOCAB, HIDDEN) * 0.3
    labels = torch.randint(0, VOCAB, (2, 24))
    labels[0, :5] = -100
    targets = shift_labels_for_packed(labels, None)
    h_ref, w_ref, h, w = leaf(hidden), leaf(weight), leaf(hidden), leaf(weight)

    ref = reference_loss(h_ref, w_ref, MULTIPLIER, targets)
    ours = falcon_h1_fused_linear_cross_entropy(h, w, MULTIPLIER, targets)
    ref.backward()
    ours.backward()
    assert abs(ref.item() - ours.item()) < TOL
    assert (h_ref.grad - h.grad).abs().max() < TOL
    assert (w_ref.grad - w.grad).abs().max() < TOL
    # the multiplier matters: dropping it changes the loss far beyond the tolerance
    dropped = falcon_h1_fused_linear_cross_entropy(hidden, weight, 1.0, targets)
    assert abs(dropped.item() - ref.item()) > 1e-2


def test_packed_row_has_no_target_across_sequences():
    """Two sequences packed in one row give the loss of the two sequences run separately."""
    torch.manual_seed(1)
    lengths = (7, 9)
    hidden = torch.randn(1, sum(lengths), HIDDEN)
    weight = torch.randn(VOCAB, HIDDEN) * 0.3
    labels = torch.randint(0, VOCAB, (1, sum(lengths)))
    position_ids = torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0)

    packed_targets = shift_labels_for_packed(labels, position_ids)
    packed = falcon_h1_fused_linear_cross_entropy(hidden, weight, MULTIPLIER, packed_targets)
    pieces = torch.split(torch.arange(sum(lengths)), lengths)
    separate_targets = [shift_labels_for_packed(labels[:, p], None) for p in pieces]
    total = sum(
        reference_loss(hidden[:, p], weight, MULTIPLIER, t, normaliser=1.0) for p, t in zip(pieces, separate_targets)
    )
    count = sum((t != -100).sum() for t in separate_targets)
    assert abs(packed.item() - (total / count).item()) < TOL
    # HF's plain shift would predict the second sequence's first token from the first's last one
    plain = shift_labels_for_packed(labels, None)
    assert plain[0, lengths[0] - 1] == labels[0, lengths[0]] and packed_targets[0, lengths[0] - 1] == -100


def test_sharded_losses_add_up_to_the_global_token_mean():
    """Ulysses-style shards with the global count: shares and their gradients sum to the full loss's."""
    torch.manual_seed(2)
    hidden = torch.randn(1, 20, HIDDEN)
    weight = torch.randn(VOCAB, HIDDEN) * 0.3
    labels = torch.randint(0, VOCAB, (1, 20))
    labels[0, 3:9] = -100  # uneven valid counts across shards
    targets = shift_labels_for_packed(labels, None)  # rolled over the whole sequence, before slicing
    n_valid = (targets != -100).sum()

    h_full, w_full = leaf(hidden), leaf(weight)
    full = falcon_h1_fused_linear_cross_entropy(h_full, w_full, MULTIPLIER, targets)
    full.backward()

    h, w = leaf(hidden), leaf(weight)
    shares = [
        falcon_h1_fused_linear_cross_entropy(h[:, s], w, MULTIPLIER, targets[:, s], num_items_in_batch=n_valid)
        for s in (slice(0, 10), slice(10, 20))
    ]
    sum(shares).backward()
    assert abs(sum(s.item() for s in shares) - full.item()) < TOL
    assert (h.grad - h_full.grad).abs().max() < TOL and (w.grad - w_full.grad).abs().max() < TOL
    # a per-shard mean (the naive aggregation) is not the global mean here
    local_means = [
        falcon_h1_fused_linear_cross_entropy(hidden[:, s], weight, MULTIPLIER, targets[:, s])
        for s in (slice(0, 10), slice(10, 20))
    ]
    assert abs(sum(m.item() for m in local_means) / 2 - full.item()) > 1e-3


def test_mismatched_targets_are_refused():
    with pytest.raises(ValueError, match="shift_labels has 5 targets for 6 hidden states"):
        falcon_h1_fused_linear_cross_entropy(
            torch.randn(6, HIDDEN), torch.randn(VOCAB, HIDDEN), 1.0, torch.zeros(5, dtype=torch.long)
        )
