# govern: every command a person types. `make run` and `make test` work on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv is bootstrapped from pip when missing; recursive expansion picks it up after bootstrap.
UV = $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN = $(UV) run --locked --no-sync

export GOV_HOST ?= 127.0.0.1
export GOV_PORT ?= 8000

.PHONY: help bootstrap system install run serve migrate test browser lint licenses format clean bench bench-training bench-serving bench-ood bench-explain bench-robustness bench-fairness bench-drift bench-rebuild bench-compliance bench-false-alarms bench-cli bench-predict bench-console bench-notices bench-experiments bench-lda bench-estimators reliability

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

bootstrap:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || \
		{ echo "uv not found: installing it with pip"; python3 -m pip install --quiet --disable-pip-version-check "uv>=0.5,<1"; }

install: bootstrap system ## Install exactly what uv.lock pins into .venv
	$(UV) sync --locked

# Notices are rendered to PDF by WeasyPrint, which needs Pango and a font; installed here when
# missing (as root). Without them a PDF is refused with 503, saying why; HTML notices still work.
system:
	@{ ldconfig -p 2>/dev/null | grep -q libpangoft2-1.0 && fc-list 2>/dev/null | grep -qi dejavu; } || { \
		echo "Pango or the DejaVu fonts not found: installing them with apt-get"; \
		apt-get install -y -q libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core fontconfig >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null && apt-get install -y -q libpango-1.0-0 libpangoft2-1.0-0 \
		fonts-dejavu-core fontconfig >/dev/null; } || \
		echo "could not install Pango: notices will be served as HTML only"; }

migrate: install ## Bring the database (GOV_DATABASE_URL, default var/govern.db) to head
	$(RUN) govern migrate

run: migrate ## Install, migrate, set up the demo once, and serve on $GOV_HOST:$GOV_PORT
	$(RUN) govern demo
	$(RUN) govern serve

# The suite runs in one process per CPU (pytest-xdist); PYTEST_WORKERS=0 runs it in this one.
PYTEST_WORKERS ?= auto
test: install browser ## Run the whole suite (PostgreSQL too when GOV_TEST_DATABASE_URL is set)
	$(RUN) pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# The console's browser tests drive Debian's Chromium, and the notice tests read PDFs with
# poppler's pdftotext; installed here when missing (as root).
browser:
	@{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 && \
		command -v pdftotext >/dev/null 2>&1; } || { \
		echo "chromium, chromedriver or pdftotext not found: installing them with apt-get"; \
		apt-get install -y -q chromium chromium-driver poppler-utils >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null && \
		apt-get install -y -q chromium chromium-driver poppler-utils >/dev/null; } || \
		echo "could not install them: the browser and PDF tests will be skipped"; }

RELIABILITY_PROFILE ?= full
RELIABILITY_OUT ?= RELIABILITY.md
reliability: install ## Crash, outage, concurrency, fuzzing, hostile-input, tamper and attack drills; writes RELIABILITY.md
	$(RUN) python -m reliability --profile $(RELIABILITY_PROFILE) --out $(RELIABILITY_OUT)

licenses: install ## Every installed package's licence from its metadata; fails on one not in licenses.toml
	$(RUN) python -m core.licenses --allowlist licenses.toml

lint: install ## ruff check, ruff format --check, mypy
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy .

format: install ## Apply ruff's fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

bench: bench-training bench-serving bench-ood bench-explain bench-robustness bench-fairness bench-drift bench-rebuild bench-compliance bench-false-alarms bench-cli bench-predict bench-console bench-notices bench-experiments bench-lda bench-estimators ## Run every benchmark (figures go in BENCHMARKS.md)

bench-training: install ## Training run with lineage capture vs bare Pipeline.fit
	$(RUN) python -m bench.training_overhead --rows 20000 --repeats 5
	$(RUN) python -m bench.training_overhead --rows 5000 --repeats 5

bench-explain: install ## Each explain endpoint over 200 logged decisions; SHAP vs shap direct
	$(RUN) python -m bench.explain --decisions 200

bench-robustness: install ## Robustness endpoint p50/p99 over 30 logged decisions
	$(RUN) python -m bench.robustness --decisions 30

bench-ood: install ## Predict with out-of-distribution scoring on vs off, same run
	$(RUN) python -m bench.ood

bench-rebuild: install ## Rebuild of the demo model vs training it again, same process
	$(RUN) python -m bench.rebuild --repeats 5

bench-compliance: install ## Decision lookups, month pages and CSV export over 1,000,000 decisions
	$(RUN) python -m bench.compliance --decisions 1000000

bench-drift: install ## Drift report over 1,000,000 decisions vs pandas + scipy
	$(RUN) python -m bench.drift --decisions 1000000

bench-fairness: install ## Fairness report over 1,000,000 decisions vs pandas + fairlearn
	$(RUN) python -m bench.fairness --decisions 1000000

bench-false-alarms: install ## How often the drift and fairness verdicts fire on same-distribution samples (200 seeds)
	$(RUN) python -m bench.false_alarms_drift --seeds 200
	$(RUN) python -m bench.false_alarms_fairness --seeds 200

bench-predict: install ## Predict under wrk, server and load on their own cores: CPU per decision vs scoring, fixed rates, MLServer, 2 workers
	@command -v wrk >/dev/null 2>&1 || { echo "wrk not found: installing it with apt-get"; \
		apt-get install -y -q wrk >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }; }
	$(RUN) python -m bench.predict_load --seconds 10 --rates 50,60,100,150,200 --workers 1,2 --profile var/bench-profile

bench-console: install ## Console pages vs the JSON API over 1,000,000 decisions on PostgreSQL
	$(RUN) python -m bench.console --decisions 1000000 --no-sqlite

bench-notices: install ## Adverse-action notices (HTML and PDF) vs the reasons call, 200 denials
	$(RUN) python -m bench.notices --decisions 200

bench-experiments: install ## Experiment report over 1,000,000 decisions (and 700,000 shadow records) vs pandas
	$(RUN) python -m bench.experiments --decisions 1000000

bench-lda: install ## LDA search of 50 candidates on 20,000 rows, in process and on a 2-worker Ray cluster
	$(RUN) python -m bench.lda --rows 20000

bench-estimators: install ## Fit and one-row scoring of each estimator, govern against the bare library
	$(RUN) python -m bench.estimators --train 5000 --rows 2000

bench-cli: install ## govern --help and govern models list start-up vs python -c pass
	$(RUN) python -m bench.cli_startup --runs 10
	$(RUN) python -m bench.cli_startup --runs 10 --no-bytecode

bench-serving: install ## govern predict (SQLite, PostgreSQL) vs MLServer 1.7 vs bare sklearn
	$(RUN) python -m bench.serving --seconds 15

clean: ## Remove the local database, artifacts and caches (var/)
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
