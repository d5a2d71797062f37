"""Proves {{name}} works on this machine: it builds, loads on the LSM hook
`{{lsm_hook|py}}`, reports the checks of what this test does, and denies nothing.

Run with `sudo python -m pytest tests` from the project folder (the Python that has pyaya installed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pyaya import features

PROJECT = Path(__file__).resolve().parent.parent
HOOK = "{{lsm_hook|py}}"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="loading BPF programs needs root (or CAP_BPF and CAP_PERFMON)"
)


def pyaya(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pyaya", *args], text=True, **kwargs)


def test_builds() -> None:
    build = pyaya("build", str(PROJECT), stdout=subprocess.PIPE)
    out, _ = build.communicate(timeout=600)
    assert build.returncode == 0
    assert Path(out.strip()).is_file()


def test_checks_are_reported_and_allowed(tmp_path: Path) -> None:
    supported, reason = features.btf_program_supported("Lsm", HOOK)
    if not supported:
        pytest.skip(f"BPF LSM programs cannot be loaded and attached here: {reason}")
    # A uniquely named executable, run three times: each exec is checked (bprm_check_security) and opens it
    # (file_open); every run must still succeed.
    probe = tmp_path / f"lsm-{os.getpid()}"
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
        assert child.wait() == 0
    output, errors = runner.communicate(timeout=120)
    assert runner.returncode == 0, errors
    records = [json.loads(line) for line in output.splitlines()]
    events = [r["data"] for r in records if r["kind"] == "event" and r["data"]["pid"] in pids]
    assert {event["pid"] for event in events} == set(pids)
    assert all(event["decision"] == 0 for event in events)
    names = {event["name"] for event in events}
    if HOOK == "bprm_check_security":
        assert names == {str(probe)}
    elif HOOK == "file_open":
        assert probe.name in names
    totals = {r["map"]: r["entries"] for r in records if r["kind"] == "map" and "entries" in r}
    assert {entry["pid"] for entry in totals["CHECKS"]} >= set(pids)
