"""Tracing program types: tracepoints, raw tracepoints, probes, BTF-based tracing, perf events and iterators."""

from __future__ import annotations

from pyaya.programs._base import Link, Program, register

__all__ = ["RawTracePoint", "TracePoint"]


@register
class TracePoint(Program):
    """A program attached to a kernel tracepoint (``/sys/kernel/tracing/events/<category>/<name>``).

    Kernel 4.7 or later. Needs tracefs mounted.

    >>> prog = bpf.programs["execwatch"]  # doctest: +SKIP
    >>> link = prog.attach("syscalls", "sys_enter_execve")  # doctest: +SKIP
    """

    kind = "TracePoint"

    def attach(self, category: str, name: str) -> Link:
        """Attach to tracepoint ``category/name``, loading the program first if needed."""
        self._ensure_loaded()
        return self._attached(self._native.attach_tracepoint(category, name))


@register
class RawTracePoint(Program):
    """A program attached to a raw tracepoint (its arguments are the tracepoint's raw arguments).

    Kernel 4.17 or later.

    >>> bpf.programs["sched"].attach("sched_switch")  # doctest: +SKIP
    """

    kind = "RawTracePoint"

    def attach(self, name: str) -> Link:
        """Attach to the raw tracepoint ``name``, loading the program first if needed."""
        self._ensure_loaded()
        return self._attached(self._native.attach_raw_tracepoint(name))
