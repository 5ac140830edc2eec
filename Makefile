# `make demo` and `make test` create (or reuse) .venv, install what they need, and run.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
HEADWATER := $(VENV)/bin/headwater

export DO_NOT_TRACK := true
export UNSTRUCTURED_DISABLE_NOTICE := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo test lint clean-state

install: $(STAMP)

# torch goes first, alone and pinned: its CPU build is local; any other resolves to CUDA.
# unstructured[pdf] pulls torchvision, whose only build here breaks with the CPU torch
# and takes sentence-transformers down with it; only the hi_res PDF strategy (layout
# models from the hub, unavailable offline) would use it, so it is removed.
# tests/test_environment.py checks PDF parsing and sentence-transformers in one process.
$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[milvus,prefect,dev]"
	$(PIP) uninstall -q -y torchvision
	touch $(STAMP)

demo: install
	$(HEADWATER) sync
	$(HEADWATER) query "How many vacation days do I get per year?" -k 3
	$(HEADWATER) query "Do I need to keep receipts for expenses?" -k 3
	$(HEADWATER) query "Who do I escalate to when I am paged at night?" -k 3

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest

clean-state:
	rm -rf .headwater
