"""Where :mod:`pyaya.toolchain` looks for binaries: plain constants, apart so that ``pyaya --version`` can check
whether any of them changed (:mod:`pyaya._version`) without importing the resolver (subprocess, dataclasses...)."""

from __future__ import annotations

__all__ = ["BPF_LINKER_DIRS", "SYSTEM_RUSTC"]

BPF_LINKER_DIRS: tuple[str, ...] = (
    "~/.cargo/bin",
    # where `make setup` (scripts/setup.sh) installs it: ${PYAYA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pyaya}
    "$PYAYA_CACHE/bpf-linker-install/bin",
    "$XDG_CACHE_HOME/pyaya/bpf-linker-install/bin",
    "~/.cache/pyaya/bpf-linker-install/bin",
    "/root/.cache/pyaya/bpf-linker-install/bin",  # root's, for `sudo pyaya` with a user's HOME
)
"""Where bpf-linker is looked for after PATH, in order (``~`` and ``$VARS`` are expanded; unset ones skipped)."""

SYSTEM_RUSTC = "/usr/bin/rustc"
"""Checked explicitly: rustup's ``~/.cargo/bin/rustc`` shadows the distribution's rustc on PATH."""
