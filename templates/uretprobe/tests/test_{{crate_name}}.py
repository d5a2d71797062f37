"""Proves {{name}} works on this machine: it builds, probes the return of
`{{uprobe_function|py}}` in `{{uprobe_target|py}}`, and reports the lines typed
into an interactive bash this test drives through a pseudo-terminal.

Run with `sudo python -m pytest tests` from the project folder (the Python that has pyaya installed).
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
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


def test_builds() -> None:
    build = pyaya("build", str(PROJECT), stdout=subprocess.PIPE)
    out, _ = build.communicate(timeout=600)
    assert build.returncode == 0
    assert Path(out.strip()).is_file()


needs_bash = pytest.mark.skipif(
    not (TARGET.endswith("/bash") and FUNCTION == "readline"),
    reason="this test types into bash; write a trigger for {{uprobe_function|py}} in {{uprobe_target|py}}",
)


@needs_bash
def test_reports_each_line() -> None:
    runner = start()
    marker = f"echo pyaya-{os.getpid()}"
    pid = type_into_bash(marker, "true")
    records = finish(runner)
    lines = events_of(records, pid)
    assert [line["line"] for line in lines] == [marker, "true", "exit"]
    assert all(line["uid"] == os.getuid() for line in lines)
    totals = {r["map"]: r["entries"] for r in records if r["kind"] == "map" and "entries" in r}
    assert {"pid": pid, "lines": 3} in totals["LINES"]


@needs_bash
def test_pid_filter() -> None:
    # The filter needs a pid before the probe is attached: this test's own, which reads no lines.
    runner = start("-p", str(os.getpid()))
    pid = type_into_bash("true")
    records = finish(runner)
    assert events_of(records, pid) == []
