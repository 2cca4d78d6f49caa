#!/usr/bin/env bash
# Evaluation protocol of Falcon-H1R (Sec. 4): temperature 0.6, top-p 0.95, pass@1 averaged over k samples,
# with k, the length budget and the reward domain per benchmark from benchmarks.tsv (its last column says
# which settings are the paper's and which are ours). Generation is `falcon-h1r rl-data rollouts` (vLLM
# offline engine or an OpenAI-compatible server, retried and resumable) and scoring is the project's reward
# router, so evaluation and RL use the same verifier. Each benchmark's output is resumable: rerun to continue.
#
#   MODEL=/ckpt/falcon-h1r-7b DATA=/data/eval OUT=results bash recipes/eval/run_eval.sh
#   SERVER=http://localhost:8000/v1 SERVED=falcon-h1r DATA=/data/eval \
#     JUDGE=http://judge:8001 SANDBOX=http://sandbox:8080 bash recipes/eval/run_eval.sh
#
# Parameters (environment):
#   DATA        folder with one <benchmark>.jsonl per benchmark (prompt, ground_truth, data_source[, extra_info])
#   MODEL | SERVER+SERVED   an offline engine on a checkpoint, or a server and the model name it serves
#   JUDGE       comma-separated OpenAI-compatible judge endpoints: needed by the science rows (gpqa_diamond, hle)
#               (the judge model is the first one each endpoint lists under /v1/models)
#   SANDBOX     comma-separated Sandbox-Fusion endpoints (`falcon-h1r sandbox serve` works): needed by code rows
#   BENCHMARKS  the table to run (default benchmarks.tsv next to this script); OUT (default results)
#   FALCON_H1R / PYTHON     the commands to use (default: falcon-h1r / python on PATH)
#   TEMPERATURE / TOP_P     paper: 0.6 / 0.95 (kept as parameters only for smoke runs)
#
# Removed: IFBench (paper 53.4). Its score comes from IFBench's own instruction verifiers (format and
# constraint checkers), which the reward router does not implement: no domain of the router can score it,
# so listing it would only generate and then fail. Score it with IFBench's official harness.
#
# A benchmark whose data file is missing is skipped with a message; one that needs a judge or a sandbox
# that was not given fails before anything is generated.
set -euo pipefail
: "${DATA:?folder with <benchmark>.jsonl files}"
OUT=${OUT:-results}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCHMARKS=${BENCHMARKS:-$here/benchmarks.tsv}
FALCON_H1R=${FALCON_H1R:-falcon-h1r}
PYTHON=${PYTHON:-python}
TEMPERATURE=${TEMPERATURE:-0.6}
TOP_P=${TOP_P:-0.95}
mkdir -p "$OUT"
if [[ -n "${SERVER:-}" ]]; then target=(--server-url "$SERVER" --served-model "${SERVED:?model name on the server}")
else target=(--model "${MODEL:?checkpoint path, or SERVER=...}" --engine-arg 'dtype="bfloat16"'); fi
[[ -n "${JUDGE:-}" ]] && export FALCON_H1R_JUDGE_ENDPOINTS="$JUDGE"
[[ -n "${SANDBOX:-}" ]] && export FALCON_H1R_SANDBOX_ENDPOINTS="$SANDBOX"

outputs=()
while IFS=$'\t' read -r benchmark samples max_tokens domain _paper _from; do
    [[ -f "$DATA/$benchmark.jsonl" ]] || { echo "skip $benchmark: no $DATA/$benchmark.jsonl"; continue; }
    if [[ "$domain" == science && -z "${FALCON_H1R_JUDGE_ENDPOINTS:-}" ]]; then
        echo "error: $benchmark is scored by the LLM judge: set JUDGE=http://host:port[,...]" >&2; exit 2; fi
    if [[ "$domain" == code && -z "${FALCON_H1R_SANDBOX_ENDPOINTS:-}" ]]; then
        echo "error: $benchmark is scored in a sandbox: set SANDBOX=http://host:port[,...]" >&2; exit 2; fi
    echo "== $benchmark: $samples samples/question, max $max_tokens tokens, $domain reward"
    "$FALCON_H1R" rl-data rollouts --problems "$DATA/$benchmark.jsonl" --out "$OUT/$benchmark.jsonl" "${target[@]}" \
        --n "$samples" --temperature "$TEMPERATURE" --top-p "$TOP_P" --max-tokens "$max_tokens" \
        --system-prompt paper --domain "$domain"
    outputs+=("$OUT/$benchmark.jsonl")
done < <(tail -n +2 "$BENCHMARKS")
[[ ${#outputs[@]} -gt 0 ]] || { echo "error: no benchmark data in $DATA" >&2; exit 2; }
"$PYTHON" "$here/pass_at_1.py" "${outputs[@]}"
