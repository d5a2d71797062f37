"""Proves {{name}} works on this machine: it builds, traces
`{{usdt_probe|py}}` in `{{uprobe_target|py}}`, and reports the hits of
processes this test starts.

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

PROJECT = Path(__file__).resolve().parent.parent
#: The longest a run lasts if nothing stops it (each test stops its run once its trigger is done).
RUN_LIMIT_S = "60"
TARGET = "{{uprobe_target|py}}"
PROBE = "{{usdt_probe|py}}"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="loading BPF programs needs root (or CAP_BPF and CAP_PERFMON)"
)


def needs_default_probe() -> None:
    if PROBE != "python:import__find__load__start":
        pytest.skip(f"this test imports a module in Python; write a trigger for {PROBE} in {TARGET}")


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


# The module name is made up: a failed import still looks for it (and fires the probe with its name).
IMPORT = """\
import sys
sys.stdin.readline()
try:
    import pyaya_usdt_template_marker
except ImportError:
    pass
"""


def python(**kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([TARGET, "-c", IMPORT], text=True, stdin=subprocess.PIPE, **kwargs)


def test_builds() -> None:
    build = pyaya("build", str(PROJECT), stdout=subprocess.PIPE)
    out, _ = build.communicate(timeout=600)
    assert build.returncode == 0
    assert Path(out.strip()).is_file()


def test_reports_each_hit_with_its_arguments() -> None:
    needs_default_probe()
    runner = start()
    child = python()
    child.communicate("go\n", timeout=30)
    records = finish(runner)
    hits = events_of(records, child.pid)
    assert ["pyaya_usdt_template_marker"] in [hit["args"] for hit in hits]
    assert all(hit["probe"] == PROBE for hit in hits)


def test_pid_filter() -> None:
    needs_default_probe()
    watched = python()
    other = python()
    runner = start("-p", str(watched.pid))
    watched.communicate("go\n", timeout=30)
    other.communicate("go\n", timeout=30)
    records = finish(runner)
    assert ["pyaya_usdt_template_marker"] in [hit["args"] for hit in events_of(records, watched.pid)]
    assert events_of(records, other.pid) == []
