# The README's commands. `make setup` is idempotent; every other target runs it first.
SHELL := bash
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup setup-fleet demo test test-unit test-kernel test-fleet bench lint fmt stubtest wheel clean

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

# Unit tests (no privilege) and kernel tests (root; each skip states the reason probed from the kernel).
# The fleet tests (bpfman, a registry, Prometheus) need more tools: `make test-fleet`.
test: setup
	$(PY) -m pytest tests -m "not fleet" $(PYTEST_ARGS)

# docker-registry, prometheus, skopeo, umoci (Debian) and bpfman 0.6 (built once, cached in ~/.cache/pyaya).
setup-fleet: setup
	@bash scripts/setup-fleet.sh

# Templates packaged, pushed to a registry on 127.0.0.1, loaded by bpfman; a template scraped by Prometheus.
test-fleet: setup-fleet
	$(PY) -m pytest tests -m fleet $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-kernel: setup
	$(PY) -m pytest tests/kernel $(PYTEST_ARGS)

# Figures and ratios against a baseline measured in the same run (root; see each script's docstring).
bench: setup
	$(PY) benchmarks/kernel_offsets.py
	$(PY) benchmarks/startup.py
	$(PY) benchmarks/map_batch.py
	$(PY) benchmarks/stream_throughput.py
	$(PY) benchmarks/decode.py
	$(PY) benchmarks/encode.py

lint: setup
	$(VENV)/bin/ruff check python tests benchmarks
	$(VENV)/bin/ruff format --check python tests benchmarks
	bash scripts/lint-templates.sh
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest pyaya._native
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	$(VENV)/bin/ruff format python tests benchmarks
	$(VENV)/bin/ruff check --fix python tests benchmarks
	cargo fmt --all

wheel: setup
	$(VENV)/bin/maturin build --release --out dist

clean:
	rm -rf target dist $(VENV) .mypy_cache .ruff_cache .pytest_cache
