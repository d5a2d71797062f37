"""Proves {{name}} works on this machine: it builds, times
`{{function|py}}`, and reports a slow call that a process this test starts makes (a read from a
pipe that stays empty for a while).

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
from pyaya import features

PROJECT = Path(__file__).resolve().parent.parent
#: The longest a run lasts if nothing stops it (each test stops its run once its trigger is done).
RUN_LIMIT_S = "60"
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


def needs_kprobes() -> None:
    supported, reason = features.kprobes_supported()
    if not supported:
        pytest.skip(f"kprobes cannot be attached here: {reason}")
    if FUNCTION not in READ_FUNCTIONS:
        pytest.skip("this test makes a slow read(); write a trigger for {{function|py}}")


def test_reports_a_slow_call() -> None:
    needs_kprobes()
    runner = start()
    child = python(SLOW_READ)
    assert child.wait() == 0
    records = finish(runner)
    # The pipe read is slow; the interpreter's own start-up reads may be too on a cold cache.
    slow = events_of(records, child.pid)
    assert any(call["latency_ms"] >= WAIT_S * 1000 * 0.9 for call in slow)
    totals = {r["map"]: r["entries"] for r in records if r["kind"] == "map" and "entries" in r}
    assert any(entry["pid"] == child.pid and entry["calls"] >= 1 for entry in totals["CALLS"])


def test_pid_filter() -> None:
    needs_kprobes()
    runner = start("-p", str(os.getpid()))
    child = python(SLOW_READ)
    assert child.wait() == 0
    records = finish(runner)
    totals = {r["map"]: r["entries"] for r in records if r["kind"] == "map" and "entries" in r}
    assert {entry["pid"] for entry in totals["CALLS"]} <= {os.getpid()}
