# babelcap's two entry points: `make demo` (the main job on the tiny CPU profile) and `make test`.
# Both build the CPU serving stack first (idempotent: seconds when it is already there).
VENV ?= .venv
PY := $(VENV)/bin/python
export BABELCAP_VENV := $(abspath $(VENV))

.PHONY: stack demo test lint typecheck tiny-models tiny-check

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

tiny-models: stack  ## retrain the tiny stand-ins into babelcap/stand_ins (about 15 min)
	$(VENV)/bin/babelcap tiny build

tiny-check: stack
	$(VENV)/bin/babelcap tiny check
