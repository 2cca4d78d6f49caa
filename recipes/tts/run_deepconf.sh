#!/usr/bin/env bash
# DeepConf online with the Falcon-H1R paper's settings (recipes/tts/deepconf.yaml).
#
#   recipes/tts/run_deepconf.sh PROBLEMS.jsonl OUT_DIR MODEL_PATH [extra `falcon-h1r deepconf run` options]
#   recipes/tts/run_deepconf.sh PROBLEMS.jsonl OUT_DIR --server http://host:8000 --served-model NAME
#
# PROBLEMS.jsonl rows: {"id": ..., "problem": ..., "answer": ...} (or "prompt" for a ready-made prompt).
# The early stop runs inside vLLM through this package's `vllm.logits_processors` entry point, so a
# server only needs `pip install verl-falcon-plugin` next to vLLM (never also --logits-processors).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
problems="${1:?PROBLEMS.jsonl}"; out="${2:?OUT_DIR}"; shift 2
if [[ $# -gt 0 && "$1" != --* ]]; then model=(--model "$1"); shift; else model=(); fi
exec falcon-h1r deepconf run "$problems" --out "$out" --config "$here/deepconf.yaml" "${model[@]}" "$@"
