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
from pyaya.programs._base import TestRunResult
from pyaya.programs.net import (
    SK_DROP,
    SK_PASS,
    TC_ACT_OK,
    TC_ACT_PIPE,
    TC_ACT_RECLASSIFY,
    TC_ACT_REDIRECT,
    TC_ACT_SHOT,
    TC_ACT_STOLEN,
    TC_ACT_UNSPEC,
    XDP_ABORTED,
    XDP_DROP,
    XDP_PASS,
    XDP_REDIRECT,
    XDP_TX,
    CgroupDevice,
    CgroupSkb,
    CgroupSock,
    CgroupSockAddr,
    CgroupSockopt,
    CgroupSysctl,
    FlowDissector,
    SchedClassifier,
    SkLookup,
    SkMsg,
    SkSkb,
    SocketFilter,
    SockOps,
    Xdp,
)

try:
    __version__ = version("pyaya")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "SK_DROP",
    "SK_PASS",
    "TC_ACT_OK",
    "TC_ACT_PIPE",
    "TC_ACT_RECLASSIFY",
    "TC_ACT_REDIRECT",
    "TC_ACT_SHOT",
    "TC_ACT_STOLEN",
    "TC_ACT_UNSPEC",
    "XDP_ABORTED",
    "XDP_DROP",
    "XDP_PASS",
    "XDP_REDIRECT",
    "XDP_TX",
    "Array",
    "BuildError",
    "CgroupDevice",
    "CgroupSkb",
    "CgroupSock",
    "CgroupSockAddr",
    "CgroupSockopt",
    "CgroupSysctl",
    "ClosedError",
    "Ebpf",
    "FlowDissector",
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
    "SchedClassifier",
    "SkLookup",
    "SkMsg",
    "SkSkb",
    "SockOps",
    "SocketFilter",
    "TestRunResult",
    "ToolchainError",
    "TracePoint",
    "UnsupportedError",
    "VerifierError",
    "Xdp",
    "__version__",
    "loaded_programs",
]
