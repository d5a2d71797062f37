"""pyaya: Rust eBPF from Python.

Scaffold, build, load and run aya-ebpf programs; the loader is aya itself, exposed through a native module.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

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

try:
    __version__ = version("pyaya")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

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
