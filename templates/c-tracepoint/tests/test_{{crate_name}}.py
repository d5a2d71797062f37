"""Proves {{name}} works on this machine: it builds, loads, and reports execs this test
makes itself; with -p PID, only those of that process.

Run with `sudo python -m pytest tests` from the project folder (the Python that has pyaya installed: its
`pyaya_project` fixture builds and runs the project).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyaya
import pytest
from pyaya.testing import PyayaProject, privilege_skip_reason

# Waits for a line on stdin, then becomes the program in argv[1]: an exec by a process whose pid is known before.
EXEC_WHEN_TOLD = "import os, sys\nsys.stdin.readline()\nos.execv(sys.argv[1], [sys.argv[1]])\n"


def probe_program(folder: Path) -> Path:
    """A uniquely named executable, so its events can't be confused with anything else running."""
    probe = folder / f"{{crate_name}}-probe-{os.getpid()}"
    shutil.copy("/bin/true", probe)
    return probe


def exec_when_told(probe: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", EXEC_WHEN_TOLD, str(probe)], stdin=subprocess.PIPE, text=True)


def test_builds(pyaya_project: PyayaProject) -> None:
    assert pyaya_project.build().is_file()


def test_each_exec_is_reported(pyaya_project: PyayaProject, tmp_path: Path) -> None:
    probe = probe_program(tmp_path)
    pids = []
    with pyaya_project.run(duration=4) as run:
        for _ in range(3):
            with subprocess.Popen([str(probe)]) as child:
                pids.append(child.pid)
        result = run.result()
    seen = result.events_where(filename=str(probe))
    assert sorted(event["pid"] for event in seen) == sorted(pids)
    assert all(event["ppid"] == os.getpid() for event in seen)


def test_pid_filter_drops_other_processes_in_the_kernel(pyaya_project: PyayaProject, tmp_path: Path) -> None:
    probe = probe_program(tmp_path)
    with (
        exec_when_told(probe) as watched,
        exec_when_told(probe) as other,
        pyaya_project.run("-p", str(watched.pid), duration=4) as run,
    ):
        watched.communicate("go\n", timeout=30)
        other.communicate("go\n", timeout=30)
        result = run.result()
    assert [event["pid"] for event in result.events_where(filename=str(probe))] == [watched.pid]
    # Counted in the kernel after the filter: the one exec of the watched process is all there is.
    assert result.entries("exec_counts") == [{"uid": os.getuid(), "execs": 1}]


def test_records_decode_by_name_from_the_objects_dwarf(pyaya_project: PyayaProject) -> None:
    # `struct event` is only a local variable of the C source: the object's BTF lacks it, its DWARF has it.
    reason = privilege_skip_reason()
    if reason:
        pytest.skip(reason)
    with pyaya.Ebpf.load_file(pyaya_project.build()) as bpf:
        assert bpf.btf is not None
        assert "event" not in {t.name for t in bpf.btf}
        assert bpf.types["event"].field_names == ("pid", "ppid", "uid", "comm", "filename")
