"""Remembering probe answers until what they depend on changes (``pyaya build``'s resolved toolchain, the toolchain
line of ``pyaya --version``).

Resolving the toolchain runs rustc, rustup and ldd about ten times (a third of a second here), for an answer that
changes only when a tool is installed, upgraded or removed. A cached answer is used only while its fingerprint
still matches: the variables resolution reads, and the status (inode, size, mtime) of every file it looks at: each
rustc candidate on PATH and the distribution's, cargo, rustup and its toolchain folder, bpf-linker wherever pyaya
searches it, each sysroot's ``lib/rustlib`` (where rustup and Debian add rust-src and the BPF target), plus the
files of the answer itself. Any change there probes again. Checking costs a few dozen ``stat`` calls.

Standard library only: ``pyaya --version`` imports it without the rest of pyaya.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from pyaya._cache import cache_home

__all__ = ["file_status", "fingerprint", "load", "store"]

_ENV_KEYS = (
    "PATH",
    "PYAYA_RUSTC",
    "PYAYA_CARGO",
    "PYAYA_TOOLCHAIN",
    "RUSTUP_TOOLCHAIN",
    "RUSTUP_HOME",
    "CARGO_HOME",
    "HOME",
)
#: Entries kept per cache file: one per environment a user builds from (a few PATHs, toolchain kinds).
_MAX_ENTRIES = 8


def file_status(path: str | os.PathLike[str]) -> list[int] | None:
    """(inode, size, mtime in ns) of ``path``, or None when it does not exist."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return [status.st_ino, status.st_size, status.st_mtime_ns]


def fingerprint(
    env: Mapping[str, str] | None = None,
    *,
    system_rustc: str,
    linker_dirs: Sequence[str],
) -> dict[str, object]:
    """What toolchain resolution depends on, cheaply: variables and file status, no process run. ``env`` is the
    environment the build passes (its PATH finds bpf-linker); the process's own PATH finds rustc and rustup."""
    env = os.environ if env is None else env
    rustup_home = Path(os.environ.get("RUSTUP_HOME") or Path.home() / ".rustup")
    paths: list[str | None] = [
        shutil.which("rustc"),
        shutil.which("cargo"),
        shutil.which("rustup"),
        str(Path("~/.cargo/bin/rustup").expanduser()),
        shutil.which("bpf-linker", path=env.get("PATH")),
        env.get("PYAYA_RUSTC"),
        env.get("PYAYA_CARGO"),
        system_rustc,
        str(Path(system_rustc).parent.parent / "lib" / "rustlib"),
        str(rustup_home / "settings.toml"),
        str(rustup_home / "toolchains"),
        *(os.path.expandvars(os.path.expanduser(d)) + "/bpf-linker" for d in linker_dirs),
    ]
    toolchains = rustup_home / "toolchains"
    if toolchains.is_dir():
        for toolchain in sorted(toolchains.iterdir()):
            paths += [str(toolchain / "bin" / "rustc"), str(toolchain / "lib" / "rustlib")]
    return {
        "env": {key: os.environ.get(key) for key in _ENV_KEYS},
        "build_env": {key: env.get(key) for key in _ENV_KEYS},
        "files": {path: file_status(path) for path in paths if path},
    }


def _path(name: str) -> Path:
    return cache_home() / name


def _entries(name: str) -> list[dict[str, object]]:
    try:
        data = json.loads(_path(name).read_text())
    except (OSError, ValueError):
        return []
    entries = data.get("entries") if isinstance(data, dict) else None
    return [entry for entry in entries if isinstance(entry, dict)] if isinstance(entries, list) else []


def _normalised(value: object) -> object:
    return json.loads(json.dumps(value))


def load(name: str, key: Mapping[str, object]) -> object | None:
    """The value stored under ``key`` in cache file ``name``, if the files it was stored with are unchanged."""
    wanted = _normalised(key)
    for entry in _entries(name):
        if entry.get("key") != wanted:
            continue
        files = entry.get("files")
        if not isinstance(files, dict) or any(file_status(path) != status for path, status in files.items()):
            return None
        return entry.get("value")
    return None


def store(name: str, key: Mapping[str, object], value: object, *, files: Sequence[str | os.PathLike[str]] = ()) -> None:
    """Keep ``value`` under ``key``, valid while each of ``files`` keeps its status. Best effort: a read-only cache
    folder only means probing every time."""
    wanted = _normalised(key)
    entry = {"key": wanted, "files": {str(path): file_status(path) for path in files}, "value": value}
    entries = [entry] + [old for old in _entries(name) if old.get("key") != wanted]
    target = _path(name)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"entries": entries[:_MAX_ENTRIES]}))
        temporary.replace(target)
    except OSError:
        pass
