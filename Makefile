# Two commands for a fresh machine: `make demo` and `make test`.
# Both bootstrap .venv and the packages; `make test` also installs redis-server
# (Debian package) when it is missing.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q -c constraints.txt
DEMO_STAMP := $(VENV)/.demo-stamp
TEST_STAMP := $(VENV)/.test-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_BF16=OFF

.PHONY: chromium demo test lint install system-deps redis-server bench clean

# What the demo imports, and nothing else (no LLM, LightGBM or Redis packages).
$(DEMO_STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel setuptools
	# torch first, at the constrained CPU build: anything else pulls gigabytes of CUDA wheels.
	$(PIP) torch
	$(PIP) -e '.[demo]'
	touch $@

# Everything, for the tests. llama.cpp builds from source (~10 min once, then pip's wheel
# cache). A build tuned to the host CPU (the default) enables AMX/AVX-512 paths that
# segfault on this VM kind; build for portable AVX2 instead.
$(TEST_STAMP): $(DEMO_STAMP)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) 'llama-cpp-python[server]'
	$(PIP) -e '.[all,dev]'
	touch $@

install: system-deps $(TEST_STAMP)

# Spark needs a Java 17+ runtime.
system-deps:
	@command -v java >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q openjdk-17-jre-headless; }

redis-server:
	@command -v redis-server >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q redis-server; }

demo: system-deps $(DEMO_STAMP)
	$(VENV)/bin/profile-features demo

chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

test: install redis-server chromium lint
	$(PY) -m pytest

# ruff settings live in pyproject.toml (lines <= 120).
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: install
	$(PY) benchmarks/embed_throughput.py

clean:
	rm -rf feature_repo/data .pytest_cache
