"""Proves {{name}} works on this machine: it builds, traces
`{{usdt_probe|py}}` in `{{uprobe_target|py}}`, and reports the hits of
processes this test starts.

Run with `sudo python -m pytest tests` from the project folder (the Python that has pyaya installed: its
`pyaya_project` fixture builds and runs the project).
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from pyaya.testing import PyayaProject

TARGET = "{{uprobe_target|py}}"
PROBE = "{{usdt_probe|py}}"

needs_default_probe = pytest.mark.skipif(
    PROBE != "python:import__find__load__start",
    reason=f"this test imports a module in Python; write a trigger for {PROBE} in {TARGET}",
)

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


def test_builds(pyaya_project: PyayaProject) -> None:
    assert pyaya_project.build().is_file()


@needs_default_probe
def test_reports_each_hit_with_its_arguments(pyaya_project: PyayaProject) -> None:
    with pyaya_project.run() as run:
        child = python()
        child.communicate("go\n", timeout=30)
        result = run.stop()
    hits = result.events_where(pid=child.pid)
    assert ["pyaya_usdt_template_marker"] in [hit["args"] for hit in hits]
    assert all(hit["probe"] == PROBE for hit in hits)


@needs_default_probe
def test_pid_filter(pyaya_project: PyayaProject) -> None:
    with python() as watched, python() as other, pyaya_project.run("-p", str(watched.pid)) as run:
        watched.communicate("go\n", timeout=30)
        other.communicate("go\n", timeout=30)
        result = run.stop()
    hits = result.events_where(pid=watched.pid)
    assert ["pyaya_usdt_template_marker"] in [hit["args"] for hit in hits]
    assert result.events_where(pid=other.pid) == []
