"""The tracing program classes without privilege: registration, perf event names, docstrings."""

from __future__ import annotations

from types import SimpleNamespace

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


@pytest.mark.parametrize(
    ("section", "target"),
    [
        ("uretprobe//bin/bash:readline", ("/bin/bash", "readline", 0)),
        ("uprobe/libc.so.6:malloc+0x10", ("libc.so.6", "malloc", 16)),
        ("uprobe.s//usr/bin/app:0x1234", ("/usr/bin/app", None, 0x1234)),
    ],
)
def test_uprobe_sections_name_binary_function_and_offset(section: str, target: tuple[object, ...]) -> None:
    """libbpf's ``uprobe/<binary>:<function>[+<offset>]``, which ``UProbe.attach()`` takes when given no target."""
    program = SimpleNamespace(name="p", _native=SimpleNamespace(section=section))
    assert pyaya.UProbe._section_target(program) == target  # type: ignore[arg-type]


@pytest.mark.parametrize("section", ["uprobe", "uretprobe/", "uprobe//bin/bash", "uprobe//bin/bash:f+x", "kprobe/f"])
def test_uprobe_sections_without_a_target_say_to_pass_one(section: str) -> None:
    program = SimpleNamespace(name="p", _native=SimpleNamespace(section=section))
    with pytest.raises(pyaya.errors.InvalidArgumentError, match=r"pass attach\(binary, function\)"):
        pyaya.UProbe._section_target(program)  # type: ignore[arg-type]
