"""Proves {{name}} works on this machine: crafted packets through BPF_PROG_TEST_RUN,
then real traffic of a process this test puts in a cgroup of its own.

Run with `sudo python -m pytest tests` from the project folder (the Python that has pyaya installed: its
`pyaya_project` fixture builds and runs the project, `bpf_object` loads it).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import struct
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
UDP = 17
PAYLOAD = b"{{name}}"
ALLOW = 1


def load_main() -> ModuleType:
    """The project's main.py as a module, for its record mirrors and helpers."""
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


def udp_frame(source: str, destination: str, source_port: int, destination_port: int) -> bytes:
    """Ethernet + IPv4 + UDP: BPF_PROG_TEST_RUN takes a frame and hands the program its IP packet."""
    udp = struct.pack("!HHHH", source_port, destination_port, 8 + len(PAYLOAD), 0) + PAYLOAD
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, UDP, 0,
                     socket.inet_aton(source), socket.inet_aton(destination))  # fmt: skip
    return bytes(12) + struct.pack("!H", 0x0800) + ip + udp


def new_flows(bpf: pyaya.Ebpf) -> list[dict[str, object]]:
    return [main.event_fields(r) for r in bpf.maps["NEW_FLOWS"].typed(main.NewFlowEvent).drain(timeout=1)]


def test_counts_a_crafted_packet_and_allows_it(bpf: pyaya.Ebpf) -> None:
    program = bpf.programs["{{crate_name}}"]
    program.load()
    frame = udp_frame("192.0.2.1", "192.0.2.2", 1111, 53)
    assert program.test_run(frame, repeat=2).return_value == ALLOW
    assert dict(bpf.maps["PACKETS"]) == {UDP: 2}
    assert dict(bpf.maps["BYTES"]) == {UDP: 2 * (len(frame) - 14)}  # the IP packet, without the Ethernet header
    [event] = new_flows(bpf)
    assert (event["source"], event["source_port"], event["destination_port"]) == ("192.0.2.1", 1111, 53)


# Run by a process in the test's cgroup: a UDP exchange with itself over lo; prints both ports.
UDP_EXCHANGE = f"""
import socket
receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
receiver.bind(("127.0.0.1", 0))
receiver.settimeout(2)
sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sender.bind(("127.0.0.1", 0))
for _ in range(5):
    sender.sendto({PAYLOAD!r}, receiver.getsockname())
    receiver.recv(64)
print(sender.getsockname()[1], receiver.getsockname()[1])
"""


def exchange_in(path: Path) -> tuple[int, int]:
    """Runs UDP_EXCHANGE in a child process moved into the cgroup at `path` before it starts."""

    def enter_cgroup() -> None:
        (path / "cgroup.procs").write_text("0")  # "0": the writing process itself

    child = subprocess.run(
        [sys.executable, "-c", UDP_EXCHANGE], capture_output=True, text=True, preexec_fn=enter_cgroup, check=True
    )
    sender, receiver = child.stdout.split()
    return int(sender), int(receiver)


def test_meters_exactly_the_cgroups_traffic(bpf: pyaya.Ebpf, cgroup: Cgroup) -> None:
    with bpf.programs["{{crate_name}}"].attach(str(cgroup.path), direction=main.DIRECTION):
        sender, receiver = exchange_in(cgroup.path)
    # Nothing else runs in the test's cgroup: its five datagrams (sent, or received) are all there is.
    assert dict(bpf.maps["PACKETS"]) == {UDP: 5}
    assert dict(bpf.maps["BYTES"]) == {UDP: 5 * (20 + 8 + len(PAYLOAD))}
    [event] = new_flows(bpf)
    assert (event["protocol"], event["source_port"], event["destination_port"]) == ("udp", sender, receiver)
    assert event["uid"] == 0


def test_pyaya_run_meters_the_root_cgroup(pyaya_project: PyayaProject) -> None:
    with pyaya_project.run(duration=3) as run:
        sender, receiver = exchange_in(cgroup2_mount())
        result = run.result()
    ours = result.events_where(source_port=sender)
    assert [(e["protocol"], e["destination_port"]) for e in ours] == [("udp", receiver)]
    assert {entry["protocol"]: entry["packets"] for entry in result.entries("PACKETS")}["udp"] >= 5


def test_main_creates_and_removes_a_cgroup(pyaya_project: PyayaProject) -> None:
    path = cgroup2_mount() / f"{{name}}-main-{os.getpid()}"
    with pyaya_project.run("--", "--cgroup", str(path), duration=3) as run:
        assert path.is_dir()
        sender, _ = exchange_in(path)
        result = run.result()
    assert not path.exists()
    assert [event["source_port"] for event in result.events] == [sender]
