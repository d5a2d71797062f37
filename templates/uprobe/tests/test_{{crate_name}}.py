"""Proves {{name}} works on this machine: it builds, probes
`{{uprobe_function|py}}` in `{{uprobe_target|py}}`, and reports the calls of
processes this test starts.

Run with `sudo python -m pytest tests` from the project folder (the Python that has pyaya installed: its
`pyaya_project` fixture builds and runs the project).
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from pyaya.testing import PyayaProject

TARGET = "{{uprobe_target|py}}"
FUNCTION = "{{uprobe_function|py}}"

needs_getaddrinfo = pytest.mark.skipif(
    (TARGET, FUNCTION) != ("libc", "getaddrinfo"),
    reason="this test calls libc's getaddrinfo; write a trigger for {{uprobe_function|py}} in {{uprobe_target|py}}",
)


def python(code: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code], text=True, **kwargs)


def test_builds(pyaya_project: PyayaProject) -> None:
    assert pyaya_project.build().is_file()


@needs_getaddrinfo
def test_reports_each_call(pyaya_project: PyayaProject) -> None:
    with pyaya_project.run() as run:
        # Python's socket.getaddrinfo calls libc's; a numeric-only lookup of a name fails at once with EAI_NONAME.
        child = python(
            "import socket\n"
            "socket.getaddrinfo('localhost', 80)\n"
            "try:\n"
            "    socket.getaddrinfo('pyaya-not-numeric', 80, flags=socket.AI_NUMERICHOST)\n"
            "except socket.gaierror:\n"
            "    pass\n"
        )
        assert child.wait() == 0
        result = run.stop()
    calls = result.events_where(pid=child.pid)
    assert [call["arg"] for call in calls] == ["localhost", "pyaya-not-numeric"]
    assert calls[0]["ret"] == 0
    assert calls[1]["ret"] < 0  # EAI_NONAME
    assert all(call["latency_ms"] >= 0 for call in calls)
    assert {"pid": child.pid, "calls": 2} in result.entries("CALLS")


@needs_getaddrinfo
def test_pid_filter(pyaya_project: PyayaProject) -> None:
    code = "import socket, sys\nsys.stdin.readline()\nsocket.getaddrinfo('localhost', 80)\n"
    with (
        python(code, stdin=subprocess.PIPE) as watched,
        python(code, stdin=subprocess.PIPE) as other,
        pyaya_project.run("-p", str(watched.pid)) as run,
    ):
        watched.communicate("go\n", timeout=30)
        other.communicate("go\n", timeout=30)
        result = run.stop()
    assert len(result.events_where(pid=watched.pid)) == 1
    assert result.events_where(pid=other.pid) == []


def test_interval_count_prints_a_histogram_each_interval_then_stops(pyaya_project: PyayaProject) -> None:
    with pyaya_project.run("--interval", "0.5", "--count", "2") as run:
        result = run.result(timeout=30)  # the second interval ends the run
    histograms = [record for record in result.records if record["kind"] == "map" and record["map"] == "LATENCY_NS"]
    assert [histogram["histogram"] for histogram in histograms] == ["log2", "log2"]
