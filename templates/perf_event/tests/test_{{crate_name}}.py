"""Proves {{name}} works on this machine: it builds, samples every CPU, and shows the
stacks of a busy process this test starts, resolved to kernel and user function names.

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


def events_of(records: list[dict[str, Any]], pid: int) -> list[dict[str, Any]]:
    return [r["data"] for r in records if r["kind"] == "event" and r["data"]["pid"] == pid]


def resolved(frames: list[str]) -> bool:
    """Whether some frame has a function name (unresolved ones are shown as [file] or [unknown])."""
    return any(not frame.startswith("[") for frame in frames)


def test_builds() -> None:
    build = pyaya("build", str(PROJECT), stdout=subprocess.PIPE)
    out, _ = build.communicate(timeout=600)
    assert build.returncode == 0
    assert Path(out.strip()).is_file()


def profile_while_busy(*main_args: str) -> tuple[list[dict[str, Any]], int]:
    """Profile while dd copies /dev/zero to /dev/null; return the records and dd's pid. dd spends its time in read()
    and write() system calls, so both its kernel and its user stacks have frames."""
    runner = start(*main_args)
    busy = subprocess.Popen(["dd", "if=/dev/zero", "of=/dev/null", "bs=64k"], stderr=subprocess.DEVNULL)
    try:
        return finish(runner), busy.pid
    finally:
        busy.kill()
        busy.wait()


def test_profiles_a_busy_process() -> None:
    records, pid = profile_while_busy("--top", "1000")
    # A sample can land between the fork and the exec of dd, while its pid still has this Python's name.
    stacks = [stack for stack in events_of(records, pid) if stack["comm"] == "dd"]
    assert stacks, f"no samples of dd (pid {pid})"
    assert all(stack["stack"].startswith("dd;") for stack in stacks)
    assert sum(stack["count"] for stack in stacks) >= 10  # 49 Hz for most of 3 s on a busy CPU
    assert any(resolved(stack["kernel_stack"]) for stack in stacks)
    assert any(resolved(stack["user_stack"]) for stack in stacks)


def test_pid_filter() -> None:
    records, _ = profile_while_busy("-p", str(os.getpid()))
    assert {r["data"]["pid"] for r in records if r["kind"] == "event"} <= {os.getpid()}
