# The README's commands. `make setup` is idempotent; every other target runs it first.
SHELL := bash
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test test-rust test-unit test-kernel fuzz bench lint fmt stubtest wheel clean

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

# Rust unit tests (pyaya-core's readers, the guard's coverage), then unit tests (no privilege) and kernel tests (root;
# each skip states the reason probed from the kernel).
test: setup test-rust
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-rust:
	cargo test --workspace --quiet

test-unit: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-kernel: setup
	$(PY) -m pytest tests/kernel $(PYTEST_ARGS)

# Mutated objects, BTF and records through the parse, load (root) and decode paths; every input must work or raise
# a PyayaError in time. FUZZ_ARGS: fuzz/harness.py run's arguments, e.g. FUZZ_ARGS="parse --runs 1000000".
fuzz: setup
	@bash scripts/fuzz.sh

# Figures and ratios against a baseline measured in the same run (root; see each script's docstring).
bench: setup
	$(PY) benchmarks/kernel_offsets.py
	$(PY) benchmarks/startup.py
	$(PY) benchmarks/map_batch.py
	$(PY) benchmarks/stream_throughput.py
	$(PY) benchmarks/decode.py
	$(PY) benchmarks/encode.py

lint: setup
	$(VENV)/bin/ruff check python tests benchmarks fuzz
	$(VENV)/bin/ruff format --check python tests benchmarks fuzz
	bash scripts/lint-templates.sh
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest pyaya._native
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	$(VENV)/bin/ruff format python tests benchmarks fuzz
	$(VENV)/bin/ruff check --fix python tests benchmarks fuzz
	cargo fmt --all

wheel: setup
	$(VENV)/bin/maturin build --release --out dist

clean:
	rm -rf target dist $(VENV) .mypy_cache .ruff_cache .pytest_cache
