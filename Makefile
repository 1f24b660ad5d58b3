# Two commands for a fresh machine: `make demo` and `make test`.
# Both bootstrap .venv and the packages; `make test` also installs redis-server
# (Debian package) when it is missing.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
LLAMA_CPP_VERSION := 0.3.36
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_BF16=OFF

.PHONY: demo test lint install system-deps redis-server bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel setuptools
	# torch first and pinned: 2.13.0 is the CPU wheel; anything else pulls CUDA wheels.
	$(PY) -m pip install -q torch==2.13.0
	# llama.cpp builds from source (~10 min once, then pip's wheel cache). A build
	# tuned to the host CPU (the default) enables AMX/AVX-512 paths that segfault
	# on this VM kind; build for portable AVX2 instead.
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install -q 'llama-cpp-python[server]==$(LLAMA_CPP_VERSION)'
	$(PY) -m pip install -q -e '.[all,dev]'
	touch $@

install: system-deps $(STAMP)

# Spark needs a Java 17+ runtime.
system-deps:
	@command -v java >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q openjdk-17-jre-headless; }

redis-server:
	@command -v redis-server >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q redis-server; }

demo: install
	$(VENV)/bin/profile-features demo

test: install redis-server lint
	$(PY) -m pytest

# ruff settings live in pyproject.toml (lines <= 120).
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: install
	$(PY) benchmarks/embed_throughput.py

clean:
	rm -rf feature_repo/data .pytest_cache
