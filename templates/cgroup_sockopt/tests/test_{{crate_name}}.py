"""Proves {{name}} works on this machine: a process this test puts in a cgroup of its
own sets and reads socket options; the program reports each {{sockopt_target|py}} call, and the
process sees exactly what it sees without it.

Run with `sudo python -m pytest tests` from the project folder (the Python that has pyaya installed: its
`pyaya_project` fixture builds and runs the project, `bpf_object` loads it).
"""

from __future__ import annotations

import importlib.util
import json
import os
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
TARGET = "{{sockopt_target|py}}"


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


# Run by a process in the test's cgroup. TCP_INFO is read into a buffer longer than a page (through libc: Python's
# getsockopt takes at most 1024 bytes), which the kernel does not copy for the program: the call must still return
# the kernel's answer.
SOCKET_OPTIONS = """
import ctypes, json, os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
rcvbuf = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
nodelay = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
libc = ctypes.CDLL(None, use_errno=True)
buffer = ctypes.create_string_buffer(5000)
length = ctypes.c_uint32(len(buffer))
if libc.getsockopt(s.fileno(), socket.IPPROTO_TCP, socket.TCP_INFO, buffer, ctypes.byref(length)) != 0:
    raise OSError(ctypes.get_errno(), "getsockopt(TCP_INFO)")
print(json.dumps({"pid": os.getpid(), "rcvbuf": rcvbuf, "nodelay": nodelay, "tcp_info": length.value}))
"""


def options_in(path: Path) -> dict[str, int]:
    """Runs SOCKET_OPTIONS in a child process moved into the cgroup at `path` before it starts."""

    def enter_cgroup() -> None:
        (path / "cgroup.procs").write_text("0")  # "0": the writing process itself

    child = subprocess.run(
        [sys.executable, "-c", SOCKET_OPTIONS], capture_output=True, text=True, preexec_fn=enter_cgroup, check=True
    )
    result: dict[str, int] = json.loads(child.stdout)
    return result


def test_reports_each_call_and_changes_nothing(bpf: pyaya.Ebpf, cgroup: Cgroup) -> None:
    without = options_in(cgroup.path)
    with bpf.programs["{{crate_name}}"].attach(str(cgroup.path)):
        seen = options_in(cgroup.path)
    assert {k: v for k, v in seen.items() if k != "pid"} == {k: v for k, v in without.items() if k != "pid"}
    events = [main.event_fields(r) for r in bpf.maps["EVENTS"].typed(main.SockoptEvent).drain(timeout=1)]
    calls = [(e["level"], e["option"], e["optlen"]) for e in events if e["pid"] == seen["pid"]]
    if TARGET == "setsockopt":
        assert calls == [("SOL_SOCKET", "SO_RCVBUF", 4), ("IPPROTO_TCP", "TCP_NODELAY", 4)]
    else:
        # A getsockopt program runs after the kernel's handler: optlen is the length of the kernel's answer.
        assert calls == [
            ("SOL_SOCKET", "SO_RCVBUF", 4),
            ("IPPROTO_TCP", "TCP_NODELAY", 4),
            ("IPPROTO_TCP", "TCP_INFO", seen["tcp_info"]),
        ]
        assert {e["retval"] for e in events} == {0}
    assert {e["socket"] for e in events} == {"inet/stream/tcp"}
    assert {e["comm"] for e in events} == {os.path.basename(sys.executable)[:15]}


def test_pyaya_run_logs_calls_in_the_root_cgroup(pyaya_project: PyayaProject) -> None:
    with pyaya_project.run(duration=3) as run:
        pid = options_in(cgroup2_mount())["pid"]
        result = run.result()
    ours = [event["option"] for event in result.events_where(pid=pid)]
    assert ours[:2] == ["SO_RCVBUF", "TCP_NODELAY"]
    assert {entry["option"]: entry["calls"] for entry in result.entries("CALLS")}["SOL_SOCKET/SO_RCVBUF"] >= 1
