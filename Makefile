# vidssl: the quick start is `make demo` then `make test` (see README.md).
# Everything runs in the project's virtual environment (VENV, made by tools/setup.sh from
# PYTHON): the system Python of Debian 12 / Ubuntu 23.04+ refuses pip installs (PEP 668).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
DEMO_ARGS ?=
export PYTHON VENV

.PHONY: install demo test test-slow test-quickstart bench lock clean

# System packages (FFmpeg, python3-venv) when missing, the environment, vidssl at the tested
# versions (requirements/lock.txt). Re-runs when these files change; a no-op otherwise.
install: $(VENV)/.vidssl-setup
$(VENV)/.vidssl-setup: pyproject.toml setup.py requirements/lock.txt tools/setup.sh
	bash tools/setup.sh

demo: install
	$(PY) -m vidssl demo $(DEMO_ARGS)

test: install
	PYTHON=$(PY) bash tools/run_tests.sh -m "not slow" $(PYTEST_ARGS)

test-slow: install
	PYTHON=$(PY) bash tools/run_tests.sh -m "slow" $(PYTEST_ARGS)

# The quick start as a stranger meets it: a clean clone, Debian's python3 first on the PATH,
# no /sbin, an empty HOME (tools/check_quickstart.sh; reuses this checkout's environment).
test-quickstart: install
	bash tools/check_quickstart.sh

bench: install
	$(PY) -m vidssl bench decode

# Re-resolve requirements/lock.txt (needs uv); then `rm -rf $(VENV)` and `make test`.
lock:
	bash tools/lock.sh

clean:
	rm -rf .pytest_cache build dist *.egg-info
