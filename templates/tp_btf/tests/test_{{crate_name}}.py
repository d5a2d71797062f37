"""Proves {{name}} works on this machine: it builds, loads on the BTF tracepoint
`{{btf_tracepoint|py}}`, and reports execs this test makes itself.

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
TRACEPOINT = "{{btf_tracepoint|py}}"

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


def test_each_exec_is_reported(tmp_path: Path) -> None:
    supported, reason = features.btf_program_supported("BtfTracePoint", TRACEPOINT)
    if not supported:
        pytest.skip(f"BTF tracepoints cannot be loaded and attached here: {reason}")
    # A uniquely named executable, so its events can't be confused with anything else running.
    probe = tmp_path / f"tpbtf-{os.getpid()}"
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
    output, errors = runner.communicate(timeout=120)
    assert runner.returncode == 0, errors
    records = [json.loads(line) for line in output.splitlines()]
    events = [r["data"] for r in records if r["kind"] == "event" and r["data"]["pid"] in pids]
    assert sorted(event["pid"] for event in events) == sorted(pids)
    assert all(event["comm"] == probe.name[:15] for event in events)
    assert all(event["uid"] == os.getuid() for event in events)
    if TRACEPOINT == "sched_process_exec":
        assert all(event["filename"] == str(probe) for event in events)
        assert all(event["old_pid"] == event["pid"] for event in events)
