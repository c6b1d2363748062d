# The template repository: `make render` makes a project, `make test` runs the whole suite.
.DEFAULT_GOAL := help
VENV ?= .venv
OUT ?= build

.PHONY: help render test lint bench outdated clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-8s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

render: $(VENV)/.installed ## Render the default project into build/ (add OPTS="key=value ...")
	$(VENV)/bin/cookiecutter --no-input --overwrite-if-exists . -o $(OUT) $(OPTS)

test: $(VENV)/.installed ## Run the whole test suite (ARGS="-k ..." to narrow it)
	$(VENV)/bin/pytest $(ARGS)

lint: $(VENV)/.installed ## ruff on the template's own code (hooks, tests, bench, reliability, scripts)
	$(VENV)/bin/ruff check hooks tests bench reliability scripts local_extensions.py
	$(VENV)/bin/ruff format --check hooks tests bench reliability scripts local_extensions.py

bench: $(VENV)/.installed ## Benchmark the rendered app against a raw-ASGI floor (ARGS="--quick")
	$(VENV)/bin/python bench/run.py $(ARGS)

outdated: $(VENV)/.installed ## The rendered project's version bounds its newest releases are outside
	$(VENV)/bin/python scripts/outdated.py $(ARGS)

clean: ## Remove the venv and rendered output
	rm -rf $(VENV) $(OUT) .pytest_cache
