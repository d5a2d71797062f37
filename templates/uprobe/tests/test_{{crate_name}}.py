"""Proves {{name}} works on this machine: it builds, probes
`{{uprobe_function|py}}` in `{{uprobe_target|py}}`, and reports the calls of
processes this test starts.

Run with `sudo python -m pytest tests` from the project folder (the Python that has pyaya installed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PROJECT = Path(__file__).resolve().parent.parent
#: The longest a run lasts if nothing stops it (each test stops its run once its trigger is done).
RUN_LIMIT_S = "60"
TARGET = "{{uprobe_target|py}}"
FUNCTION = "{{uprobe_function|py}}"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="loading BPF programs needs root (or CAP_BPF and CAP_PERFMON)"
)


def pyaya(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pyaya", *args], text=True, **kwargs)


def start(*main_args: str) -> subprocess.Popen[str]:
    """Start the project with --json and wait until it is attached.

    `pyaya run` builds it when stale; with `main_args` (main.py's own options, such as -p PID), main.py runs
    directly after `pyaya build`."""
    if main_args:
        assert pyaya("build", str(PROJECT), stdout=subprocess.DEVNULL).wait(timeout=600) == 0
        command = [sys.executable, str(PROJECT / "main.py"), "--json", "--duration", RUN_LIMIT_S, *main_args]
        runner = subprocess.Popen(command, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    else:
        runner = pyaya(
            "run", str(PROJECT), "--json", "--duration", RUN_LIMIT_S, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    assert runner.stderr is not None
    for line in runner.stderr:  # "... is running" once the program is attached
        if "is running" in line:
            break
    return runner


def finish(runner: subprocess.Popen[str]) -> list[dict[str, Any]]:
    """End the run as Ctrl-C does, now that the trigger is done, and return its JSON records. (A fixed --duration
    raced the trigger's start on slow machines; the run still ends by itself after RUN_LIMIT_S.)"""
    runner.send_signal(signal.SIGINT)
    output, errors = runner.communicate(timeout=120)
    assert runner.returncode == 0, errors
    return [json.loads(line) for line in output.splitlines()]


def events_of(records: list[dict[str, Any]], pid: int) -> list[dict[str, Any]]:
    return [r["data"] for r in records if r["kind"] == "event" and r["data"]["pid"] == pid]


def python(code: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code], text=True, **kwargs)


def test_builds() -> None:
    build = pyaya("build", str(PROJECT), stdout=subprocess.PIPE)
    out, _ = build.communicate(timeout=600)
    assert build.returncode == 0
    assert Path(out.strip()).is_file()


def test_reports_each_call() -> None:
    if (TARGET, FUNCTION) != ("libc", "getaddrinfo"):
        pytest.skip("this test calls libc's getaddrinfo; write a trigger for {{uprobe_function|py}} in {{uprobe_target|py}}")
    runner = start()
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
    records = finish(runner)
    calls = events_of(records, child.pid)
    assert [call["arg"] for call in calls] == ["localhost", "pyaya-not-numeric"]
    assert calls[0]["ret"] == 0
    assert calls[1]["ret"] < 0  # EAI_NONAME
    assert all(call["latency_ms"] >= 0 for call in calls)
    totals = {r["map"]: r["entries"] for r in records if r["kind"] == "map" and "entries" in r}
    assert {"pid": child.pid, "calls": 2} in totals["CALLS"]


def test_pid_filter() -> None:
    if (TARGET, FUNCTION) != ("libc", "getaddrinfo"):
        pytest.skip("this test calls libc's getaddrinfo; write a trigger for {{uprobe_function|py}} in {{uprobe_target|py}}")
    code = "import socket, sys\nsys.stdin.readline()\nsocket.getaddrinfo('localhost', 80)\n"
    watched = python(code, stdin=subprocess.PIPE)
    other = python(code, stdin=subprocess.PIPE)
    assert watched.stdin is not None
    assert other.stdin is not None
    runner = start("-p", str(watched.pid))
    watched.communicate("go\n", timeout=30)
    other.communicate("go\n", timeout=30)
    records = finish(runner)
    assert len(events_of(records, watched.pid)) == 1
    assert events_of(records, other.pid) == []
