"""Proves {{name}} works on this machine: it builds, probes the return of
`{{uprobe_function|py}}` in `{{uprobe_target|py}}`, and reports the lines typed
into an interactive bash this test drives through a pseudo-terminal.

Run with `sudo python -m pytest tests` from the project folder (the Python that has pyaya installed: its
`pyaya_project` fixture builds and runs the project).
"""

from __future__ import annotations

import os
import pty
import subprocess
import time

import pytest
from pyaya.testing import PyayaProject

TARGET = "{{uprobe_target|py}}"
FUNCTION = "{{uprobe_function|py}}"


def type_into_bash(*lines: str) -> int:
    """Start an interactive bash on a new pseudo-terminal, type `lines` and `exit`; return its pid."""
    controller, terminal = pty.openpty()
    bash = subprocess.Popen(
        [TARGET, "--norc", "--noprofile", "-i"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TERM": "dumb", "HOME": "/"},
    )
    os.close(terminal)
    try:
        for line in (*lines, "exit"):
            os.write(controller, line.encode() + b"\n")
            time.sleep(0.2)
        bash.wait(timeout=30)
    finally:
        os.close(controller)
    return bash.pid


def test_builds(pyaya_project: PyayaProject) -> None:
    assert pyaya_project.build().is_file()


needs_bash = pytest.mark.skipif(
    not (TARGET.endswith("/bash") and FUNCTION == "readline"),
    reason="this test types into bash; write a trigger for {{uprobe_function|py}} in {{uprobe_target|py}}",
)


@needs_bash
def test_reports_each_line(pyaya_project: PyayaProject) -> None:
    marker = f"echo pyaya-{os.getpid()}"
    with pyaya_project.run() as run:
        pid = type_into_bash(marker, "true")
        result = run.stop()
    lines = result.events_where(pid=pid)
    assert [line["line"] for line in lines] == [marker, "true", "exit"]
    assert all(line["uid"] == os.getuid() for line in lines)
    assert {"pid": pid, "lines": 3} in result.entries("LINES")


@needs_bash
def test_pid_filter(pyaya_project: PyayaProject) -> None:
    # The filter needs a pid before the probe is attached: this test's own, which reads no lines.
    with pyaya_project.run("-p", str(os.getpid())) as run:
        pid = type_into_bash("true")
        result = run.stop()
    assert result.events_where(pid=pid) == []
