#!/usr/bin/env bash
# What the fleet tests (`make test-fleet`) need beyond `make setup`, installed idempotently:
#   1. Debian's docker-registry (a local OCI registry), prometheus, skopeo (pushes OCI layouts to a registry),
#      umoci (writes OCI image layouts), libbpf-dev and clang-22 (bpfman's build compiles its XDP/TC dispatchers)
#   2. bpfman 0.6.0 from crates.io, built once with Debian's cargo and cached under ~/.cache/pyaya (a first build
#      takes a while on two cores; later runs only check the cached binary)
# No service is started here: each test starts, and stops, the servers it uses.
set -euo pipefail

cache=${PYAYA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pyaya}
bpfman_version=0.6.0
llvm_major=22
apt_packages=(docker-registry prometheus skopeo umoci libbpf-dev pkg-config libssl-dev "clang-${llvm_major}")

say() { printf '\033[1msetup-fleet:\033[0m %s\n' "$*" >&2; }
die() { printf 'setup-fleet: error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        die "this step needs root: $*"; fi
}

# -- 1. system packages ---------------------------------------------------------------------------------------------
missing=()
for package in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "no apt-get: install ${missing[*]} by hand"
    say "installing ${missing[*]}"
    as_root apt-get update -qq
    # --no-install-recommends: the registry's and prometheus' recommended exporters are not needed. Debian starts no
    # service inside a container (policy-rc.d); on a host, the packaged units may start: the tests use ports of their
    # own and never touch those.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    say "system packages present"
fi

# -- 2. bpfman ------------------------------------------------------------------------------------------------------
bpfman="$cache/bpfman-install/bin/bpfman"
bpfman_ok() { [ -x "$bpfman" ] && "$bpfman" --version 2>/dev/null | grep -q "$bpfman_version"; }
if bpfman_ok; then
    say "bpfman $bpfman_version cached at $bpfman"
else
    say "building bpfman $bpfman_version from crates.io (once; several minutes on two cores)"
    mkdir -p "$cache"
    # bpfman's build.rs runs `make` on its dispatchers, which calls `clang` by that name: point it at Debian's
    # clang-22 (any clang with the BPF target does) without installing a second LLVM.
    shims=$(mktemp -d)
    trap 'rm -rf "$shims"' EXIT
    ln -s "/usr/bin/clang-${llvm_major}" "$shims/clang"
    # RUSTC: Debian's rustc, never a rustup proxy (which would obey a dependency's own rust-toolchain file).
    # C_INCLUDE_PATH: clang -target bpfel does not search Debian's multiarch folder, where <asm/types.h> is.
    multiarch=$(gcc -print-multiarch 2>/dev/null || echo "$(uname -m)-linux-gnu")
    PATH="$shims:$PATH" RUSTC=/usr/bin/rustc CARGO_TARGET_DIR="$cache/bpfman-build" \
        C_INCLUDE_PATH="/usr/include/$multiarch${C_INCLUDE_PATH:+:$C_INCLUDE_PATH}" \
        /usr/bin/cargo install --locked --quiet bpfman --version "$bpfman_version" --root "$cache/bpfman-install"
    rm -rf "$cache/bpfman-build"
    bpfman_ok || die "bpfman was built but \`$bpfman --version\` does not say $bpfman_version"
fi
say "ready: $bpfman"
