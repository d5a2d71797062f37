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
from pyaya.loader import (
    Array,
    Ebpf,
    HashMap,
    Link,
    Map,
    Program,
    RawTracePoint,
    RingBuf,
    TracePoint,
    loaded_programs,
)

try:
    __version__ = version("pyaya")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "Array",
    "Ebpf",
    "HashMap",
    "Link",
    "Map",
    "Program",
    "RawTracePoint",
    "RingBuf",
    "TracePoint",
    "loaded_programs",
    "BuildError",
    "ClosedError",
    "LoadError",
    "MapError",
    "NotFoundError",
    "ObjectError",
    "PermissionDeniedError",
    "ProgramError",
    "ProjectError",
    "PyayaError",
    "ScaffoldError",
    "ToolchainError",
    "UnsupportedError",
    "VerifierError",
    "__version__",
]
