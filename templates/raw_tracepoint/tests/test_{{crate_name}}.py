"""Proves {{name}} works on this machine: it builds, attaches to
`{{tracepoint_name|py}}`, and counts the system calls of a process this test starts.

Run with `sudo python -m pytest tests` from the project folder (the Python that has pyaya installed: its
`pyaya_project` fixture builds and runs the project).
"""

from __future__ import annotations

import os
import subprocess
import sys

from pyaya.testing import PyayaProject, RunResult

CALLS = 3000
TRACEPOINT = "{{tracepoint_name|py}}"


def run_while(pyaya_project: PyayaProject, trigger: list[str], *args: str) -> tuple[RunResult, int]:
    """Run the project for 3 s while `trigger` runs; return what it printed and the trigger's pid. (The template
    reports per interval: a run stopped right after its trigger would have no report yet.)"""
    with pyaya_project.run(*args, duration=3) as run:
        child = subprocess.Popen(trigger)
        child.wait()
        return run.result(), child.pid


def test_builds(pyaya_project: PyayaProject) -> None:
    assert pyaya_project.build().is_file()


def test_counts_the_calls_of_a_process(pyaya_project: PyayaProject) -> None:
    # getppid() is one system call each time, and nothing in the interpreter caches it.
    trigger = [sys.executable, "-c", f"import os\nfor _ in range({CALLS}): os.getppid()"]
    result, pid = run_while(pyaya_project, trigger)
    assert result.events, "no interval report"
    counted = [entry["count"] for entry in result.entries("PROCESS_COUNTS") if entry["pid"] == pid]
    assert counted, f"nothing counted for pid {pid}"
    # Reports show the busiest processes of each interval: the trigger when this machine is quiet enough.
    reported = sum(report["count"] for report in result.events_where(pid=pid))
    assert reported <= counted[0]
    if TRACEPOINT == "sys_enter":
        assert counted[0] >= CALLS


def test_pid_filter_counts_only_that_process(pyaya_project: PyayaProject) -> None:
    result, _ = run_while(pyaya_project, [sys.executable, "-c", "pass"], "-p", str(os.getpid()))
    assert {entry["pid"] for entry in result.entries("PROCESS_COUNTS")} <= {os.getpid()}


def test_interval_count_ends_the_run(pyaya_project: PyayaProject) -> None:
    with pyaya_project.run("--interval", "0.5", "--count", "2") as run:
        result = run.result(timeout=30)  # the second report ends the run, long before its --duration
    assert result.entries("PROCESS_COUNTS"), "no totals at exit"
