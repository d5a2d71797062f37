"""Where :mod:`pyaya.toolchain` looks for binaries: plain constants, apart so that ``pyaya --version`` can check
whether any of them changed (:mod:`pyaya._version`) without importing the resolver (subprocess, dataclasses...);
the toolchain kinds and the BPF target too, for :mod:`pyaya.project` (on ``pyaya run``'s path)."""

from __future__ import annotations

import sys

__all__ = ["BPF_LINKER_DIRS", "KINDS", "SYSTEM_RUSTC", "bpf_target"]

KINDS: tuple[str, ...] = ("auto", "nightly", "prebuilt", "bootstrap")
"""Values accepted by ``--toolchain`` and ``[build] toolchain``."""


def bpf_target() -> str:
    """The BPF target of this host's byte order: ``bpfel-unknown-none`` or ``bpfeb-unknown-none``."""
    return "bpfel-unknown-none" if sys.byteorder == "little" else "bpfeb-unknown-none"


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
