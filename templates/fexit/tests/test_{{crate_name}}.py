"""Proves {{name}} works on this machine: it builds, probes the return of
`{{function|py}}`, and reports the failure of a call that a process this test starts makes
(reading a directory fails with EISDIR).

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
#: A read of a directory: vfs_read returns -EISDIR.
FAILING_READ = """
import os
fd = os.open("/", os.O_RDONLY)
try:
    os.read(fd, 1)
except IsADirectoryError:
    pass
"""


def needs_fexit() -> None:
    supported, reason = features.btf_program_supported("FExit", FUNCTION)
    if not supported:
        pytest.skip(f"fexit programs cannot be loaded and attached here: {reason}")
    if FUNCTION not in READ_FUNCTIONS:
        pytest.skip("this test makes a read() fail; write a trigger for {{function|py}}")


def failing_read_while_running(pyaya_project: PyayaProject, *args: str) -> tuple[RunResult, int]:
    """Run the project while a process makes a read fail, then stop it as Ctrl-C does (a fixed --duration raced
    the trigger's start on slow machines); return what it printed and the reader's pid."""
    with pyaya_project.run(*args) as run:
        child = subprocess.Popen([sys.executable, "-c", FAILING_READ])
        assert child.wait() == 0
        return run.stop(), child.pid


def test_builds(pyaya_project: PyayaProject) -> None:
    assert pyaya_project.build().is_file()


def test_reports_a_failure(pyaya_project: PyayaProject) -> None:
    needs_fexit()
    result, pid = failing_read_while_running(pyaya_project)
    assert (21, "EISDIR") in [(failure["errno"], failure["error"]) for failure in result.events_where(pid=pid)]
    assert any(entry["errno"] == 21 and entry["calls"] >= 1 for entry in result.entries("ERRORS"))
    assert any(entry["pid"] == pid and entry["calls"] >= 1 for entry in result.entries("CALLS"))


def test_pid_filter(pyaya_project: PyayaProject) -> None:
    needs_fexit()
    result, pid = failing_read_while_running(pyaya_project, "-p", str(os.getpid()))
    assert result.events_where(pid=pid) == []
    assert {entry["pid"] for entry in result.entries("CALLS")} <= {os.getpid()}
