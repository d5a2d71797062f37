"""``pyaya --version``: pyaya's and aya's versions (from the native module, set from Cargo metadata at build time),
the toolchain a build would use, and the kernel.

Kept apart from :mod:`pyaya.cli` so that ``pyaya --version`` answers without importing Typer (see
:func:`pyaya.cli.main`). Resolving the toolchain runs rustc and rustup several times (a quarter of a second here),
so the toolchain line is cached in ``version-toolchain.json`` of pyaya's cache folder (:mod:`pyaya._cache`) with a
fingerprint of what the resolution depends on: the overriding variables and PATH, and the status (inode, size,
mtime) of every rustc candidate, rustup, bpf-linker and each sysroot's ``lib/rustlib`` (where rustup and Debian add
rust-src and the BPF target). Any change there probes again. ``pyaya doctor`` and ``pyaya build`` never use this cache.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from pyaya._cache import cache_home

__all__ = ["toolchain_line", "version_report"]

_ENV_KEYS = ("PATH", "PYAYA_RUSTC", "PYAYA_CARGO", "PYAYA_TOOLCHAIN", "RUSTUP_TOOLCHAIN", "RUSTUP_HOME", "HOME")
_CACHE_NAME = "version-toolchain.json"


def _cache_path() -> Path:
    return cache_home() / _CACHE_NAME


def _stat(path: str | Path) -> list[int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return [status.st_ino, status.st_size, status.st_mtime_ns]


def _fingerprint() -> dict[str, object]:
    """What the toolchain resolution depends on, cheaply: variables and file status, no process run."""
    from pyaya._toolchain_paths import BPF_LINKER_DIRS, SYSTEM_RUSTC  # noqa: PLC0415 - constants only

    rustup_home = Path(os.environ.get("RUSTUP_HOME") or Path.home() / ".rustup")
    paths = [
        shutil.which("rustc"),
        shutil.which("cargo"),
        shutil.which("rustup"),
        shutil.which("bpf-linker"),
        SYSTEM_RUSTC,
        "/usr/lib/rustlib",
        str(rustup_home / "settings.toml"),
        str(rustup_home / "toolchains"),
        *(os.path.expandvars(os.path.expanduser(d)) + "/bpf-linker" for d in BPF_LINKER_DIRS),
    ]
    toolchains = rustup_home / "toolchains"
    if toolchains.is_dir():
        paths += sorted(str(p / "lib" / "rustlib") for p in toolchains.iterdir())
    return {
        "env": {key: os.environ.get(key) for key in _ENV_KEYS},
        "files": {str(p): _stat(p) for p in paths if p},
    }


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
    cache = _cache_path()
    try:
        cached = json.loads(cache.read_text())
        if cached.get("fingerprint") == json.loads(json.dumps(fingerprint)):
            return str(cached["line"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    line = _probe()
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"fingerprint": fingerprint, "line": line}))
        temporary.replace(cache)
    except OSError:
        pass  # a read-only home: probe every time
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
