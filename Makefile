# Two commands: `make run` serves the service on http://127.0.0.1:5000; `make test` runs the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTANCE := $(CURDIR)/instance

.PHONY: run test install install-test translations extract-messages bench bench-crypto bench-audit bench-export lint clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required")'
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { echo "Python's venv module is missing: on Debian or Ubuntu, install it with: apt-get install python3.11-venv (or python3-venv)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed translations

install-test: $(VENV)/.installed-test translations

translations: $(VENV)/.installed
	$(BIN)/pybabel -q compile -d intake/translations

extract-messages: $(VENV)/.installed
	$(BIN)/pybabel -q extract -F babel.cfg --no-location --sort-output -k _l -o intake/translations/messages.pot intake config
	$(BIN)/pybabel -q update -N --no-fuzzy-matching -i intake/translations/messages.pot -d intake/translations

# Development defaults for a first run on one machine; set INTAKE_* variables yourself to override them.
run: export INTAKE_ENV ?= development
run: export INTAKE_INSTANCE_PATH ?= $(INSTANCE)
ifeq ($(INTAKE_KEYRING_PASSPHRASE)$(INTAKE_KEYRING_PASSPHRASE_FILE),)
run: export INTAKE_KEYRING_PASSPHRASE_FILE = $(or $(INTAKE_INSTANCE_PATH),$(INSTANCE))/keyring.passphrase
endif
run: install
	@mkdir -p "$$INTAKE_INSTANCE_PATH" && chmod 700 "$$INTAKE_INSTANCE_PATH"
	@$(BIN)/intake keys init --create-passphrase-file
	@$(BIN)/intake db upgrade
	@$(BIN)/intake setup-link --if-no-accounts
	@echo "Serving on http://127.0.0.1:5000 (Ctrl-C stops it). Check the set-up with: $(BIN)/intake doctor"
	$(BIN)/gunicorn --bind 127.0.0.1:5000 --workers 2 --preload app:app

test: install-test
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/mypy

# Every benchmark suite on PostgreSQL (bench/all.py): the HTTP scenarios against a bare Flask control (wrk +
# gunicorn; the intake scenario on SQLite too), then crypto, audit log, case-file export and mixed load, each even
# if an earlier one failed; then one summary table with the machine's description in
# bench/results/summary-<UTC timestamp>.md and .json. The exit status is the first failing suite's.
# e.g. make bench BENCH_ARGS="--quick" or BENCH_ARGS="--only crypto --only audit". make chaos stays separate.
bench: $(VENV)/.installed-bench translations
	command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	$(BIN)/python -m bench.all $(BENCH_ARGS)

# Only the in-process crypto benchmarks (sealed fields, attachment streams, rewrapping data keys).
bench-crypto: install
	$(BIN)/python -m bench.crypto $(BENCH_CRYPTO_ARGS)

# Only the audit log benchmarks (verifying a million events; appends by 32 writers).
bench-audit: install
	$(BIN)/python -m bench.audit $(BENCH_AUDIT_ARGS)

# Only the case-file export benchmark (10,000 records with 1 GiB of attachments against raw age encryption).
bench-export: install
	$(BIN)/python -m bench.export $(BENCH_EXPORT_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Faults under load on PostgreSQL (bench/chaos.py): a gunicorn worker killed, PostgreSQL stopped at once and started
# again, the scratch data folder's disk full; then checks that no acknowledged submission was lost or duplicated and
# that the audit log verifies. Needs root (pg_ctlcluster, mount -t tmpfs); e.g. make chaos CHAOS_ARGS="--duration 120"
.PHONY: chaos
chaos: install
	$(BIN)/python -m bench.chaos --db postgresql $(CHAOS_ARGS)

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@

# Mixed load through locust (bench/mixed.py): interviewers, reviewers and a legal officer at once against gunicorn
# with Redis; e.g. make bench-mixed BENCH_MIXED_ARGS="--db sqlite --records 2000 --duration 15"
.PHONY: bench-mixed
bench-mixed: $(VENV)/.installed-bench translations
	$(BIN)/python -m bench.mixed $(BENCH_MIXED_ARGS)
