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
from pyaya.programs import Link, Program, RawTracePoint, TracePoint

try:
    __version__ = version("pyaya")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

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
