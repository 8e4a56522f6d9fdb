# Developer entry points. The two that matter:
#   make demo   run the example project at http://127.0.0.1:8000/admin/ (admin / admin)
#   make test   run the test suite on SQLite
# Every target creates .venv on first use and reinstalls only when pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help demo test screenshots test-all lint format docs openapi checks clean

help:  ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

demo:  ## Run the example project (dev server on 127.0.0.1:8000, user admin / admin).
	@scripts/ensure-venv.sh $(VENV) $(PYTHON) dev
	@VENV=$(VENV) scripts/demo.sh

# DATABASE_URL is unset so `make test` means SQLite even in a shell set up for another database.
test:  ## Run the tests on SQLite; pass pytest options as ARGS="-k admin".
	@scripts/ensure-venv.sh $(VENV) $(PYTHON) dev,postgres,celerybeat
	@scripts/ensure-chromium.sh
	@env -u DATABASE_URL scripts/pytest.sh $(VENV) $(ARGS)

screenshots:  ## Take the docs' admin screenshots (docs/_static/screenshots) with the browser tests.
	@scripts/ensure-venv.sh $(VENV) $(PYTHON) dev,postgres,celerybeat
	@scripts/ensure-chromium.sh
	@mkdir -p docs/_static/screenshots
	@env -u DATABASE_URL DTS_SCREENSHOTS=docs/_static/screenshots scripts/pytest.sh $(VENV) -q tests/test_admin_browser.py tests/test_editor_browser.py tests/test_dashboard_browser.py \
		tests/test_operating_browser.py

test-all:  ## Run the CI matrix locally: Django 5.2 and 6.1 on SQLite, PostgreSQL and MariaDB, lint, docs.
	@.ci/run

lint:  ## ruff check, ruff format --check, mypy.
	@scripts/ensure-venv.sh $(VENV) $(PYTHON) dev,postgres
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy django_tasks_sched tests benchmarks scripts

format:  ## Apply ruff's fixes and formatting.
	@scripts/ensure-venv.sh $(VENV) $(PYTHON) dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# -E rebuilds every page, so a warning in a page unchanged since the last build still fails.
docs:  ## Build the HTML docs into docs/_build/html, warnings as errors.
	@scripts/ensure-venv.sh $(VENV) $(PYTHON) dev
	env -u DATABASE_URL $(BIN)/sphinx-build -E -W --keep-going -q -b html docs docs/_build/html

# tests/test_api_schema.py fails when the committed schema differs from what the code generates.
openapi:  ## Regenerate docs/openapi.json, the REST API's OpenAPI schema.
	@scripts/ensure-venv.sh $(VENV) $(PYTHON) dev
	env -u DATABASE_URL DJANGO_SETTINGS_MODULE=tests.settings $(BIN)/python -m django_tasks_sched.api.openapi > docs/openapi.json

# makemigrations --check fails when a model change lacks its migration.
checks:  ## manage.py check and makemigrations --check, for the test and example settings.
	@scripts/ensure-venv.sh $(VENV) $(PYTHON) dev
	env -u DATABASE_URL $(BIN)/python manage.py check --settings tests.settings
	env -u DATABASE_URL $(BIN)/python manage.py makemigrations --check --dry-run --settings tests.settings
	env -u DATABASE_URL $(BIN)/python manage.py check --settings example_project.settings
	env -u DATABASE_URL $(BIN)/python manage.py makemigrations --check --dry-run --settings example_project.settings

clean:  ## Remove build output and caches (keeps the virtualenvs and the demo database).
	rm -rf docs/_build .mypy_cache .ruff_cache .pytest_cache .hypothesis
