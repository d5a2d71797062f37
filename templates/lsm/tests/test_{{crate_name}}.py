"""Proves {{name}} works on this machine: it builds, loads on the LSM hook
`{{lsm_hook|py}}`, reports the checks of what this test does, and denies nothing; with -p PID, it reports only
that process's checks.

Run with `sudo python -m pytest tests` from the project folder (the Python that has pyaya installed: its
`pyaya_project` fixture builds and runs the project).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pyaya import features
from pyaya.testing import PyayaProject

HOOK = "{{lsm_hook|py}}"
# Waits for a line on stdin, then becomes the program in argv[1]: an exec by a process whose pid is known before.
EXEC_WHEN_TOLD = "import os, sys\nsys.stdin.readline()\nos.execv(sys.argv[1], [sys.argv[1]])\n"


def needs_lsm() -> None:
    supported, reason = features.btf_program_supported("Lsm", HOOK)
    if not supported:
        pytest.skip(f"BPF LSM programs cannot be loaded and attached here: {reason}")


def probe_program(folder: Path) -> Path:
    """A uniquely named executable: each exec of it is checked (bprm_check_security) and opens it (file_open)."""
    probe = folder / f"lsm-{os.getpid()}"
    shutil.copy("/bin/true", probe)
    return probe


def exec_when_told(probe: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", EXEC_WHEN_TOLD, str(probe)], stdin=subprocess.PIPE, text=True)


def test_builds(pyaya_project: PyayaProject) -> None:
    assert pyaya_project.build().is_file()


def test_checks_are_reported_and_allowed(pyaya_project: PyayaProject, tmp_path: Path) -> None:
    needs_lsm()
    probe = probe_program(tmp_path)
    pids = []
    with pyaya_project.run(duration=4) as run:
        for _ in range(3):  # every run must still succeed
            child = subprocess.Popen([str(probe)])
            pids.append(child.pid)
            assert child.wait() == 0
        result = run.result()
    events = [event for event in result.events if event["pid"] in pids]
    assert {event["pid"] for event in events} == set(pids)
    assert all(event["decision"] == 0 for event in events)
    names = {event["name"] for event in events}
    if HOOK == "bprm_check_security":
        assert names == {str(probe)}
    elif HOOK == "file_open":
        assert probe.name in names
    assert {entry["pid"] for entry in result.entries("CHECKS")} >= set(pids)


def test_pid_filter_drops_other_processes_in_the_kernel(pyaya_project: PyayaProject, tmp_path: Path) -> None:
    needs_lsm()
    if HOOK not in ("bprm_check_security", "file_open"):
        pytest.skip(f"this test execs a program; write a trigger for {HOOK}")
    probe = probe_program(tmp_path)
    with (
        exec_when_told(probe) as watched,
        exec_when_told(probe) as other,
        pyaya_project.run("-p", str(watched.pid), duration=4) as run,
    ):
        watched.communicate("go\n", timeout=30)
        other.communicate("go\n", timeout=30)
        result = run.result()
    assert watched.returncode == other.returncode == 0  # the filtered-out exec is allowed too
    assert result.events_where(pid=watched.pid)
    # Counted in the kernel after the filter: no other process has an entry.
    assert {event["pid"] for event in result.events} == {watched.pid}
    assert {entry["pid"] for entry in result.entries("CHECKS")} == {watched.pid}
