"""Proves {{name}} works on this machine: it builds, times
`{{function|py}}`, and reports a slow call that a process this test starts makes (a read from a
pipe that stays empty for a while).

Run with `sudo python -m pytest tests` from the project folder (the Python that has pyaya installed: its
`pyaya_project` fixture builds and runs the project).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pyaya import features
from pyaya.testing import PyayaProject, RunResult

FUNCTION = "{{function|py}}"

READ_FUNCTIONS = ("vfs_read", "ksys_read", "__x64_sys_read", "__arm64_sys_read", "pipe_read")
#: A read that waits WAIT_S seconds for its pipe's writer.
WAIT_S = 0.3
SLOW_READ = f"""
import os, time
r, w = os.pipe()
if os.fork() == 0:
    time.sleep({WAIT_S})
    os.write(w, b"x")
    os._exit(0)
os.read(r, 1)
os.wait()
"""


def needs_fentry() -> None:
    supported, reason = features.btf_program_supported("FEntry", FUNCTION)
    if not supported:
        pytest.skip(f"fentry programs cannot be loaded and attached here: {reason}")
    if FUNCTION not in READ_FUNCTIONS:
        pytest.skip("this test makes a slow read(); write a trigger for {{function|py}}")


def slow_read_while_running(pyaya_project: PyayaProject, *args: str) -> tuple[RunResult, int]:
    """Run the project while a process makes a slow read, then stop it as Ctrl-C does (a fixed --duration raced
    the trigger's start on slow machines); return what it printed and the reader's pid."""
    with pyaya_project.run(*args) as run:
        child = subprocess.Popen([sys.executable, "-c", SLOW_READ])
        assert child.wait() == 0
        return run.stop(), child.pid


def test_builds(pyaya_project: PyayaProject) -> None:
    assert pyaya_project.build().is_file()


def test_reports_a_slow_call(pyaya_project: PyayaProject) -> None:
    needs_fentry()
    result, pid = slow_read_while_running(pyaya_project)
    # The pipe read is slow; the interpreter's own start-up reads may be too on a cold cache.
    assert any(call["latency_ms"] >= WAIT_S * 1000 * 0.9 for call in result.events_where(pid=pid))
    assert any(entry["pid"] == pid and entry["calls"] >= 1 for entry in result.entries("CALLS"))


def test_pid_filter(pyaya_project: PyayaProject) -> None:
    needs_fentry()
    result, _ = slow_read_while_running(pyaya_project, "-p", str(os.getpid()))
    assert {entry["pid"] for entry in result.entries("CALLS")} <= {os.getpid()}
