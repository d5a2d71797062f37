"""Proves {{name}} works on this machine: crafted packets through BPF_PROG_TEST_RUN,
then real traffic on lo.

Run with `sudo python -m pytest tests` from the project folder (the Python that has pyaya installed: its
`pyaya_project` fixture builds and runs the project, `bpf_object` loads it).
"""

from __future__ import annotations

import importlib.util
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pyaya
import pytest
from pyaya.testing import PyayaProject

PROJECT = Path(__file__).resolve().parent.parent
UDP = 17


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


def udp_frame(source: str, destination: str, source_port: int, destination_port: int) -> bytes:
    """Ethernet + IPv4 + UDP, as the wire has them (checksums are not checked by the program)."""
    payload = b"{{name}}"
    udp = struct.pack("!HHHH", source_port, destination_port, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, UDP, 0,
                     socket.inet_aton(source), socket.inet_aton(destination))  # fmt: skip
    return bytes(12) + struct.pack("!H", 0x0800) + ip + udp


def events(bpf: pyaya.Ebpf) -> list[dict[str, object]]:
    return [main.event_fields(r) for r in bpf.maps["PACKETS"].typed(main.PacketEvent).drain(timeout=1)]


def test_describes_a_crafted_udp_packet(bpf: pyaya.Ebpf) -> None:
    program = bpf.programs["{{crate_name}}"]
    program.load()
    frame = udp_frame("192.0.2.1", "192.0.2.2", 1111, 53)
    assert program.test_run(frame).return_value == 0  # keeps no bytes on the socket
    [event] = events(bpf)
    assert {k: event[k] for k in ("protocol", "source", "source_port", "destination", "destination_port")} == {
        "protocol": "udp",
        "source": "192.0.2.1",
        "source_port": 1111,
        "destination": "192.0.2.2",
        "destination_port": 53,
    }
    # BPF_PROG_TEST_RUN hands socket filters the packet from its network header on; a packet socket from its start.
    assert event["length"] in (len(frame), len(frame) - 14)
    assert bpf.maps["PROTOCOL_COUNTS"][UDP] == 1


def test_non_ip_frames_are_reported_by_ethertype(bpf: pyaya.Ebpf) -> None:
    program = bpf.programs["{{crate_name}}"]
    program.load()
    arp = bytes(12) + struct.pack("!H", 0x0806) + bytes(28)
    assert program.test_run(arp).return_value == 0
    [event] = events(bpf)
    assert event["protocol"] == "arp"
    assert event["source"] == ""
    assert bpf.maps["PROTOCOL_COUNTS"][main.NOT_IP + 0x0806] == 1


def udp_exchange(count: int) -> tuple[int, int]:
    """Sends `count` datagrams over lo; returns (sender port, receiver port)."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(2)
        sender.bind(("127.0.0.1", 0))
        for _ in range(count):
            sender.sendto(b"{{name}}", receiver.getsockname())
            receiver.recv(64)
        return sender.getsockname()[1], receiver.getsockname()[1]


def test_sees_real_packets_on_lo(bpf: pyaya.Ebpf) -> None:
    with main.open_packet_socket("lo") as packet_socket:
        bpf.programs["{{crate_name}}"].attach(packet_socket)
        sender, receiver = udp_exchange(3)
        seen = [e for e in events(bpf) if e["source_port"] == sender and e["destination_port"] == receiver]
    # A packet socket on lo sees each datagram leave and arrive.
    assert sorted(e["direction"] for e in seen) == ["in"] * 3 + ["out"] * 3
    assert {(e["protocol"], e["interface"]) for e in seen} == {("udp", "lo")}


def test_pyaya_run_prints_packets(pyaya_project: PyayaProject) -> None:
    with pyaya_project.run(duration=3) as run:
        sender, receiver = udp_exchange(2)
        result = run.result()
    ours = result.events_where(source_port=sender)
    assert len(ours) == 4
    assert {e["destination_port"] for e in ours} == {receiver}
    assert {entry["protocol"]: entry["packets"] for entry in result.entries("PROTOCOL_COUNTS")}["udp"] >= 4
