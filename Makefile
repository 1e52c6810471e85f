# The two commands of the README: `make demo` and `make test`. Both build the
# virtual environment first, so a fresh clone needs nothing but Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
QUICK  ?=
# Test processes of `make test` (pytest-xdist); 0 runs the suite in one process.
TEST_WORKERS ?= 2

.PHONY: demo test lint typecheck pytest bench chaos clean venv graphiql-assets system-tools schema-tools

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@$(MAKE) --no-print-directory graphiql-assets
	@$(MAKE) --no-print-directory schema-tools
	@touch $(STAMP)

# GraphiQL's page is served with its scripts from this machine, not from a CDN:
# the npm packages are installed into the virtualenv. Without npm the API still
# serves GraphQL, and its GraphiQL page says how to get the assets.
# The packages and versions are those Strawberry's GraphiQL page names.
graphiql-assets:
	@if command -v npm >/dev/null 2>&1; then \
		npm install --silent --no-audit --no-fund --no-save --prefix $(VENV)/graphiql \
			$$($(BIN)/python -m graph.graphiql) \
		|| echo "warning: npm could not install GraphiQL's assets; GraphiQL will not load"; \
	else echo "note: npm not found; GraphiQL's assets are not installed (GraphQL itself works)"; fi

# wrk (the load of `make bench`) and Chromium (the GraphiQL browser tests) are
# system packages: installed here with apt-get when running as root where apt-get
# exists (Debian, Ubuntu); elsewhere a note says what is missing and what follows
# (the benchmarks fall back to a slower client whose ratios are kinder, and the
# browser tests skip). Nothing is done when both are there.
system-tools:
	@missing=""; \
	command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
		|| missing="$$missing chromium"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing$$missing with apt-get ..."; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null; } \
		|| echo "note: apt-get could not install$$missing"; \
	else \
		echo "note:$$missing not installed (installing needs root and apt-get; install it yourself):"; \
		echo "  without wrk, make bench uses a slower load client; without chromium, the browser tests skip"; \
	fi

# The tools frontends run on graph/schema.graphql, for the tests that run them too
# (tests/unit/test_schema_tools.py): the schema linter, GraphQL Code Generator and
# TypeScript, installed from the npm registry into the virtualenv at pinned versions.
# Without npm those tests are skipped, saying why.
SCHEMA_TOOLS := graphql@16.11.0 graphql-schema-linter@3.0.1 @graphql-codegen/cli@7.4.3 \
	@graphql-codegen/typescript@6.1.0 @graphql-codegen/typescript-operations@6.1.9 \
	typescript@5.9.3

schema-tools:
	@if command -v npm >/dev/null 2>&1; then \
		npm install --silent --no-audit --no-fund --no-save --prefix $(VENV)/schema-tools \
			$(SCHEMA_TOOLS) \
		|| echo "warning: npm could not install the schema tools; their tests will be skipped"; \
	else echo "note: npm not found; the schema linter and codegen tests will be skipped"; fi

demo: $(STAMP)
	$(BIN)/hl-analytics demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-tools
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

test: lint typecheck pytest

# The reliability scenarios at a higher intensity (more kills, longer outages, more
# faults), kept out of `make test`; each prints what it measured (`reliability:` lines).
chaos: $(STAMP)
	CHAOS=1 $(BIN)/pytest tests/reliability -s $(PYTEST_ARGS)

bench: $(STAMP) system-tools
	$(BIN)/python -m bench $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
