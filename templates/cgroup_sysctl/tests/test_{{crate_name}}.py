"""Proves {{name}} works on this machine: a process this test puts in a cgroup of its
own reads one sysctl and writes another (its current value back, so nothing changes); the program reports both and
allows them.

Run with `sudo python -m pytest tests` from the project folder (the Python that has pyaya installed: its
`pyaya_project` fixture builds and runs the project, `bpf_object` loads it).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pyaya
import pytest
from pyaya.kernel import cgroup2_mount
from pyaya.testing import Cgroup, PyayaProject

PROJECT = Path(__file__).resolve().parent.parent


def load_main() -> ModuleType:
    """The project's main.py as a module, for its record mirror and helpers."""
    spec = importlib.util.spec_from_file_location("{{crate_name}}_main", PROJECT / "main.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


main = load_main()


@pytest.fixture(scope="module")
def object_path(pyaya_project: PyayaProject) -> Path:
    return pyaya_project.build()


@pytest.fixture
def bpf(bpf_object: Callable[..., pyaya.Ebpf], object_path: Path) -> pyaya.Ebpf:
    return bpf_object(object_path)


# Run by a process in the test's cgroup: a read, and a write of the value the sysctl already has.
SYSCTL_ACCESSES = """
import json, os
ostype = open("/proc/sys/kernel/ostype").read()
ratelimit = open("/proc/sys/kernel/printk_ratelimit").read()
with open("/proc/sys/kernel/printk_ratelimit", "w") as file:
    file.write(ratelimit)
print(json.dumps({"pid": os.getpid(), "ostype": ostype.strip(), "ratelimit": ratelimit.strip()}))
"""


def accesses_in(path: Path) -> dict[str, object]:
    """Runs SYSCTL_ACCESSES in a child process moved into the cgroup at `path` before it starts."""

    def enter_cgroup() -> None:
        (path / "cgroup.procs").write_text("0")  # "0": the writing process itself

    child = subprocess.run(
        [sys.executable, "-c", SYSCTL_ACCESSES], capture_output=True, text=True, preexec_fn=enter_cgroup, check=True
    )
    result: dict[str, object] = json.loads(child.stdout)
    return result


def test_reports_reads_and_writes_and_allows_them(bpf: pyaya.Ebpf, cgroup: Cgroup) -> None:
    with bpf.programs["{{crate_name}}"].attach(str(cgroup.path)):
        child = accesses_in(cgroup.path)  # check=True: every access succeeded
    events = [main.event_fields(r) for r in bpf.maps["EVENTS"].typed(main.SysctlEvent).drain(timeout=1)]
    ours = [(e["access"], e["sysctl"], e["value"], e["new_value"]) for e in events if e["pid"] == child["pid"]]
    assert ours == [
        ("read", "kernel.ostype", child["ostype"], ""),
        ("read", "kernel.printk_ratelimit", child["ratelimit"], ""),
        ("write", "kernel.printk_ratelimit", child["ratelimit"], child["ratelimit"]),
    ]
    counts = dict(main.AccessCounts(bpf.maps["ACCESSES"]).items())
    assert counts == {"read kernel.ostype": 1, "read kernel.printk_ratelimit": 1, "write kernel.printk_ratelimit": 1}


def test_pyaya_run_logs_sysctl_accesses_in_the_root_cgroup(pyaya_project: PyayaProject) -> None:
    with pyaya_project.run(duration=3) as run:
        pid = accesses_in(cgroup2_mount())["pid"]
        result = run.result()
    assert [(e["access"], e["sysctl"]) for e in result.events_where(pid=pid)] == [
        ("read", "kernel.ostype"),
        ("read", "kernel.printk_ratelimit"),
        ("write", "kernel.printk_ratelimit"),
    ]
    assert {entry["access"]: entry["count"] for entry in result.entries("ACCESSES")}["read kernel.ostype"] >= 1
