"""pyaya: Rust eBPF from Python.

Scaffold, build, load and run aya-ebpf programs; the loader is aya itself, exposed through a native module.
"""

from __future__ import annotations

from pyaya.errors import (
    BuildError,
    ClosedError,
    LoadError,
    MapError,
    NotFoundError,
    ObjectError,
    PermissionDeniedError,
    ProgramError,
    ProjectError,
    PyayaError,
    ScaffoldError,
    ToolchainError,
    UnsupportedError,
    VerifierError,
)
from pyaya.loader import Ebpf, loaded_programs
from pyaya.maps import Array, HashMap, Map, RingBuf
from pyaya.programs import Link, Program, RawTracePoint, TracePoint


def __getattr__(name: str) -> str:
    # importlib.metadata costs ~30 ms at import: read the version only when someone asks for it.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            return version("pyaya")
        except PackageNotFoundError:  # running from a source tree that was never installed
            return "0.0.0+unknown"
    raise AttributeError(f"module 'pyaya' has no attribute {name!r}")


__all__ = [
    "Array",
    "BuildError",
    "ClosedError",
    "Ebpf",
    "HashMap",
    "Link",
    "LoadError",
    "Map",
    "MapError",
    "NotFoundError",
    "ObjectError",
    "PermissionDeniedError",
    "Program",
    "ProgramError",
    "ProjectError",
    "PyayaError",
    "RawTracePoint",
    "RingBuf",
    "ScaffoldError",
    "ToolchainError",
    "TracePoint",
    "UnsupportedError",
    "VerifierError",
    "__version__",
    "loaded_programs",
]
