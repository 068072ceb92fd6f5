# Two commands do all the set-up on a fresh machine with Python 3.11 and make:
#   make run   - create the virtualenv, install, serve on 127.0.0.1:8080 from ./qahub.toml
#   make test  - install the test dependencies and run the whole suite
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test bench bench-scale install clean help binary browser postgresql fuzz

help:
	@echo "make run    serve on 127.0.0.1:8080 (first start prints the admin key once)"
	@echo "make test   run the test suite"
	@echo "make bench  run the benchmarks (they print figures)"
	@echo "make fuzz   schemathesis over every route for about 4 minutes (FUZZ_SECONDS=240)"
	@echo "make bench-scale  the same questions on a 10,000,000-result database (slow)"
	@echo "make binary build dist/qahub, the one-file executable (packaging/)"

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or: make PYTHON=python3 ...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/qahub serve --config qahub.toml

# The dashboard's browser tests drive Debian's Chromium (never a downloaded browser). Install it
# when it is missing and we may (root with apt-get, as on CI); otherwise those tests are skipped
# and say why.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -q && apt-get install -y -q chromium; \
	  else \
	    echo "note: /usr/bin/chromium is missing: the browser tests will be skipped (apt-get install chromium)"; \
	  fi; \
	fi

# The PostgreSQL tests start throw-away clusters (tests/pgcluster.py) from the server binaries of
# the distribution's package; installed the same way when missing, otherwise those tests skip.
postgresql:
	@if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -q && apt-get install -y -q postgresql; \
	  else \
	    echo "note: PostgreSQL's server binaries are missing: its tests will be skipped (apt-get install postgresql)"; \
	  fi; \
	fi

# Two test processes (pytest-xdist), one per core: the storage, API and end-to-end tests run on
# both engines (tests/conftest.py), and each process starts its own PostgreSQL cluster.
test: $(STAMP) browser postgresql
	$(BIN)/python -m pytest -q -n 2

# The API fuzzing of tests/test_proof_fuzz.py for a fixed time instead of a fixed number of
# examples (the default test run keeps it under a minute).
FUZZ_SECONDS ?= 240
fuzz: $(STAMP)
	QAHUB_FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_proof_fuzz.py -k every_route

bench: $(STAMP)
	$(BIN)/python bench/bench_ingest.py
	$(BIN)/python bench/bench_identity.py
	$(BIN)/python bench/bench_triage.py
	$(BIN)/python bench/bench_health.py
	$(BIN)/python bench/bench_load.py
	$(BIN)/python bench/bench_export.py
	$(BIN)/python bench/bench_split.py
	$(BIN)/python bench/bench_sign_in.py
	$(BIN)/python bench/bench_poll.py

# Builds a 10,000,000-result database first (a few minutes, ~2 GB in a temporary folder).
bench-scale: $(STAMP)
	$(BIN)/python bench/bench_scale.py

# PyInstaller (and the hooks it uses) build the executable; they are build tools, not
# dependencies of the package, so they are pinned here rather than in pyproject.toml.
PYINSTALLER := pyinstaller==6.22.3 pyinstaller-hooks-contrib==2026.9

binary: $(STAMP)
	$(BIN)/python -m pip install --quiet $(PYINSTALLER)
	PYTHON=$(BIN)/python packaging/build.sh

clean:
	rm -rf $(VENV) build dist *.egg-info
