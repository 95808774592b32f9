# Two commands on a fresh clone: `make demo` and `make test`. Each makes .venv if missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast test-scaleout test-slow bench lint down clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/handrail demo

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -m "unit or workflow"

# Two worker processes on one PostgreSQL ledger (about a minute); .ci/run runs it after `make test`.
test-scaleout: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -p no:cacheprovider -m scaleout

# The slow tier (two to four minutes; .ci/run runs it after `make test`): the scale-out proof and
# fault tests that wait out real heartbeat and retry timeouts after a SIGKILL.
test-slow: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -p no:cacheprovider -m "scaleout or slow"

# The intel bench compares against FireHOL's iprange (Debian package); it reports null without it.
bench: $(STAMP)
	command -v iprange >/dev/null || (command -v apt-get >/dev/null && apt-get install -y -qq iprange >/dev/null) || true
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/handrail bench runbooks --runs 200 --json
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/handrail bench runbooks --runs 200 --workers 2 --ledger embedded --json
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/handrail bench signatures --json
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/handrail bench intel --feeds 5 --indicators 1000000 --json
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/handrail bench baseline --rows 1000000 --json
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/handrail bench chaos --runs 50 --json
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/handrail bench chaos --runs 50 --mode guarded --json
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/handrail bench chaos --runs 50 --mode guarded --ledger postgresql --json
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/handrail bench parse --json

lint: $(STAMP)
	$(BIN)/ruff check .

down: $(STAMP)
	$(BIN)/handrail down

clean:
	rm -rf $(VENV) .handrail *.egg-info
