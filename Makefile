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
# mkdocs-material's banner about its successor, printed on every build.
export NO_MKDOCS_2_WARNING := 1

.PHONY: install demo test lint clean-state

install: $(STAMP)

# One install command; constraints.txt pins torch to the CPU build that this machine holds
# (any other version resolves to a multi-GB CUDA build), constraints-lock.txt saves pip's
# resolver a long backtrack over every extra. tests/test_environment.py checks PDF parsing
# and sentence-transformers in one process, and that torchvision was never installed.
$(STAMP): pyproject.toml constraints.txt constraints-lock.txt
	python3 -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -c constraints-lock.txt -e ".[all,dev]"
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
	$(VENV)/bin/lint-imports
	$(PY) scripts/gen_config_docs.py --check
	$(VENV)/bin/mkdocs build --strict --quiet --site-dir site

# The Milvus server the tests start listens on all interfaces, so the suite runs in a
# private network namespace (loopback only) where one can be made; elsewhere the
# server tests skip and say why.
test: lint
	@if unshare -n true 2>/dev/null && command -v ip >/dev/null; then \
		HEADWATER_TEST_MILVUS_SERVER=start unshare -n sh -c 'ip link set lo up && exec $(VENV)/bin/pytest'; \
	else \
		echo "no private network namespace here: Milvus server tests will skip"; \
		$(VENV)/bin/pytest; \
	fi

clean-state:
	rm -rf .headwater
