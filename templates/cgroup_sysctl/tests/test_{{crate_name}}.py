"""Proves {{name}} works on this machine: a process this test puts in a cgroup of its
own reads one sysctl and writes another (its current value back, so nothing changes); the program reports both and
allows them.

Run with `sudo python -m pytest tests` from the project folder (the Python that has pyaya installed).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pyaya
import pytest
from pyaya.kernel import cgroup2_mount

PROJECT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="loading BPF programs needs root (or CAP_BPF and CAP_SYS_ADMIN)"
)


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
def object_path() -> Path:
    build = subprocess.run(
        [sys.executable, "-m", "pyaya", "build", str(PROJECT)], capture_output=True, text=True, timeout=900, check=False
    )
    assert build.returncode == 0, build.stderr
    path = Path(build.stdout.strip().splitlines()[-1])
    assert path.is_file()
    return path


@pytest.fixture
def bpf(object_path: Path) -> Iterator[pyaya.Ebpf]:
    with pyaya.Ebpf.load_file(object_path) as loaded:
        yield loaded


@pytest.fixture
def test_cgroup() -> Iterator[Path]:
    path = cgroup2_mount() / f"{{name}}-test-{os.getpid()}"
    path.mkdir()
    yield path
    path.rmdir()


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


def test_reports_reads_and_writes_and_allows_them(bpf: pyaya.Ebpf, test_cgroup: Path) -> None:
    with bpf.programs["{{crate_name}}"].attach(str(test_cgroup)):
        child = accesses_in(test_cgroup)  # check=True: every access succeeded
    events = [main.event_fields(main.SysctlEvent.from_buffer_copy(r)) for r in bpf.maps["EVENTS"].drain(timeout=1)]
    ours = [(e["access"], e["sysctl"], e["value"], e["new_value"]) for e in events if e["pid"] == child["pid"]]
    assert ours == [
        ("read", "kernel.ostype", child["ostype"], ""),
        ("read", "kernel.printk_ratelimit", child["ratelimit"], ""),
        ("write", "kernel.printk_ratelimit", child["ratelimit"], child["ratelimit"]),
    ]
    counts = dict(main.AccessCounts(bpf.maps["ACCESSES"]).items())
    assert counts == {"read kernel.ostype": 1, "read kernel.printk_ratelimit": 1, "write kernel.printk_ratelimit": 1}


def test_pyaya_run_logs_sysctl_accesses_in_the_root_cgroup() -> None:
    runner = subprocess.Popen(
        [sys.executable, "-m", "pyaya", "run", str(PROJECT), "--json", "--duration", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert runner.stderr is not None
    for line in runner.stderr:  # "... is running" once the program is attached
        if "is running" in line:
            break
    pid = accesses_in(cgroup2_mount())["pid"]
    output, _ = runner.communicate(timeout=120)
    assert runner.returncode == 0
    records = [json.loads(line) for line in output.splitlines()]
    ours = [r["data"] for r in records if r["kind"] == "event" and r["data"]["pid"] == pid]
    assert [(e["access"], e["sysctl"]) for e in ours] == [
        ("read", "kernel.ostype"),
        ("read", "kernel.printk_ratelimit"),
        ("write", "kernel.printk_ratelimit"),
    ]
    counts = next(r for r in records if r["kind"] == "map" and r["map"] == "ACCESSES")
    assert {entry["access"]: entry["count"] for entry in counts["entries"]}["read kernel.ostype"] >= 1
