# babelcap's two entry points: `make demo` (the main job on the tiny CPU profile) and `make test`.
# Both build the CPU serving stack first (idempotent: seconds when it is already there).
VENV ?= .venv
PY := $(VENV)/bin/python
export BABELCAP_VENV := $(abspath $(VENV))
# The GPU stack (vLLM 0.10.2 from requirements-gpu.lock); builds and tests on any x86-64 Linux.
GPU_VENV ?= .venv-gpu
export BABELCAP_GPU_VENV := $(abspath $(GPU_VENV))

.PHONY: stack demo test lint typecheck tiny-models tiny-check gpu-stack gpu-lock gpu-test

stack:  ## build the CPU vLLM environment + babelcap in $(VENV)
	bash server/stack/install_cpu_stack.sh

demo: stack  ## serve the tiny models and caption the bundled example media
	$(VENV)/bin/babelcap demo --output out/demo.jsonl

lint: stack
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: stack
	$(VENV)/bin/mypy babelcap

test: lint typecheck  ## lint, type-check and run every test, the real-vLLM ones included
	$(PY) -m pytest
	$(MAKE) gpu-test

gpu-lock:  ## re-resolve pyproject's gpu + dev extras into server/stack/requirements-gpu.lock
	bash server/stack/install_gpu_stack.sh --lock

gpu-stack:  ## build $(GPU_VENV) from the lock with uv (no GPU needed; seconds when up to date)
	bash server/stack/install_gpu_stack.sh

gpu-test: gpu-stack  ## babelcap's GPU profiles against the real vLLM 0.10.2, CUDA faked
	$(GPU_VENV)/bin/python -m pytest tests/gpu

tiny-models: stack  ## retrain the tiny stand-ins into babelcap/stand_ins (about 15 min)
	$(VENV)/bin/babelcap tiny build

tiny-check: stack
	$(VENV)/bin/babelcap tiny check
