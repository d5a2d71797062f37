"""Every fixture object (crates/pyaya-fixtures) against the loaders `pyaya inspect --compat` reports on, held to what
bpftool (libbpf) does with it, as test_templates.py does for the templates' objects.

The fixtures declare their maps with `#[btf_map]` and carry a `license` section, so libbpf opens every one but
those that keep legacy `#[map]` maps on purpose (LIBBPF_REFUSES): those it must refuse, for the reason the report
names. A fixture libbpf opens then loads, unless its programs are there to be refused (LOAD_REFUSED) or this
kernel lacks what they need (a skip with the probed reason)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _templates import unsupported_reason
from conftest import FIXTURES
from pyaya.compat import compatibility_of_file
from pyaya.inspect import inspect_file
from pyaya.project import load_project

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

#: Every object the fixtures crate builds (its `[[bin]]` targets).
_CRATE = tomllib.loads((FIXTURES / "fixtures-ebpf" / "Cargo.toml").read_text())
OBJECTS = sorted(target["name"] for target in _CRATE["bin"])

#: Fixtures libbpf refuses, and the legacy maps `pyaya inspect --compat` must name as the reason: types_records
#: keeps `#[map]` maps because its tests are about how pyaya types legacy maps (and rings typed by hand), and it
#: logs with aya-log, whose own AYA_LOGS map aya-log-ebpf 0.2 declares the legacy way.
LIBBPF_REFUSES = {
    "types_records": ("AYA_LOGS", "LAST_TOTALS", "MIXED", "RAW_SAMPLES", "SAMPLES_BY_KEY", "SIGNED"),
}

#: Fixtures with program sections newer than the libbpf the report (and this machine's bpftool) is held to,
#: libbpf 1.1: `pyaya inspect --compat` must name those sections, and bpftool must refuse them the same way.
#: trace_multi's uprobe.multi/uretprobe.multi came with libbpf 1.3 (its kprobe.multi ones 1.1 knows).
LIBBPF_UNKNOWN_SECTIONS = {
    "trace_multi": ("uprobe.multi", "uretprobe.multi"),
}

#: Fixtures libbpf opens but whose programs no kernel loads as bpftool gives them, and what libbpf says then.
LOAD_REFUSED = {
    # Both its programs are there for the verifier to refuse (test_refusals.py): libbpf prints the verifier's log.
    "rejected": "BPF program load failed",
    # An Extension replaces a function of a loaded program, which `bpftool prog loadall` cannot name.
    "trace_ext": "attach program FD is not set",
}


def test_pyaya_build_makes_every_fixture_object() -> None:
    """`[build] objects` names every bin, so `pyaya build` rewrites what libbpf refuses in each of them (a
    `btf_maps::RingBuf`'s value) and every one of them is checked below."""
    assert sorted(load_project(FIXTURES / "pyaya.toml").objects) == OBJECTS


@pytest.mark.parametrize("name", OBJECTS)
def test_fixture_object_loads_with_libbpf_as_inspect_compat_says(name: str, fixtures_dir: Path) -> None:
    path = fixtures_dir / name
    verdicts = {verdict.loader: verdict for verdict in compatibility_of_file(path)}
    assert verdicts["pyaya"].accepts, verdicts["pyaya"].reasons
    assert verdicts["pyaya"].reasons == []  # no "no license section" note: every fixture has one
    libbpf = verdicts["libbpf"]
    if name in LIBBPF_REFUSES:
        assert not libbpf.accepts
        names = ", ".join(LIBBPF_REFUSES[name])
        assert len(libbpf.reasons) == 1, libbpf.reasons
        assert f"legacy map definitions in the 'maps' section ({names})" in libbpf.reasons[0]
    elif name in LIBBPF_UNKNOWN_SECTIONS:
        assert not libbpf.accepts
        sections = ", ".join(LIBBPF_UNKNOWN_SECTIONS[name])
        assert libbpf.reasons == [f"program sections libbpf does not know: {sections}"], libbpf.reasons
    else:
        assert libbpf.accepts, f"{name}: {libbpf.reasons}"
        assert libbpf.reasons == []
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        pytest.skip("bpftool is not installed (apt-get install bpftool; make setup installs it)")
    pins = Path("/sys/fs/bpf") / f"pyaya-compat-fixture-{name}-{os.getpid()}"
    pins.mkdir()
    try:
        run = subprocess.run(
            [bpftool, "prog", "loadall", str(path), str(pins)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        shutil.rmtree(pins, ignore_errors=True)
    opened = "failed to open object file" not in run.stderr
    if name in LIBBPF_UNKNOWN_SECTIONS:
        assert run.returncode != 0, f"{name}: bpftool loaded sections the report says libbpf does not know"
        first = LIBBPF_UNKNOWN_SECTIONS[name][0]
        assert f"failed to guess program type from ELF section '{first}'" in run.stderr, run.stderr[-3000:]
        return
    if name in LIBBPF_REFUSES:
        assert run.returncode != 0, f"{name}: libbpf loaded what the report says it refuses"
        assert not opened, f"{name}: libbpf opened the object the report says it refuses:\n{run.stderr[-3000:]}"
        assert "legacy map definitions" in run.stderr, run.stderr[-3000:]
        return
    assert opened, f"{name}: libbpf could not open the object, though the report says it can:\n{run.stderr[-3000:]}"
    if name in LOAD_REFUSED:
        assert run.returncode != 0, f"{name}: bpftool loaded programs that are there to be refused"
        assert LOAD_REFUSED[name] in run.stderr, run.stderr[-3000:]
        return
    if run.returncode != 0:
        program_types = frozenset(program.type for program in inspect_file(path).programs)
        reason = unsupported_reason(program_types)
        if reason is not None:
            pytest.skip(f"libbpf opened the object; this kernel cannot load it: {reason}")
        pytest.fail(f"{name}: libbpf opened the object but could not load it:\n{run.stderr[-3000:]}")
