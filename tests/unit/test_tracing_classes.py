"""The tracing program classes without privilege: registration, perf event names, docstrings."""

from __future__ import annotations

import pyaya
import pytest
from pyaya.programs import class_for

TRACING = [
    pyaya.TracePoint,
    pyaya.RawTracePoint,
    pyaya.BtfTracePoint,
    pyaya.FEntry,
    pyaya.FExit,
    pyaya.Lsm,
    pyaya.LsmCgroup,
    pyaya.KProbe,
    pyaya.UProbe,
    pyaya.PerfEvent,
    pyaya.Iter,
    pyaya.Extension,
]


@pytest.mark.parametrize("cls", TRACING)
def test_each_type_is_registered_and_documented(cls: type[pyaya.Program]) -> None:
    assert class_for(cls.kind) is cls
    doc = cls.__doc__ or ""
    assert "Kernel " in doc
    assert "doctest: +SKIP" in doc


def test_perf_event_names_cover_software_and_hardware() -> None:
    events = pyaya.PerfEvent.events()
    assert events["cpu-clock"] is pyaya.PerfEventKind.SOFTWARE
    assert events["page-faults"] is pyaya.PerfEventKind.SOFTWARE
    assert events["cycles"] is pyaya.PerfEventKind.HARDWARE
    assert events["instructions"] is pyaya.PerfEventKind.HARDWARE
