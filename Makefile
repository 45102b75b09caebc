# Two commands on a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench bench-smoke services superuser lint clean

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

run: $(STAMP)  ## everything: embedded Postgres+pgvector and Redis, migrations, demo data, ASGI, Celery worker and beat
	$(PY) -m config.stack run

test: $(STAMP)  ## the whole suite against embedded Postgres+pgvector and Redis
	$(PY) -m config.stack test $(ARGS)

bench: $(STAMP)  ## the benchmarks in bench/, each prints its table
	$(PY) -m config.stack exec -- $(PY) bench/retrieval.py $(ARGS)
	$(PY) -m config.stack exec -- $(PY) bench/serving.py $(ARGS)
	$(PY) -m config.stack exec -- $(PY) bench/cache.py $(ARGS)
	$(PY) -m config.stack exec -- $(PY) bench/context.py $(ARGS)
	$(PY) -m config.stack exec -- $(PY) bench/calibration.py $(ARGS)
	$(PY) -m config.stack exec -- $(PY) bench/learning.py $(ARGS)
	$(PY) -m config.stack exec -- $(PY) bench/dashboard.py $(ARGS)
	$(PY) -m config.stack exec -- $(PY) bench/drift.py $(ARGS)
	$(PY) -m config.stack exec -- $(PY) bench/offline_answers.py $(ARGS)
	$(PY) -m config.stack exec -- $(PY) bench/conversation.py $(ARGS)
	$(PY) bench/safety.py $(ARGS)
	$(PY) bench/experiments.py $(ARGS)

bench-smoke: $(STAMP)  ## every benchmark at --smoke sizes to its RESULT line: they still run (CI runs it after the suite)
	$(PY) -m config.stack test bench/test_smoke.py -q

services: $(STAMP)  ## only the embedded Postgres and Redis, for a shell of your own
	$(PY) -m config.stack services

superuser: $(STAMP)  ## the first superuser (outside demo mode nobody else can sign in), on the embedded database
	$(PY) -m config.stack superuser

lint: $(STAMP)  ## ruff over everything; mypy over the apps and config (settings in pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy chat knowledge experiments review monitoring config

clean:
	rm -rf var staticfiles
