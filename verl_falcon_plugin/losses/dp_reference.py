"""The data and the single-process references of the balanced-DP loss checks.

A :class:`Scenario` is (dp, sp, micro-batching) over a per-token bigram model (embedding ->
linear, float64); its sequences are ragged and unbalanced across DP ranks. The references
compute, in one process over the union of every rank's tokens, the gradient a correctly
normalised data-parallel step must reproduce: the token mean of -log p (SFT), and verl's
``compute_policy_loss_vanilla`` plus the positive-sample NLL (PPO / ``falcon_h1r``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VOCAB = 11
HIDDEN = 5


@dataclass(frozen=True)
class Scenario:
    name: str
    dp: int
    sp: int = 1
    micro_batches: int = 2  # per rank, fixed size; ignored when max_tokens is set
    max_tokens: int | None = None  # dynamic batch size: token budget per micro-batch
    seqs_per_rank: int = 4
    empty_ranks: tuple[int, ...] = ()  # DP ranks whose loss mask is all zero
    seed: int = 0
    kind: str = "sft"  # "sft": verl's sft_loss path; "ppo": verl's ppo_loss with the falcon_h1r policy loss
    positive_nll_coef: float = 0.5

    @property
    def world(self) -> int:
        return self.dp * self.sp


@dataclass
class Sequence:
    prompt: list[int]
    response: list[int]
    loss_mask: list[int] = field(default_factory=list)  # over prompt + response


def tiny_model(seed: int = 1234) -> Any:
    import torch

    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Embedding(VOCAB, HIDDEN), torch.nn.Linear(HIDDEN, VOCAB)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
    return model


def ragged_lengths(count: int, rng: Any, mean_log: float = 2.0, sigma: float = 1.0, cap: int = 60) -> list[int]:
    """Log-normal response lengths (the long reasoning traces next to short answers)."""
    return [int(min(cap, max(1, round(rng.lognormvariate(mean_log, sigma))))) for _ in range(count)]


def make_sequences(scenario: Scenario) -> list[list[Sequence]]:
    """Per DP rank, its sequences. Rank r's lengths scale with r so ranks are unbalanced."""
    import random

    rng = random.Random(scenario.seed)
    ranks = []
    for r in range(scenario.dp):
        seqs = []
        for length in ragged_lengths(scenario.seqs_per_rank, rng, mean_log=1.2 + 0.8 * r):
            prompt = [rng.randrange(VOCAB) for _ in range(rng.randint(1, 4))]
            response = [rng.randrange(VOCAB) for _ in range(length)]
            valid = 0 if r in scenario.empty_ranks else 1
            seqs.append(Sequence(prompt, response, [0] * len(prompt) + [valid] * length))
        ranks.append(seqs)
    return ranks


# ---------------------------------------------------------------- SFT


def token_log_probs(model: Any, ids: Any) -> Any:
    """log p(ids[t+1] | ids[t]) for t < len-1, and the wrap-around label at the end (masked out)."""
    import torch

    labels = torch.roll(ids, shifts=-1)
    return torch.log_softmax(model(ids), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def reference_sft_grads(scenario: Scenario) -> list[Any]:
    """Gradient of the token mean of -log p over the union of all ranks' loss tokens, in one process."""
    import torch

    model = tiny_model()
    total, count = torch.zeros((), dtype=torch.float64), 0
    for seqs in make_sequences(scenario):
        for s in seqs:
            ids = torch.tensor(s.prompt + s.response)
            mask = torch.tensor(s.loss_mask[1:] + [0], dtype=torch.float64)  # target t+1 is predicted at t
            total = total + (-token_log_probs(model, ids) * mask).sum()
            count += sum(s.loss_mask)
    (total / count).backward()
    return [p.grad.clone() for p in model.parameters()]


# ---------------------------------------------------------------- PPO / falcon_h1r


def ppo_fields(scenario: Scenario) -> list[dict[str, Any]]:
    """Per DP rank: padded response tensors (advantages, old log-probs, mask) over one global width."""
    import random

    import torch

    ranks = make_sequences(scenario)
    width = max(len(s.response) for seqs in ranks for s in seqs)
    model = tiny_model()
    rng = random.Random(scenario.seed + 1)
    out = []
    for seqs in ranks:
        adv = torch.zeros(len(seqs), width, dtype=torch.float64)
        old = torch.zeros(len(seqs), width, dtype=torch.float64)
        mask = torch.zeros(len(seqs), width, dtype=torch.int64)
        for i, s in enumerate(seqs):
            n = len(s.response)
            ids = torch.tensor(s.prompt + s.response)
            with torch.no_grad():
                logp = token_log_probs(model, ids)[len(s.prompt) - 1 : len(ids) - 1]
            old[i, :n] = logp + 0.3 * torch.randn(n, generator=torch.Generator().manual_seed(rng.randrange(10**6)))
            adv[i, :n] = rng.choice([-1.0, -0.5, 0.0, 0.0, 0.7, 1.3])  # GRPO: one advantage per response
            mask[i, :n] = s.loss_mask[len(s.prompt) :][0] if n else 0
        # the reward's verdict, which the falcon_h1r NLL term selects on: here, the positive-advantage rows
        acc = (adv[:, 0] > 0).to(torch.float64)
        out.append({"advantages": adv, "old_log_probs": old, "response_mask": mask, "acc": acc})
    return out


def actor_config(coef: float, eps: float | None = None) -> Any:
    from verl.workers.config import ActorConfig

    from verl_falcon_plugin.losses.balanced_dp import DEFAULT_EPS
    from verl_falcon_plugin.losses.grpo import FalconH1RPolicyLossConfig

    return ActorConfig(
        strategy="fsdp",
        rollout_n=1,
        ppo_micro_batch_size_per_gpu=1,
        clip_ratio_low=0.2,
        clip_ratio_high=0.28,
        loss_agg_mode="token-mean",
        policy_loss=FalconH1RPolicyLossConfig(
            positive_nll_coef=coef, positive_nll_eps=DEFAULT_EPS if eps is None else eps
        ),
    )


def reference_ppo_grads(scenario: Scenario) -> list[Any]:
    """One process, union of all ranks: verl's vanilla loss (global token mean) + coef * positive-token NLL mean."""
    import torch
    from verl.trainer.ppo.core_algos import compute_policy_loss_vanilla

    model = tiny_model()
    fields = ppo_fields(scenario)
    logps, advs, olds, masks = [], [], [], []
    for seqs, f in zip(make_sequences(scenario), fields):
        width = f["advantages"].shape[1]
        for i, s in enumerate(seqs):
            ids = torch.tensor(s.prompt + s.response)
            logp = token_log_probs(model, ids)[len(s.prompt) - 1 : len(ids) - 1]
            logps.append(torch.nn.functional.pad(logp, (0, width - logp.shape[0])))
        advs.append(f["advantages"])
        olds.append(f["old_log_probs"])
        masks.append(f["response_mask"])
    log_prob, adv, old, mask = torch.stack(logps), torch.cat(advs), torch.cat(olds), torch.cat(masks).bool()
    config = actor_config(0.0)
    pg, _ = compute_policy_loss_vanilla(old, log_prob, adv, mask, "token-mean", config)
    positive = mask & (adv > 0)  # = the rows ppo_fields marks acc=1; GRPO: the advantage is constant per response
    nll = (-log_prob)[positive].sum() / max(int(positive.sum()), 1)
    (pg + scenario.positive_nll_coef * nll).backward()
    return [p.grad.clone() for p in model.parameters()]
