"""Program types, each a typed class with its own ``attach``; :class:`Link` is one attachment."""

from __future__ import annotations

from pyaya.programs._base import Link, Program, class_for
from pyaya.programs.tracing import RawTracePoint, TracePoint

__all__ = ["Link", "Program", "RawTracePoint", "TracePoint", "class_for"]
