"""Program types, each a typed class with its own ``attach``; :class:`Link` is one attachment."""

from __future__ import annotations

from pyaya.programs._base import Link, Program, class_for, enable_stats
from pyaya.programs.tracing import (
    BtfTracePoint,
    Extension,
    FEntry,
    FExit,
    Iter,
    IterLink,
    KProbe,
    Lsm,
    LsmCgroup,
    PerfEvent,
    PerfEventKind,
    RawTracePoint,
    TracePoint,
    UProbe,
)

__all__ = [
    "BtfTracePoint",
    "Extension",
    "FEntry",
    "FExit",
    "Iter",
    "IterLink",
    "KProbe",
    "Link",
    "Lsm",
    "LsmCgroup",
    "PerfEvent",
    "PerfEventKind",
    "Program",
    "RawTracePoint",
    "TracePoint",
    "UProbe",
    "class_for",
    "enable_stats",
]
