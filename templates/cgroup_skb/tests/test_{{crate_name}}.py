"""Proves {{name}} works on this machine: crafted packets through BPF_PROG_TEST_RUN,
then real traffic of a process this test puts in a cgroup of its own.

Run with `sudo python -m pytest tests` from the project folder (the Python that has pyaya installed).
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pyaya
import pytest
from pyaya.kernel import cgroup2_mount

PROJECT = Path(__file__).resolve().parent.parent
UDP = 17
PAYLOAD = b"{{name}}"
ALLOW = 1

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="loading BPF programs needs root (or CAP_BPF and CAP_NET_ADMIN)"
)


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


def udp_frame(source: str, destination: str, source_port: int, destination_port: int) -> bytes:
    """Ethernet + IPv4 + UDP: BPF_PROG_TEST_RUN takes a frame and hands the program its IP packet."""
    udp = struct.pack("!HHHH", source_port, destination_port, 8 + len(PAYLOAD), 0) + PAYLOAD
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, UDP, 0,
                     socket.inet_aton(source), socket.inet_aton(destination))  # fmt: skip
    return bytes(12) + struct.pack("!H", 0x0800) + ip + udp


def new_flows(bpf: pyaya.Ebpf) -> list[dict[str, object]]:
    return [main.event_fields(main.NewFlowEvent.from_buffer_copy(r)) for r in bpf.maps["NEW_FLOWS"].drain(timeout=1)]


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


def test_meters_exactly_the_cgroups_traffic(bpf: pyaya.Ebpf, test_cgroup: Path) -> None:
    with bpf.programs["{{crate_name}}"].attach(str(test_cgroup), direction=main.DIRECTION):
        sender, receiver = exchange_in(test_cgroup)
    # Nothing else runs in the test's cgroup: its five datagrams (sent, or received) are all there is.
    assert dict(bpf.maps["PACKETS"]) == {UDP: 5}
    assert dict(bpf.maps["BYTES"]) == {UDP: 5 * (20 + 8 + len(PAYLOAD))}
    [event] = new_flows(bpf)
    assert (event["protocol"], event["source_port"], event["destination_port"]) == ("udp", sender, receiver)
    assert event["uid"] == 0


def test_pyaya_run_meters_the_root_cgroup() -> None:
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
    sender, receiver = exchange_in(cgroup2_mount())
    output, _ = runner.communicate(timeout=120)
    assert runner.returncode == 0
    records = [json.loads(line) for line in output.splitlines()]
    ours = [r["data"] for r in records if r["kind"] == "event" and r["data"]["source_port"] == sender]
    assert [(e["protocol"], e["destination_port"]) for e in ours] == [("udp", receiver)]
    packets = next(r for r in records if r["kind"] == "map" and r["map"] == "PACKETS")
    assert {entry["protocol"]: entry["packets"] for entry in packets["entries"]}["udp"] >= 5


def test_main_creates_and_removes_a_cgroup(object_path: Path) -> None:
    path = cgroup2_mount() / f"{{name}}-main-{os.getpid()}"
    runner = subprocess.Popen(
        [sys.executable, str(PROJECT / "main.py"), "--object", str(object_path), "--json", "--duration", "3",
         "--cgroup", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert runner.stderr is not None
    for line in runner.stderr:
        if "is running" in line:
            break
    assert path.is_dir()
    sender, _ = exchange_in(path)
    output, _ = runner.communicate(timeout=120)
    assert runner.returncode == 0
    assert not path.exists()
    records = [json.loads(line) for line in output.splitlines()]
    assert [r["data"]["source_port"] for r in records if r["kind"] == "event"] == [sender]
