#!/usr/bin/env bash
# GRPO stage of Falcon-H1R-7B (arXiv 2601.02346, Sec. 3, Table 2), on verl 0.9.1 with this plugin.
# `+plugin=falcon_h1r` sets the paper's hyperparameters, loss, online sampler and rewards; this script adds
# the cluster layout and the paths. It needs GPUs (verl's resource check stops on a CPU machine).
#
#   SFT_CHECKPOINT=/ckpt/falcon-h1r-7b-sft TRAIN=/data/rl_math.parquet VAL=/data/aime25.parquet \
#   NNODES=8 bash recipes/rl/grpo_falcon_h1r_7b.sh [extra hydra overrides...]
#
# TRAIN comes from `falcon-h1r rl-data export` (verl's RL parquet, the paper's system prompt in each prompt).
# Settings this script adds (the paper's GRPO values are in plugin/falcon_h1r.yaml, each marked there):
# Setting                                          paper                                 here
# actor_rollout_ref.model.use_remove_padding       not in the paper                      true (ours: packed)
# actor_rollout_ref.actor.ulysses_sequence_parallel_size  not given for RL (SFT: 2)     2 (ours)
# actor_rollout_ref.rollout.name                   vLLM                                  vllm
# data.max_prompt_length                           not in the paper                      2048 (ours)
# trainer.nnodes                                   not given for RL                      1 (ours)
# trainer.n_gpus_per_node                          not given for RL                      8 (ours)
set -euo pipefail
: "${SFT_CHECKPOINT:?path of the cold-start SFT checkpoint}"
: "${TRAIN:?parquet of RL problems, filtered with falcon-h1r rl-data filter}"
: "${VAL:?parquet of validation problems}"

python -m verl.trainer.main_ppo +plugin=falcon_h1r \
    actor_rollout_ref.model.path="$SFT_CHECKPOINT" \
    actor_rollout_ref.model.use_remove_padding=true \
    actor_rollout_ref.actor.ulysses_sequence_parallel_size="${SP:-2}" \
    actor_rollout_ref.rollout.name=vllm \
    data.train_files="$TRAIN" data.val_files="$VAL" \
    data.max_prompt_length="${MAX_PROMPT:-2048}" \
    trainer.nnodes="${NNODES:-1}" trainer.n_gpus_per_node="${GPUS_PER_NODE:-8}" \
    trainer.project_name=falcon-h1r trainer.experiment_name="${EXPERIMENT:-grpo-math}" \
    "$@"
