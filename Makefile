# make demo: the end-to-end demo. make test: the whole suite, lint and types included.
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: demo test browser lint typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py $(ARGS)

test: $(STAMP) browser lint typecheck
	$(PY) -m pytest -q -p no:cacheprovider $(ARGS)

# The dashboard's browser tests drive Debian's Chromium; as root (CI) it is installed here,
# otherwise those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mypy cannot follow setuptools' renamed folders (sdk/ -> inferwatch), so it checks a tree of
# links laid out as the installed package is.
typecheck: $(STAMP)
	$(PY) tests/typecheck_tree.py .typecheck
	cd .typecheck && ../$(VENV)/bin/mypy --config-file ../pyproject.toml -p inferwatch

bench: $(STAMP)
	$(PY) bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) .typecheck .pytest_cache .mypy_cache .ruff_cache .demo
