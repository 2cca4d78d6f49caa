"""Positives by correctness, end to end through verl 0.9.1's actor loss path.

The reward verdicts are the plugin router's real outputs (``score`` = correctness minus the
format penalty, ``acc`` = correctness). GRPO advantages come from verl's own
``compute_grpo_outcome_advantage``. The correctness column reaches the loss the way verl
carries reward extra info: ``DataProto.to_tensordict`` of ``non_tensor_batch["acc"]``
(legacy trainer) or ``extra_fields[i]["reward_extra_info"]["acc"]`` stored by verl's
``list_of_dict_to_tensordict`` (v1 trainer). The batch
then goes through verl's ``FSDPEngine.forward_backward_batch`` (micro-batching, token counts)
and ``ppo_loss`` (as the plugin leaves it bound in ``engine_workers``) on a one-rank gloo group.

Reference: the same step at ``positive_nll_coef=0`` (verl's vanilla loss exactly) plus an NLL
over the correct rows written here with plain autograd; float64, 1e-12 relative.
"""

from __future__ import annotations

import functools
import os

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
pytest.importorskip("verl")

import verl.trainer.ppo.core_algos  # noqa: E402,F401  (activation registers falcon_h1r when verl's registry loads)

from verl_falcon_plugin.losses.dp_batches import ppo_tensordict  # noqa: E402
from verl_falcon_plugin.losses.dp_harness import EngineStandIn  # noqa: E402
from verl_falcon_plugin.losses.dp_reference import Scenario, Sequence, tiny_model  # noqa: E402
from verl_falcon_plugin.losses.grpo import FalconH1RPolicyLossConfig  # noqa: E402
from verl_falcon_plugin.losses.positives import MissingCorrectnessError  # noqa: E402
from verl_falcon_plugin.rewards.router import compute_score  # noqa: E402

TOL = 1e-12
COEF = 0.5
GOLD = "5"
WELL_FORMED_WRONG = "<think>try 4</think>So the answer is \\boxed{4}."
MALFORMED_WRONG = "So the answer is \\boxed{3}."  # no think block: structure penalty
CORRECT = "<think>2+3</think>So the answer is \\boxed{5}."
MALFORMED_CORRECT = "\\boxed{5}"  # correct but penalised: score 0, acc 1


@pytest.fixture(scope="module")
def one_rank_group():
    import torch.distributed as dist
    from verl.utils import seqlen_balancing
    from verl.workers.engine.fsdp import transformer_impl

    from verl_falcon_plugin.losses.dp_harness import free_port
    from verl_falcon_plugin.losses.verl_hook import install

    install()
    started = not dist.is_initialized()
    if started:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
        dist.init_process_group("gloo", rank=0, world_size=1)
    # verl asks the CUDA platform where to put the tensors it all-reduces; gloo reduces on the CPU
    saved = transformer_impl.get_device_id, seqlen_balancing.get_device_name
    transformer_impl.get_device_id = lambda: "cpu"
    seqlen_balancing.get_device_name = lambda: "cpu"
    yield dist.group.WORLD
    transformer_impl.get_device_id, seqlen_balancing.get_device_name = saved
    if started:
        dist.destroy_process_group()


def router_outputs(responses: list[str]) -> list[dict]:
    return [compute_score("aime25", r, GOLD, {"question": "What is 2+3?"}) for r in responses]


def group_batch(outputs: list[dict], carrier: str, seed: int = 0):
    """One GRPO group: random token ids, verl's GRPO advantages from the router's scores."""
    from verl import DataProto
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage
    from verl.utils import tensordict_utils as tu

    gen = torch.Generator().manual_seed(seed)
    lengths = [3 + int(torch.randint(0, 5, (1,), generator=gen)) for _ in outputs]
    width = max(lengths)
    seqs = [Sequence([1, 2], torch.randint(0, 11, (n,), generator=gen).tolist(), [0, 0] + [1] * n) for n in lengths]
    mask = torch.zeros(len(seqs), width, dtype=torch.int64)
    scores = torch.zeros(len(seqs), width, dtype=torch.float32)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
        scores[i, n - 1] = outputs[i]["score"]  # verl puts the sequence reward on the last token
    advantages, _ = compute_grpo_outcome_advantage(scores, mask, np.array(["g"] * len(seqs), dtype=object))
    old = -torch.rand(len(seqs), width, generator=gen, dtype=torch.float64)
    fields = {"advantages": advantages.double() * mask, "old_log_probs": old * mask, "response_mask": mask}
    data = ppo_tensordict(seqs, fields, Scenario("group", dp=1, kind="ppo", micro_batches=2))
    extra = {k: v for k, v in outputs[0].items() if k != "score"}.keys()  # verl: every key but score
    if carrier == "legacy":  # ray_trainer: non_tensor_batch.update(reward_extra_infos_dict), then to_tensordict
        non_tensors = {k: np.array([o[k] for o in outputs]) for k in extra}
        columns = DataProto.from_dict(tensors={"rm_scores": scores}, non_tensors=non_tensors).to_tensordict()
    else:  # v1 agent loop (agent_loop_tq.py): extra_fields["reward_extra_info"] per sample, stored by verl's helper
        rows = [
            {"extra_fields": {"reward_extra_info": {k: o[k] for k in extra}}, "rm_scores": scores[i, : lengths[i]]}
            for i, o in enumerate(outputs)
        ]
        columns = tu.list_of_dict_to_tensordict(rows)
    for key in columns.keys():
        data.set(key, columns.get(key))
    return seqs, advantages, data


def engine_step(data, coef: float, group, **policy_loss):
    from verl.workers import engine_workers
    from verl.workers.config import ActorConfig
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngine

    model = tiny_model()
    config = ActorConfig(
        strategy="fsdp",
        rollout_n=1,
        ppo_micro_batch_size_per_gpu=1,
        clip_ratio_low=0.2,
        clip_ratio_high=0.28,
        loss_agg_mode="token-mean",
        policy_loss=FalconH1RPolicyLossConfig(positive_nll_coef=coef, positive_nll_eps=0.0, **policy_loss),
    )
    engine = EngineStandIn(model, group, None, 1, 1)
    output = FSDPEngine.forward_backward_batch(
        engine, data.clone(), functools.partial(engine_workers.ppo_loss, config=config)
    )
    return [p.grad.clone() for p in model.parameters()], output


def nll_grads(seqs: list[Sequence], rows: list[int], coef: float) -> list:
    """coef * token mean of -log p over the responses of ``rows``, by plain autograd on the same tiny model."""
    from verl_falcon_plugin.losses.dp_reference import token_log_probs

    model = tiny_model()
    total, count = 0.0, 0
    for i in rows:
        s = seqs[i]
        ids = torch.tensor(s.prompt + s.response)
        total = total + (-token_log_probs(model, ids)[len(s.prompt) - 1 : len(ids) - 1]).sum()
        count += len(s.response)
    (coef * total / count).backward()
    return [p.grad.clone() for p in model.parameters()]


def relative_error(grads: list, reference: list) -> float:
    scale = max(float(r.abs().max()) for r in reference)
    return max(float((g - r).abs().max()) for g, r in zip(grads, reference)) / scale


@pytest.mark.parametrize("carrier", ["legacy", "v1"])
def test_all_wrong_group_with_malformed_answers_gets_no_nll(one_rank_group, carrier):
    outputs = router_outputs([WELL_FORMED_WRONG, MALFORMED_WRONG, WELL_FORMED_WRONG, MALFORMED_WRONG])
    assert [o["score"] for o in outputs] == [0.0, -1.0, 0.0, -1.0] and all(o["acc"] == 0.0 for o in outputs)
    seqs, advantages, data = group_batch(outputs, carrier)
    assert (advantages[[0, 2]] > 0).any() and (advantages[[0, 2]] >= 0).all()  # wrong, yet positive advantage

    grads, output = engine_step(data, COEF, one_rank_group)
    vanilla, _ = engine_step(data, 0.0, one_rank_group)
    assert all(torch.equal(g, v) for g, v in zip(grads, vanilla))  # NLL term exactly 0
    nll_losses = output["metrics"]["actor/falcon_h1r/positive_nll_loss"].values  # a verl Metric, per micro-batch
    assert len(nll_losses) == 2 and all(value == 0.0 for value in nll_losses)

    # negative control: selecting by score (the explicit fallback at threshold -0.5 picks the well-formed wrong
    # answers, as the advantage sign did) does supervise them
    by_score, _ = engine_step(data, COEF, one_rank_group, positive_score_threshold=-0.5)
    assert relative_error(by_score, [v + n for v, n in zip(vanilla, nll_grads(seqs, [0, 2], COEF))]) <= TOL


@pytest.mark.parametrize("carrier", ["legacy", "v1"])
def test_one_correct_answer_is_the_only_one_supervised(one_rank_group, carrier):
    responses = [WELL_FORMED_WRONG, MALFORMED_CORRECT, CORRECT, MALFORMED_WRONG]
    outputs = router_outputs(responses)
    assert [o["acc"] for o in outputs] == [0.0, 1.0, 1.0, 0.0]
    assert outputs[1]["score"] == outputs[0]["score"] == 0.0  # a malformed correct answer scores like a wrong one
    seqs, _, data = group_batch(outputs, carrier, seed=1)

    grads, _ = engine_step(data, COEF, one_rank_group)
    vanilla, _ = engine_step(data, 0.0, one_rank_group)
    expected = [v + n for v, n in zip(vanilla, nll_grads(seqs, [1, 2], COEF))]
    assert relative_error(grads, expected) <= TOL


def test_a_reward_without_correctness_fails_at_the_first_step_naming_the_field(one_rank_group):
    outputs = [{"score": o["score"], "status": o["status"]} for o in router_outputs([CORRECT, MALFORMED_WRONG])]
    _, _, data = group_batch(outputs, "legacy")
    with pytest.raises(MissingCorrectnessError, match=r"'acc'.*positive_score_threshold"):
        engine_step(data, COEF, one_rank_group)
    # the NLL term off: no verdict needed
    engine_step(data, 0.0, one_rank_group)
