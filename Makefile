# make demo: the end-to-end demo. make test: the whole suite, lint, types and layers included.
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=
# The four distributions, installed editable from their folders; the SDK's extras name the others,
# which pip takes from these folders rather than from an index.
DISTRIBUTIONS := -e './sdk[all]' -e './middleware[bentoml]' -e './collector[postgres]' -e ./testkit

.PHONY: demo test browser promtool lint typecheck layers bench clean

$(STAMP): sdk/pyproject.toml middleware/pyproject.toml collector/pyproject.toml \
		testkit/pyproject.toml dev-requirements.txt
	@echo "Installing inferwatch and its dependencies into $(VENV) (the first time: a few minutes)..."
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(DISTRIBUTIONS) -r dev-requirements.txt
	touch $(STAMP)
	@echo "Installed."

demo: $(STAMP)
	$(PY) examples/demo.py $(ARGS)

# One worker a core, each taking whole files (their module fixtures start servers once).
test: $(STAMP) browser promtool lint typecheck layers
	$(PY) -m pytest -q -p no:cacheprovider -n auto --dist loadfile $(ARGS)

# The dashboard's browser tests drive Debian's Chromium; as root (CI) it is installed here,
# otherwise those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# The alerting rules of examples/grafana are checked and unit-tested with promtool, from Debian's
# prometheus package; as root (CI) it is installed here, otherwise those tests skip and say why.
promtool:
	@command -v promtool >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends prometheus >/dev/null)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# The import contracts of pyproject.toml's [tool.importlinter] (docs/architecture.md).
layers: $(STAMP)
	$(PY) -m inferwatch_testkit.layers

bench: $(STAMP)
	$(PY) bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .demo
