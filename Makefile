# vidssl: the quick start is `make demo` then `make test` (see README.md).
PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: install demo test test-slow bench clean

# Installs system FFmpeg (for torchcodec) and vidssl with its test/benchmark extras.
# Re-runs when pyproject.toml or the setup script change; cheap when nothing is missing.
install: .install.stamp
.install.stamp: pyproject.toml tools/setup.sh
	bash tools/setup.sh
	@touch $@

demo: install
	$(PYTHON) -m vidssl demo

test: install
	bash tools/run_tests.sh -m "not slow" $(PYTEST_ARGS)

test-slow: install
	bash tools/run_tests.sh -m "slow" $(PYTEST_ARGS)

bench: install
	$(PYTHON) -m vidssl bench decode

clean:
	rm -rf .install.stamp .pytest_cache build *.egg-info
