# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# What runs the dashboard (requirements.txt), and on top of it the test tools (requirements-dev.txt).
RUNTIME := $(VENV)/.installed-runtime
INSTALLED := $(VENV)/.installed

.PHONY: run test system-deps clean

$(RUNTIME): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(INSTALLED): $(RUNTIME) requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# Debian packages the tests drive: Chromium (browser tests), PostgreSQL and Redis servers, PHP and Node (sidecar clients).
system-deps:
	@scripts/system-deps.sh

# Local use: debug pages and the local SECRET_KEY (settings.py keeps DEBUG off unless set).
run: export DEBUG ?= true
run: $(RUNTIME)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	@scripts/run-local.sh

# axe-core for the browser tests' accessibility checks (package.json, pinned; no CDN at test time).
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --silent

test: $(INSTALLED) system-deps node_modules/.package-lock.json
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles test-artifacts node_modules
