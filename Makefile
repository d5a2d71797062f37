# The README's commands. `make setup` is idempotent; every other target runs it first.
SHELL := bash
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Template projects built by the kernel tests, kept between runs so that the VM runs find them built.
export PYAYA_TEST_BUILDS ?= $(CURDIR)/target/test-builds
# Kernel parameters of the VM runs: the BPF LSM on (5.10 does not enable it by default; unknown names are ignored).
VM_APPEND ?= lsm=lockdown,capability,landlock,yama,apparmor,bpf
VM_ARGS ?=

.PHONY: setup setup-fleet demo test test-rust test-unit test-kernel test-vm test-fleet matrix fuzz bench lint fmt stubtest wheel clean

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

# Rust unit tests (pyaya-core's readers, the guard's coverage), unit tests (no privilege) and kernel tests (root;
# each skip states the reason probed from the kernel), then the kernel tests this host cannot run, in VMs
# (test-vm). The fleet tests (bpfman, a registry, Prometheus) need more tools: `make test-fleet`.
test: setup test-rust
	$(PY) -m pytest tests -m "not fleet" $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-vm

# In QEMU guests (pyaya test): on 6.12 with the BPF LSM, every test that needs a kernel feature (kprobes,
# fentry/fexit, LSM, extensions...) and every test of the error where it is missing; on 5.10 and 6.1 the smoke
# subset. One guest at a time.
test-vm: setup
	$(VENV)/bin/pyaya build crates/pyaya-fixtures > /dev/null
	$(VENV)/bin/pyaya test . --kernel 6.12 --append '$(VM_APPEND)' $(VM_ARGS) -- tests/kernel -m 'needs or lacks' -ra
	$(VENV)/bin/pyaya test . --kernel 5.10 --kernel 6.1 --append '$(VM_APPEND)' $(VM_ARGS) -- tests/kernel -m smoke -ra

# docker-registry, prometheus, skopeo, umoci (Debian) and bpfman 0.6 (built once, cached in ~/.cache/pyaya).
setup-fleet: setup
	@bash scripts/setup-fleet.sh

# Templates packaged, pushed to a registry on 127.0.0.1, loaded by bpfman; a template scraped by Prometheus.
test-fleet: setup-fleet
	$(PY) -m pytest tests -m fleet $(PYTEST_ARGS)

test-rust:
	cargo test --workspace --quiet

test-unit: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-kernel: setup
	$(PY) -m pytest tests/kernel $(PYTEST_ARGS)

# The templates on every kernel (the host, then VMs), and their READMEs' and the guide's "Tested on" written from it.
matrix: setup
	mkdir -p target/matrix
	$(VENV)/bin/pyaya build crates/pyaya-fixtures > /dev/null
	-$(PY) -m pytest tests/kernel/test_templates.py -q -p no:cacheprovider --junitxml=target/matrix/host.xml
	-$(VENV)/bin/pyaya test . --kernel 6.12 --append '$(VM_APPEND)' --json -q $(VM_ARGS) -- \
	    tests/kernel/test_templates.py > target/matrix/6.12.json
	-$(VENV)/bin/pyaya test . --kernel 5.10 --kernel 6.1 --append '$(VM_APPEND)' --json -q $(VM_ARGS) -- \
	    tests/kernel/test_templates.py -m smoke > target/matrix/older.json
	$(PY) scripts/tested-kernels.py --host target/matrix/host.xml target/matrix/6.12.json target/matrix/older.json
# Mutated objects, BTF and records through the parse, load (root) and decode paths; every input must work or raise
# a PyayaError in time. FUZZ_ARGS: fuzz/harness.py run's arguments, e.g. FUZZ_ARGS="parse --runs 1000000".
fuzz: setup
	@bash scripts/fuzz.sh

# Figures and ratios against a baseline measured in the same run (root; see each script's docstring).
bench: setup
	$(PY) benchmarks/cli_startup.py
	$(PY) benchmarks/kernel_offsets.py
	$(PY) benchmarks/startup.py
	$(PY) benchmarks/run_handoff.py
	$(PY) benchmarks/map_batch.py
	$(PY) benchmarks/stream_throughput.py
	$(PY) benchmarks/loss.py
	$(PY) benchmarks/watch_gap.py
	$(PY) benchmarks/decode.py
	$(PY) benchmarks/encode.py
	$(PY) benchmarks/object_pass.py
	$(PY) benchmarks/first_build.py

lint: setup
	$(VENV)/bin/ruff check python tests benchmarks fuzz
	$(VENV)/bin/ruff format --check python tests benchmarks fuzz
	bash scripts/lint-templates.sh
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest pyaya._native
	$(PY) scripts/rust-module-cycles.py crates/pyaya-native/src crates/pyaya-core/src crates/pyaya-guard/src crates/pyaya-usdt/src crates/pyaya-fields/src
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
