"""Proves {{name}} works on this machine: it builds, attaches to
`{{tracepoint_name|py}}`, and counts the system calls of a process this test starts.

Run with `sudo python -m pytest tests` from the project folder (the Python that has pyaya installed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PROJECT = Path(__file__).resolve().parent.parent
CALLS = 3000
TRACEPOINT = "{{tracepoint_name|py}}"

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
        command = [sys.executable, str(PROJECT / "main.py"), "--json", "--duration", "3", *main_args]
        runner = subprocess.Popen(command, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    else:
        runner = pyaya("run", str(PROJECT), "--json", "--duration", "3", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert runner.stderr is not None
    for line in runner.stderr:  # "... is running" once the program is attached
        if "is running" in line:
            break
    return runner


def finish(runner: subprocess.Popen[str]) -> list[dict[str, Any]]:
    """Wait for the run to end; return its JSON records."""
    output, errors = runner.communicate(timeout=120)
    assert runner.returncode == 0, errors
    return [json.loads(line) for line in output.splitlines()]


def run_while(trigger: list[str], *main_args: str) -> tuple[list[dict[str, Any]], int]:
    """Run the project while `trigger` runs; return the project's JSON records and the trigger's pid."""
    runner = start(*main_args)
    child = subprocess.Popen(trigger)
    child.wait()
    return finish(runner), child.pid


def test_builds() -> None:
    build = pyaya("build", str(PROJECT), stdout=subprocess.PIPE)
    out, _ = build.communicate(timeout=600)
    assert build.returncode == 0
    assert Path(out.strip()).is_file()


def test_counts_the_calls_of_a_process() -> None:
    # getppid() is one system call each time, and nothing in the interpreter caches it.
    trigger = [sys.executable, "-c", f"import os\nfor _ in range({CALLS}): os.getppid()"]
    records, pid = run_while(trigger)
    reports = [r["data"] for r in records if r["kind"] == "event"]
    assert reports, "no interval report"
    totals = {r["map"]: r["entries"] for r in records if r["kind"] == "map" and "entries" in r}
    counted = [entry["count"] for entry in totals["PROCESS_COUNTS"] if entry["pid"] == pid]
    assert counted, f"nothing counted for pid {pid}"
    # Reports show the busiest processes of each interval: the trigger when this machine is quiet enough.
    reported = sum(report["count"] for report in reports if report["pid"] == pid)
    assert reported <= counted[0]
    if TRACEPOINT == "sys_enter":
        assert counted[0] >= CALLS


def test_pid_filter_counts_only_that_process() -> None:
    records, _ = run_while([sys.executable, "-c", "pass"], "-p", str(os.getpid()))
    totals = {r["map"]: r["entries"] for r in records if r["kind"] == "map" and "entries" in r}
    assert {entry["pid"] for entry in totals["PROCESS_COUNTS"]} <= {os.getpid()}
