# Every target installs what it needs first, from the lock file, into .venv.
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8000
GRACEFUL_TIMEOUT ?= 20
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export LITESTAR_APP := app.main:create_app
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install install-bench run migrate test lint types contracts alerts pytest openapi worker-help worker scheduler clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

install: $(UV)
	$(UV) sync --locked --python $(PYTHON) --quiet

# The benchmarks' extras too (the FastAPI peer of bench/http.py, py-spy); `make install` removes them again.
install-bench: $(UV)
	$(UV) sync --locked --group bench --python $(PYTHON) --quiet

migrate: install
	$(BIN)/litestar database upgrade --no-prompt

run: migrate
	$(BIN)/uvicorn app.main:create_app --factory --host $(HOST) --port $(PORT) \
		--timeout-graceful-shutdown $(GRACEFUL_TIMEOUT) --no-access-log --ws-per-message-deflate false

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: install
	$(BIN)/mypy

contracts: install
	$(BIN)/lint-imports

pytest: install
	$(BIN)/pytest

test: lint types contracts alerts pytest

# Prometheus alert rules (deploy/prometheus): syntax, their promtool unit tests, the compose stack's config.
# promtool comes from Debian's `prometheus` package (.ci/run installs it); CI=true requires it.
PROMTOOL ?= promtool
alerts:
	@if command -v $(PROMTOOL) >/dev/null 2>&1; then \
		$(PROMTOOL) check rules deploy/prometheus/alerts.yml && \
		$(PROMTOOL) test rules deploy/prometheus/alerts_test.yml && \
		$(PROMTOOL) check config deploy/prometheus/prometheus.yml; \
	elif [ "$$CI" = "true" ]; then \
		echo "promtool is missing (apt-get install -y prometheus): CI=true needs the alert rule tests" >&2; exit 1; \
	else \
		echo "promtool is missing (apt-get install -y prometheus): alert rule tests SKIPPED"; \
	fi

# Periodic jobs with Redis (REDIS_URL set): run one scheduler (or more) and any number of workers.
JOBS_WAIT_SECONDS ?= 20
worker: install
	$(BIN)/taskiq worker app.composition:worker_broker --workers 1 --no-configure-logging \
		--wait-tasks-timeout $(JOBS_WAIT_SECONDS) --shutdown-timeout 30

scheduler: install
	$(BIN)/taskiq scheduler app.composition:job_scheduler --no-configure-logging

openapi: install
	$(BIN)/python -m app.openapi_export openapi.json

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache
