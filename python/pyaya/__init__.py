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
from pyaya.programs import (
    BtfTracePoint,
    Extension,
    FEntry,
    FExit,
    Iter,
    IterLink,
    KProbe,
    Link,
    Lsm,
    LsmCgroup,
    PerfEvent,
    PerfEventKind,
    Program,
    RawTracePoint,
    TracePoint,
    UProbe,
    enable_stats,
)


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
    "BtfTracePoint",
    "BuildError",
    "ClosedError",
    "Ebpf",
    "Extension",
    "FEntry",
    "FExit",
    "HashMap",
    "Iter",
    "IterLink",
    "KProbe",
    "Link",
    "LoadError",
    "Lsm",
    "LsmCgroup",
    "Map",
    "MapError",
    "NotFoundError",
    "ObjectError",
    "PerfEvent",
    "PerfEventKind",
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
    "UProbe",
    "UnsupportedError",
    "VerifierError",
    "__version__",
    "enable_stats",
    "loaded_programs",
]
