#!/usr/bin/env bash
# Cold-start SFT of Falcon-H1R-7B (arXiv 2601.02346, Sec. 2, Table 1) on verl 0.9.1 with this plugin.
# It needs GPUs (the paper used 256 H100s); it cannot run on a CPU machine.
#
#   BASE=/ckpt/Falcon-H1-7B-Base NNODES=32 bash recipes/sft/run_sft_falcon_h1r_7b.sh [hydra overrides...]
#
# Paper settings: lr 1024e-6 (muP-scaled), 4% linear warmup, AdamW (default betas) wd 0.01, bf16,
# grad clip 1.0, batch 512, 3 epochs, 36K context (longer samples right-trimmed), Ulysses SP 2,
# Liger kernels, the streaming weighted mixture (recipes/sft/mixture.yaml), empty_cache against
# fragmentation (every 50 steps: the paper gives no period; ours).
#
# Schedule: "linear, 4% warmup" = optim.lr_scheduler_type=linear, which the plugin registers for verl's FSDP
# engine (verl_falcon_plugin/optim/: linear warmup over 4% of the steps, then linear decay to the peak lr
# times optim.min_lr_ratio; verl 0.9.1 itself offers only constant|cosine). The paper does not give the
# final lr: min_lr_ratio=0 (decay to 0) is ours.
#
# Setting                              paper (Table 1 / Sec. 2)              here
# model.use_remove_padding             padding-free packed sequences         true
# model.use_liger                      Liger (RoPE, RMSNorm, CE)             true
# model.enable_gradient_checkpointing  not in the paper                      true (ours)
# engine.ulysses_sequence_parallel_size  Ulysses degree 2                    2
# engine.dtype                         bf16                                  bfloat16
# optim.lr                             1024e-6 (muP-scaled)                  1.024e-3
# optim.lr_scheduler_type              linear                                linear
# optim.lr_warmup_steps_ratio          4%                                    0.04
# optim.min_lr_ratio                   not in the paper                      0.0 (ours)
# optim.weight_decay                   0.01                                  0.01
# optim.betas                          AdamW defaults                        [0.9,0.999]
# optim.clip_grad                      1.0                                   1.0
# data.train_batch_size                512                                   512
# data.max_length                      36K                                   36864
# data.truncation                      longer samples right-trimmed          right
# data.pad_mode                        packed (padding-free)                 no_padding
# data.use_dynamic_bsz                 not in the paper                      true (ours)
# data.max_token_len_per_gpu           not in the paper                      36864 (ours)
# trainer.empty_cache_every_n_steps    periodic, period not given            50 (ours)
# trainer.total_epochs                 3                                     3
# trainer.nnodes                       256 H100s                             32 (ours: 32 x 8 GPUs)
# trainer.n_gpus_per_node              256 H100s                             8 (ours)
# Launched through verl_falcon_plugin.data.run_sft (verl's own Hydra main, with the streaming
# dataloader and empty_cache hooks installed first).
set -euo pipefail
: "${BASE:?path of Falcon-H1-7B-Base}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NNODES="${NNODES:-32}"
GPUS_PER_NODE="${GPUS_PER_NODE:-8}"
MAX_LEN=36864

torchrun --nnodes="$NNODES" --nproc_per_node="$GPUS_PER_NODE" \
    ${MASTER_ADDR:+--master_addr="$MASTER_ADDR"} ${NODE_RANK:+--node_rank="$NODE_RANK"} \
    -m verl_falcon_plugin.data.run_sft \
    model.path="$BASE" \
    model.use_remove_padding=true \
    model.use_liger=true \
    model.enable_gradient_checkpointing=true \
    engine.ulysses_sequence_parallel_size=2 \
    engine.dtype=bfloat16 \
    optim.lr=1.024e-3 \
    optim.lr_warmup_steps_ratio=0.04 \
    optim.lr_scheduler_type=linear \
    optim.min_lr_ratio=0.0 \
    optim.weight_decay=0.01 \
    optim.betas='[0.9,0.999]' \
    optim.clip_grad=1.0 \
    data.train_batch_size=512 \
    data.max_length="$MAX_LEN" \
    data.truncation=right \
    data.pad_mode=no_padding \
    data.use_dynamic_bsz=true \
    data.max_token_len_per_gpu="$MAX_LEN" \
    data.num_workers=0 \
    data.train_files="${TRAIN_FILES:-[]}" \
    data.custom_cls.path=pkg://verl_falcon_plugin.data.streaming_sft \
    data.custom_cls.name=StreamingSFTDataset \
    +data.streaming.mixture_file="${MIXTURE:-$HERE/mixture.yaml}" \
    +trainer.empty_cache_every_n_steps="${EMPTY_CACHE_EVERY:-50}" \
    trainer.total_epochs=3 \
    trainer.nnodes="$NNODES" trainer.n_gpus_per_node="$GPUS_PER_NODE" \
    trainer.project_name=falcon-h1r trainer.experiment_name="${EXPERIMENT:-sft-7b}" \
    trainer.logger='[console]' \
    "$@"
