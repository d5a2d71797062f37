"""Proves {{name}} works on this machine: it builds, loads, and reports execs this test
makes itself.

Run with `sudo python -m pytest tests` from the project folder (the Python that has pyaya installed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="loading BPF programs needs root (or CAP_BPF and CAP_PERFMON)"
)


def pyaya(*args: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pyaya", *args], text=True, **kwargs)  # type: ignore[call-overload]


def test_builds() -> None:
    build = pyaya("build", str(PROJECT), stdout=subprocess.PIPE)
    out, _ = build.communicate(timeout=600)
    assert build.returncode == 0
    assert Path(out.strip()).is_file()


def test_each_exec_is_reported(tmp_path: Path) -> None:
    # A uniquely named executable, so its events can't be confused with anything else running.
    probe = tmp_path / f"{{crate_name}}-probe-{os.getpid()}"
    shutil.copy("/bin/true", probe)
    runner = pyaya("run", str(PROJECT), "--json", "--duration", "4", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert runner.stderr is not None
    for line in runner.stderr:  # "... is running" once the program is attached
        if "is running" in line:
            break
    pids = []
    for _ in range(3):
        child = subprocess.Popen([str(probe)])
        pids.append(child.pid)
        child.wait()
    output, _ = runner.communicate(timeout=120)
    assert runner.returncode == 0
    records = [json.loads(line) for line in output.splitlines()]
    seen = [r["data"] for r in records if r["kind"] == "event" and r["data"]["filename"] == str(probe)]
    assert sorted(event["pid"] for event in seen) == sorted(pids)
    assert all(event["ppid"] == os.getpid() for event in seen)
