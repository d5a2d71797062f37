"""Proves {{name}} works on this machine: it builds, samples every CPU, and shows the
stacks of a busy process this test starts, resolved to kernel and user function names.

Run with `sudo python -m pytest tests` from the project folder (the Python that has pyaya installed: its
`pyaya_project` fixture builds and runs the project).
"""

from __future__ import annotations

import os
import subprocess

from pyaya.testing import PyayaProject, RunResult


def resolved(frames: list[str]) -> bool:
    """Whether some frame has a function name (unresolved ones are shown as [file] or [unknown])."""
    return any(not frame.startswith("[") for frame in frames)


def profile_while_busy(pyaya_project: PyayaProject, *args: str) -> tuple[RunResult, int]:
    """Profile for 3 s while dd copies /dev/zero to /dev/null; return what the run printed and dd's pid. dd spends
    its time in read() and write() system calls, so both its kernel and its user stacks have frames."""
    with pyaya_project.run(*args, duration=3) as run:
        busy = subprocess.Popen(["dd", "if=/dev/zero", "of=/dev/null", "bs=64k"], stderr=subprocess.DEVNULL)
        try:
            return run.result(), busy.pid
        finally:
            busy.kill()
            busy.wait()


def test_builds(pyaya_project: PyayaProject) -> None:
    assert pyaya_project.build().is_file()


def test_profiles_a_busy_process(pyaya_project: PyayaProject) -> None:
    result, pid = profile_while_busy(pyaya_project, "--", "--top", "1000")
    # A sample can land between the fork and the exec of dd, while its pid still has this Python's name.
    stacks = result.events_where(pid=pid, comm="dd")
    assert stacks, f"no samples of dd (pid {pid})"
    assert all(stack["stack"].startswith("dd;") for stack in stacks)
    assert sum(stack["count"] for stack in stacks) >= 10  # 49 Hz for most of 3 s on a busy CPU
    assert any(resolved(stack["kernel_stack"]) for stack in stacks)
    assert any(resolved(stack["user_stack"]) for stack in stacks)


def test_pid_filter(pyaya_project: PyayaProject) -> None:
    result, _ = profile_while_busy(pyaya_project, "-p", str(os.getpid()))
    assert {event["pid"] for event in result.events} <= {os.getpid()}
