"""GRPO through verl's real ``main_ppo +plugin=falcon_h1r_cpu`` on CPU, 2 steps, with the plugin active.

Each case runs the real entry point in a subprocess (tiny Falcon-H1 and tokenizer built in code,
generated parquet) and asserts, from the metrics verl's trainer logged itself, that the plugin's
parts ran inside verl's loop:

* the ``falcon_h1r`` policy loss: its positive-sample NLL metrics, with positives present;
* the online sampler (v1 trainer): ``training/falcon_sampling/*``, batches filled exactly;
* truncated importance sampling: ``rollout_corr/rollout_is_*``;
* the reward router: its extra outputs (``acc``, ``format_ok``) as validation metrics, and
  rewards that vary (GRPO learns from nothing else);
* the packed / Ulysses Falcon-H1 patch applied by verl's ``apply_monkey_patch``;
* ``use_liger=True`` (falcon_h1r's default) switched off on CPU with a WARNING instead of crashing;

and that the HF rollout's log-probs agree with the trainer's recomputed ones (verl's own
``training/rollout_probs_diff_max`` and ``training/rollout_actor_probs_pearson_corr``). Both
run in fp32 through different code (HF ``generate`` with its recurrent cache vs. the trainer's
packed, possibly sequence-parallel forward): the tolerance is float32 error, 1e-4 in probability.
"""

from __future__ import annotations

import pytest

from verl_falcon_plugin.testing.trainer_run import leftover_processes, main_ppo_command, run_trainer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

PROB_DIFF_TOL = 1e-4
STEPS = 2

CASES = {
    "v1_1rank": [],
    "v1_2ranks_sp2": [
        "trainer.n_gpus_per_node=2",
        "actor_rollout_ref.actor.ulysses_sequence_parallel_size=2",
        "actor_rollout_ref.model.use_remove_padding=True",
    ],
    # falcon_h1r's own default use_liger=True: on CPU, switched off with a WARNING, no crash
    "legacy_use_liger": ["trainer.use_v1=False", "data.gen_batch_size=null", "actor_rollout_ref.model.use_liger=True"],
}


def _overrides(inputs, ray_dir, out_dir) -> list[str]:
    return [
        f"actor_rollout_ref.model.path={inputs['model']}",
        f"data.train_files={inputs['train']}",
        f"data.val_files={inputs['val']}",
        "data.train_batch_size=4",
        "data.max_prompt_length=48",
        "data.max_response_length=32",
        "actor_rollout_ref.rollout.n=4",
        "actor_rollout_ref.actor.ppo_mini_batch_size=4",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=8",
        f"trainer.total_training_steps={STEPS}",
        "trainer.logger=[console]",
        "trainer.save_freq=-1",
        "trainer.test_freq=-1",
        f"trainer.default_local_dir={out_dir / 'checkpoints'}",
        f"+ray_kwargs.ray_init._temp_dir={ray_dir}",
    ]


@pytest.mark.parametrize("case", list(CASES))
def test_grpo_two_steps_on_cpu(case, smoke_inputs, ray_temp_dir, tmp_path) -> None:
    command = main_ppo_command(*_overrides(smoke_inputs, ray_temp_dir, tmp_path), *CASES[case])
    run = run_trainer(command, cwd=tmp_path, timeout_s=1000)
    assert run.returncode == 0, run.log[-6000:]
    steps = {step: metrics for step, metrics in run.metrics.items() if step >= 1}
    assert sorted(steps) == list(range(1, STEPS + 1)), f"trained steps {sorted(steps)}"

    # the falcon_h1r loss ran, with positive samples
    for metrics in steps.values():
        assert metrics["actor/falcon_h1r/positive_nll_coef"] == pytest.approx(0.1)
    assert any(
        m["actor/falcon_h1r/positive_nll"] > 0 and m["actor/falcon_h1r/positive_seq_frac"] > 0 for m in steps.values()
    )
    # TIS between the rollout and the trainer
    assert all(0.5 < m["rollout_corr/rollout_is_mean"] < 2.0 for m in steps.values())
    # the reward router: its extra outputs reached verl's metrics, and rewards vary within the batch
    assert "val-core/math_smoke/acc/mean@1" in run.metrics[0]
    assert "val-aux/math_smoke/format_ok/mean@1" in run.metrics[0]
    assert any(m["critic/score/max"] > m["critic/score/min"] for m in steps.values())
    # the Falcon-H1 packed patch, through verl's apply_monkey_patch
    assert "falcon_h1r: apply_monkey_patch patched" in run.log
    if "actor_rollout_ref.model.use_liger=True" in CASES[case]:
        assert "use_liger=True is IGNORED" in run.log
    if "trainer.use_v1=False" not in CASES[case]:
        for metrics in steps.values():  # the online sampler filled each batch exactly
            assert metrics["training/falcon_sampling/batch_fill"] == 1.0
            assert metrics["training/falcon_sampling/prompts_generated"] >= 4

    diffs = [m["training/rollout_probs_diff_max"] for m in steps.values()]
    corrs = [m["training/rollout_actor_probs_pearson_corr"] for m in steps.values()]
    print(f"\n[cpu_trainer] grpo {case}: {run.summary()} rollout-vs-trainer prob max diff {max(diffs):.2e}, "
          f"pearson min {min(corrs):.6f}")  # fmt: skip
    assert max(diffs) < PROB_DIFF_TOL
    assert min(corrs) > 0.9999
    assert leftover_processes(str(ray_temp_dir)) == []
