"""``pyaya --version``: pyaya's and aya's versions (from the native module, set from Cargo metadata at build time),
the toolchain a build would use, and the kernel.

Kept apart from :mod:`pyaya.cli` so that ``pyaya --version`` answers without importing Typer (see
:func:`pyaya.cli.main`). The toolchain line is cached in ``version-toolchain.json`` of pyaya's cache folder with the
fingerprint of :mod:`pyaya._toolchain_cache` (any change to a tool probes again); unlike ``pyaya build``'s cache it
also remembers that no toolchain was found. ``pyaya doctor`` never uses a cache.
"""

from __future__ import annotations

import os

from pyaya import _toolchain_cache

__all__ = ["toolchain_line", "version_report"]

_CACHE_NAME = "version-toolchain.json"


def _fingerprint() -> dict[str, object]:
    from pyaya._toolchain_paths import BPF_LINKER_DIRS, SYSTEM_RUSTC  # noqa: PLC0415 - constants only

    return _toolchain_cache.fingerprint(system_rustc=SYSTEM_RUSTC, linker_dirs=BPF_LINKER_DIRS)


def _probe() -> str:
    from pyaya.errors import PyayaError  # noqa: PLC0415
    from pyaya.toolchain import resolve  # noqa: PLC0415 - runs rustc/bpf-linker probes: the slow part

    try:
        found = resolve()
    except PyayaError as error:
        first = str(error).splitlines()[0]
        return f"none ({first}; `pyaya doctor` says how to fix it)"
    return found.describe()


def toolchain_line() -> str:
    """The toolchain a build would use, as ``pyaya doctor`` describes it: from the cache when nothing it depends
    on changed, else probed (and cached)."""
    fingerprint = _fingerprint()
    cached = _toolchain_cache.load(_CACHE_NAME, fingerprint)
    if isinstance(cached, str):
        return cached
    line = _probe()
    _toolchain_cache.store(_CACHE_NAME, fingerprint, line)
    return line


def version_report() -> str:
    """The lines ``pyaya --version`` prints."""
    from pyaya._native import AYA_VERSION, VERSION  # noqa: PLC0415

    uname = os.uname()
    return "\n".join(
        [
            f"pyaya {VERSION}",
            f"aya {AYA_VERSION}",
            f"toolchain: {toolchain_line()}",
            f"kernel: {uname.sysname} {uname.release} {uname.machine}",
        ]
    )
