#!/usr/bin/env bash
# Evaluation protocol of Falcon-H1R (Sec. 4): temperature 0.6, top-p 0.95, pass@1 averaged over k samples,
# with k and the length budget per benchmark from benchmarks.tsv. Generation is `falcon-h1r rl-data rollouts`
# (vLLM offline engine or an OpenAI-compatible server) and scoring is the project's reward router, so
# evaluation and RL use the same verifier.
#
#   MODEL=/ckpt/falcon-h1r-7b DATA=/data/eval OUT=results bash recipes/eval/run_eval.sh
#   SERVER=http://localhost:8000/v1 SERVED=falcon-h1r DATA=/data/eval bash recipes/eval/run_eval.sh
# DATA holds one JSONL per benchmark (<benchmark>.jsonl: prompt, ground_truth, data_source).
set -euo pipefail
: "${DATA:?folder with <benchmark>.jsonl files}"
OUT=${OUT:-results}
mkdir -p "$OUT"
here=$(dirname "$0")
if [[ -n "${SERVER:-}" ]]; then target=(--server-url "$SERVER" --served-model "${SERVED:?model name on the server}")
else target=(--model "${MODEL:?checkpoint path, or SERVER=...}" --engine-arg 'dtype="bfloat16"'); fi

tail -n +2 "$here/benchmarks.tsv" | while IFS=$'\t' read -r benchmark samples max_tokens; do
    [[ -f "$DATA/$benchmark.jsonl" ]] || { echo "skip $benchmark: no $DATA/$benchmark.jsonl"; continue; }
    falcon-h1r rl-data rollouts --problems "$DATA/$benchmark.jsonl" --out "$OUT/$benchmark.jsonl" "${target[@]}" \
        --n "$samples" --temperature 0.6 --top-p 0.95 --max-tokens "$max_tokens" --system-prompt paper
done
python "$here/pass_at_1.py" "$OUT"/*.jsonl
