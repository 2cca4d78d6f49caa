"""Balanced DP token loss: verl's engine + our patch vs one process's global token mean.

The multi-rank runs drive verl's own ``FSDPEngine.forward_backward_batch`` (DP token
all-reduce, fixed and dynamic micro-batching), ``sft_loss`` / ``ppo_loss`` /
``agg_loss`` and Ulysses' ``Gather`` on forked gloo ranks (see
``verl_falcon_plugin.losses.dp_harness``). The reference is a single process
computing the token mean of -log p over the union of every rank's loss tokens
with plain autograd. Models are float64.

Tolerances (relative to the largest reference gradient entry):
* verl's stock loss: 1e-12 (float64 reduction order only);
* our balanced loss: 1e-8 (eps / N with eps = 1e-8 and N >= 1 bounds the deviation);
* the naive per-rank mean must be off by > 1e-2 on these ragged batches.
"""

from __future__ import annotations

import math
from functools import partial

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("verl")

from verl_falcon_plugin.losses import dp_harness as h  # noqa: E402

EXACT = 1e-12
WITH_EPS = 1e-8
NAIVE_MIN_ERROR = 1e-2

SFT_SCENARIOS = [
    h.Scenario("dp2_2micro", dp=2),
    h.Scenario("dp4_2micro", dp=4),
    h.Scenario("dp2_sp2_2micro", dp=2, sp=2),
    h.Scenario("dp2_dynamic_bsz", dp=2, max_tokens=40, seqs_per_rank=6),
    h.Scenario("dp2_rank1_empty", dp=2, empty_ranks=(1,)),
]
ALL_EMPTY = h.Scenario("dp2_all_empty", dp=2, empty_ranks=(0, 1))
PPO_SCENARIOS = [
    h.Scenario("ppo_dp2_2micro", dp=2, kind="ppo", seqs_per_rank=6),
    h.Scenario("ppo_dp2_sp2_dynamic", dp=2, sp=2, kind="ppo", seqs_per_rank=6, max_tokens=50),
]


def relative_error(grads: list, reference: list) -> float:
    scale = max(float(r.abs().max()) for r in reference)
    return max(float((g - r).abs().max()) for g, r in zip(grads, reference)) / scale


@pytest.fixture(scope="module")
def multi_rank_results() -> dict:
    # one fork of 4 gloo ranks runs every scenario (process start-up dominates the cost)
    return h.run_scenarios([*SFT_SCENARIOS, ALL_EMPTY, *PPO_SCENARIOS])


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SFT_SCENARIOS, ids=lambda s: s.name)
def test_sft_gradient_equals_single_process_global_token_mean(multi_rank_results: dict, scenario: h.Scenario) -> None:
    reference = h.reference_sft_grads(scenario)
    runs = multi_rank_results[scenario.name]
    assert relative_error(runs["verl"]["grads"], reference) <= EXACT
    assert relative_error(runs["balanced"]["grads"], reference) <= WITH_EPS
    assert math.isfinite(runs["balanced"]["loss"])
    # the per-rank mean weighs short-sequence ranks' tokens more: a different gradient
    assert relative_error(runs["naive"]["grads"], reference) > NAIVE_MIN_ERROR


@pytest.mark.slow
def test_counting_tokens_over_dp_x_sp_would_be_caught(multi_rank_results: dict) -> None:
    """The check can fail: the SP double-counting bug (verl PR 3691) gives a different gradient."""
    scenario = next(s for s in SFT_SCENARIOS if s.sp > 1)
    runs = multi_rank_results[scenario.name]
    assert relative_error(runs["world_count"]["grads"], h.reference_sft_grads(scenario)) > NAIVE_MIN_ERROR
    no_sp = next(s for s in SFT_SCENARIOS if s.sp == 1)  # without SP the two counts coincide
    assert relative_error(multi_rank_results[no_sp.name]["world_count"]["grads"], h.reference_sft_grads(no_sp)) <= EXACT


@pytest.mark.slow
def test_all_ranks_empty_gives_zero_loss_and_no_nan(multi_rank_results: dict) -> None:
    runs = multi_rank_results[ALL_EMPTY.name]
    balanced = runs["balanced"]
    assert balanced["loss"] == 0.0
    assert all(bool(torch.isfinite(g).all()) and float(g.abs().max()) == 0.0 for g in balanced["grads"])
    # without the patch: verl divides 0 by 0 (its masked_sum keeps the gradient finite, the loss is NaN)
    assert math.isnan(runs["verl"]["loss"])


@pytest.mark.slow
@pytest.mark.parametrize("scenario", PPO_SCENARIOS, ids=lambda s: s.name)
def test_falcon_h1r_gradient_equals_global_reference(multi_rank_results: dict, scenario: h.Scenario) -> None:
    reference = h.reference_ppo_grads(scenario)
    run = multi_rank_results[scenario.name]["falcon_h1r"]
    assert relative_error(run["grads"], reference) <= WITH_EPS


def _sft_micro_batch(num_valid: int):
    """A verl no-padding SFT micro-batch as the engine hands it to the loss (float32 log-probs)."""
    from verl.utils import tensordict_utils as tu
    from verl.utils.dataset.dataset_utils import DatasetPadMode

    gen = torch.Generator().manual_seed(0)
    lengths = [5, 9, 3]
    masks = [torch.zeros(n, dtype=torch.int64) for n in lengths]
    for m in masks:
        m[1 : 1 + num_valid] = 1
    data = tu.get_tensordict(
        tensor_dict={
            "input_ids": torch.nested.as_nested_tensor(
                [torch.zeros(n, dtype=torch.int64) for n in lengths], layout=torch.jagged
            ),
            "loss_mask": torch.nested.as_nested_tensor(masks, layout=torch.jagged),
        },
        non_tensor_dict={"pad_mode": DatasetPadMode.NO_PADDING, "batch_num_tokens": 37, "dp_size": 4},
    )
    log_probs = torch.nested.as_nested_tensor([-torch.rand(n, generator=gen) for n in lengths], layout=torch.jagged)
    return {"log_probs": log_probs}, data


def test_balanced_sft_loss_is_verl_sft_loss_bit_for_bit_in_float32() -> None:
    from verl.workers.utils.losses import sft_loss

    from verl_falcon_plugin.losses.balanced_dp import DEFAULT_EPS, balanced_sft_loss

    output, data = _sft_micro_batch(num_valid=2)
    ours, _ = balanced_sft_loss(None, output, data, eps=DEFAULT_EPS)
    theirs, _ = sft_loss(None, output, data)
    assert torch.equal(ours, theirs)
    assert data["batch_num_tokens"] == 37  # restored after the call
    # and eps is really used: a large one changes the value
    assert not torch.equal(balanced_sft_loss(None, output, data, eps=1.0)[0], theirs)


def test_balance_dp_token_switch_selects_the_balanced_loss() -> None:
    from omegaconf import OmegaConf

    from verl_falcon_plugin.losses.balanced_dp import balanced_sft_loss
    from verl_falcon_plugin.losses.verl_hook import sft_loss_for

    assert sft_loss_for(OmegaConf.create({"balance_dp_token": False})) is None
    chosen = sft_loss_for(OmegaConf.create({"balance_dp_token": True, "balance_dp_token_eps": 1e-6}))
    assert chosen.func is balanced_sft_loss and chosen.keywords == {"config": None, "eps": 1e-6}
    with pytest.raises(ValueError, match="data.balance_dp_token_eps"):
        sft_loss_for(OmegaConf.create({"balance_dp_token": True, "balance_dp_token_eps": -1}))


def test_sft_trainer_build_engine_hands_the_balanced_loss_to_its_client() -> None:
    import verl.trainer.sft_trainer as sft_trainer
    import verl.trainer.sft_trainer_ray as sft_trainer_ray
    from omegaconf import OmegaConf

    from verl_falcon_plugin.losses.balanced_dp import balanced_sft_loss
    from verl_falcon_plugin.losses.verl_hook import balance_dp_token_hook, install

    install()
    for module in (sft_trainer, sft_trainer_ray):
        assert getattr(module.SFTTrainer._build_engine, "__falcon_h1r_losses__", False), module.__name__

    class Client:
        loss_fn = None

        def set_loss_fn(self, loss_fn):
            self.loss_fn = loss_fn

    class Trainer:
        def __init__(self, balance: bool) -> None:
            self.config = OmegaConf.create({"data": {"balance_dp_token": balance}})

    def verl_build_engine(self) -> None:  # what verl's _build_engine leaves behind
        self.loss_fn = partial(lambda **kw: None, config=None)
        self.training_client = Client()
        self.training_client.set_loss_fn(self.loss_fn)

    patched = balance_dp_token_hook(verl_build_engine)
    on, off = Trainer(True), Trainer(False)
    patched(on)
    patched(off)
    assert on.training_client.loss_fn.func is balanced_sft_loss and on.loss_fn is on.training_client.loss_fn
    assert off.training_client.loss_fn.func is not balanced_sft_loss
