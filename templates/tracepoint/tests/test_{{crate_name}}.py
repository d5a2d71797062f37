"""Proves {{name}} works on this machine: builds, loads, and sees an exec it makes itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="loading BPF programs needs root")


def test_exec_is_reported() -> None:
    # A uniquely named executable, so the event can't be confused with anything else running.
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / f"{{crate_name}}-probe-{os.getpid()}"
        shutil.copy("/bin/true", probe)
        runner = subprocess.Popen(
            [sys.executable, "-m", "pyaya", "run", str(PROJECT), "--json", "--duration", "6"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            import time

            time.sleep(3)
            pids = []
            for _ in range(3):
                child = subprocess.Popen([str(probe)])
                pids.append(child.pid)
                child.wait()
            output, _ = runner.communicate(timeout=120)
        finally:
            runner.kill()
    assert runner.returncode == 0
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    seen = {e["data"]["pid"] for e in events if e["kind"] == "event" and e["data"]["filename"] == str(probe)}
    assert set(pids) <= seen
