"""Shared libraries by name (``libc``, ``libssl.so.3``): ld.so's cache (``ldconfig -p``), then the usual library
folders. Below both :mod:`pyaya.usdt` (which resolves USDT targets) and :mod:`pyaya.scaffold` (which checks template
options), so neither imports the other for it."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

__all__ = ["LIBRARY_DIRS", "is_elf", "ld_cache", "library_matches", "resolve_library"]

#: Where shared libraries live when ld.so's cache does not list them.
LIBRARY_DIRS = (
    "/lib",
    "/usr/lib",
    "/lib64",
    "/usr/lib64",
    "/usr/local/lib",
    f"/lib/{os.uname().machine}-linux-gnu",
    f"/usr/lib/{os.uname().machine}-linux-gnu",
)


@functools.lru_cache(maxsize=1)
def ld_cache() -> dict[str, str]:
    """``ldconfig -p``: library file name -> path (first entry wins, as the dynamic linker's cache orders them)."""
    libraries: dict[str, str] = {}
    for ldconfig in ("ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"):
        try:
            output = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, check=False, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        for line in output.splitlines():
            name, arrow, path = line.strip().partition(" => ")
            if arrow:
                libraries.setdefault(name.split(" (", 1)[0], path.strip())
        if libraries:
            break
    return libraries


def library_matches(name: str, file_name: str) -> bool:
    """Whether ``file_name`` is the library ``name`` (``c``, ``libc``, ``libc.so.6``) or one of its versions."""
    return any(file_name == stem or file_name.startswith(f"{stem}.so") for stem in (name, f"lib{name}"))


def is_elf(path: Path) -> bool:
    """Whether ``path`` starts with the ELF magic (False when it cannot be read)."""
    try:
        with path.open("rb") as file:
            return file.read(4) == b"\x7fELF"
    except OSError:
        return False


def resolve_library(name: str) -> Path | None:
    """The file of a shared library given by name (``libc``, ``c``, ``libssl.so.3``), via ld.so's cache, then
    the usual library folders; None when there is none. (``libc.so`` linker scripts are not libraries.)"""
    for file_name, path in sorted(ld_cache().items()):
        if library_matches(name, file_name) and is_elf(Path(path)):
            return Path(path)
    for folder in LIBRARY_DIRS:
        try:
            entries = sorted(Path(folder).iterdir())
        except OSError:
            continue
        for entry in entries:
            if library_matches(name, entry.name) and is_elf(entry):
                return entry
    return None
