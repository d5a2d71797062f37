#!/usr/bin/env bash
# Sets up a pyaya checkout on Debian 12 (or any apt system with the same packages), idempotently:
#   1. Debian's rustc-web/cargo-web with prebuilt core for bpfel-unknown-none, LLVM 22 for bpf-linker, QEMU and
#      busybox-static for the VM kernel matrix
#   2. bpf-linker built once against that LLVM, cached, and linked into /usr/local/bin
#   3. bpffs and tracefs mounted when absent
#   4. .venv with pyaya installed from source (rebuilt only when the Rust sources change)
# A second run does nothing slow. Other distributions: see README.md (rustup nightly + rust-src + bpf-linker).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${PYAYA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pyaya}
python=${PYTHON:-python3}
llvm_major=22
linker_version=0.13.0
apt_packages=(rustc-web cargo-web libstd-rust-web-dev-bpf "llvm-${llvm_major}-dev" build-essential pkg-config
              qemu-system-x86 busybox-static  # the VM kernel matrix (`pyaya test`, `make test`)
              systemtap-sdt-dev               # <sys/sdt.h>: the USDT tests build probes with it
              bpftool                         # libbpf's loader: the tests check every template's object with it
              "clang-${llvm_major}" libbpf-dev)  # C objects as libbpf users build them (tests/kernel/_c_objects.py)

say() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        die "this step needs root: $*"; fi
}

# -- 1. system packages ---------------------------------------------------------------------------------------------
missing=()
for package in "${apt_packages[@]}"; do
    [[ $(dpkg-query -W -f='${Status}' "$package" 2>/dev/null) == *"install ok installed"* ]] || missing+=("$package")
done
# `make lint` needs clippy and rustfmt; rustup users have them, Debian's rustc-web has them as separate packages.
cargo clippy --version >/dev/null 2>&1 || missing+=(rust-web-clippy)
cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt-web)
if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
    missing+=(python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "no apt-get: install ${missing[*]} by hand, or follow README.md's rustup route"
    say "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
    say "system packages present"
fi
[ -d /usr/lib/rustlib/bpfel-unknown-none ] || die "libstd-rust-web-dev-bpf did not provide /usr/lib/rustlib/bpfel-unknown-none"

# -- 2. bpf-linker --------------------------------------------------------------------------------------------------
linker="$cache/bpf-linker-install/bin/bpf-linker"
linker_ok() {
    # Outputs captured first: `cmd | grep -q` under pipefail fails when grep exits before cmd has written all
    # (SIGPIPE), which made a working linker look broken now and then.
    [ -x "$linker" ] || return 1
    local version libraries
    version=$("$linker" --version 2>/dev/null) || return 1
    libraries=$(ldd "$linker" 2>/dev/null) || return 1
    [[ $version == *"$linker_version"* && $libraries == *"libLLVM.so.${llvm_major}"* ]]
}
if linker_ok; then
    say "bpf-linker $linker_version (LLVM $llvm_major) cached at $linker"
else
    say "building bpf-linker $linker_version against LLVM $llvm_major (once; about a minute)"
    mkdir -p "$cache"
    # Debian's cargo, so the build does not depend on a rustup toolchain being present.
    LLVM_PREFIX="/usr/lib/llvm-${llvm_major}" LLVM_SYS_221_PREFIX="/usr/lib/llvm-${llvm_major}" \
        /usr/bin/cargo install --locked --quiet bpf-linker --version "$linker_version" \
        --no-default-features --features "llvm-${llvm_major}" --root "$cache/bpf-linker-install"
    linker_ok || die "bpf-linker was built but does not run against LLVM $llvm_major"
fi
if [ "$(id -u)" -eq 0 ] && [ "$(readlink -f /usr/local/bin/bpf-linker 2>/dev/null)" != "$linker" ]; then
    ln -sf "$linker" /usr/local/bin/bpf-linker
    say "linked /usr/local/bin/bpf-linker"
fi

# -- 3. kernel filesystems ------------------------------------------------------------------------------------------
if [ "$(id -u)" -eq 0 ]; then
    mountpoint -q /sys/fs/bpf || { mount -t bpf bpf /sys/fs/bpf && say "mounted bpffs at /sys/fs/bpf"; }
    mountpoint -q /sys/kernel/tracing || {
        mount -t tracefs nodev /sys/kernel/tracing && say "mounted tracefs at /sys/kernel/tracing"
    }
else
    say "not root: skipping bpffs/tracefs mounts (pyaya doctor says whether they are needed)"
fi

# -- 4. the virtualenv ----------------------------------------------------------------------------------------------
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv"
    "$python" -m venv "$venv"
fi
stamp="$venv/.pyaya-installed"
fingerprint=$(cd "$root" && cat pyproject.toml Cargo.toml Cargo.lock crates/pyaya-{core,guard,native}/Cargo.toml \
    $(find crates/pyaya-{core,guard,native}/src -name '*.rs' | sort) | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fingerprint" ] && "$venv/bin/python" -c 'import pyaya._native' 2>/dev/null
then
    say "pyaya already installed in .venv"
else
    say "installing pyaya from source into .venv (compiles the native loader)"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "maturin>=1.8,<2"
    log="$venv/pyaya-build.log"
    if ! (cd "$root" && "$venv/bin/maturin" develop --release --extras dev) >"$log" 2>&1 ||
        ! "$venv/bin/python" -c 'import pyaya._native' 2>/dev/null; then
        tail -n 40 "$log" >&2
        die "pyaya's native module did not build (full log: $log)"
    fi
    echo "$fingerprint" >"$stamp"
fi
say "ready: $venv/bin/pyaya"
