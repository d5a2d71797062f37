"""Proves {{name}} works on this machine: it builds, loads on the BTF tracepoint
`{{btf_tracepoint|py}}`, and reports execs this test makes itself; with -p PID, only those of that process.

Run with `sudo python -m pytest tests` from the project folder (the Python that has pyaya installed: its
`pyaya_project` fixture builds and runs the project).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pyaya import features
from pyaya.testing import PyayaProject

TRACEPOINT = "{{btf_tracepoint|py}}"
# Waits for a line on stdin, then becomes the program in argv[1]: an exec by a process whose pid is known before.
EXEC_WHEN_TOLD = "import os, sys\nsys.stdin.readline()\nos.execv(sys.argv[1], [sys.argv[1]])\n"


def needs_tp_btf() -> None:
    supported, reason = features.btf_program_supported("BtfTracePoint", TRACEPOINT)
    if not supported:
        pytest.skip(f"BTF tracepoints cannot be loaded and attached here: {reason}")


def probe_program(folder: Path) -> Path:
    """A uniquely named executable, so its events can't be confused with anything else running."""
    probe = folder / f"tpbtf-{os.getpid()}"
    shutil.copy("/bin/true", probe)
    return probe


def exec_when_told(probe: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", EXEC_WHEN_TOLD, str(probe)], stdin=subprocess.PIPE, text=True)


def test_builds(pyaya_project: PyayaProject) -> None:
    assert pyaya_project.build().is_file()


def test_each_exec_is_reported(pyaya_project: PyayaProject, tmp_path: Path) -> None:
    needs_tp_btf()
    probe = probe_program(tmp_path)
    pids = []
    with pyaya_project.run(duration=4) as run:
        for _ in range(3):
            with subprocess.Popen([str(probe)]) as child:
                pids.append(child.pid)
        result = run.result()
    events = [event for event in result.events if event["pid"] in pids]
    assert sorted(event["pid"] for event in events) == sorted(pids)
    assert all(event["comm"] == probe.name[:15] for event in events)
    assert all(event["uid"] == os.getuid() for event in events)
    if TRACEPOINT == "sched_process_exec":
        assert all(event["filename"] == str(probe) for event in events)
        assert all(event["old_pid"] == event["pid"] for event in events)


def test_pid_filter_drops_other_processes_in_the_kernel(pyaya_project: PyayaProject, tmp_path: Path) -> None:
    needs_tp_btf()
    if TRACEPOINT != "sched_process_exec":
        pytest.skip(f"this test execs a program; write a trigger for {TRACEPOINT}")
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
    assert result.events_where(pid=other.pid) == []
    # Counted in the kernel after the filter: the one exec of the watched process is all there is.
    assert result.entries("EXEC_COUNTS") == [{"uid": os.getuid(), "execs": 1}]
