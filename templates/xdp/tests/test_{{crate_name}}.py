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
XDP_DROP, XDP_PASS = 1, 2
UDP = 17
INTERFACE = "{{interface|py}}"  # the interface main.py attaches to by default


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


def udp_frame(source: str, destination: str, payload: bytes = b"{{name}}") -> bytes:
    """Ethernet + IPv4 + UDP, as the wire has them (checksums are not checked by the program)."""
    udp = struct.pack("!HHHH", 40000, 9, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, UDP, 0,
                     socket.inet_aton(source), socket.inet_aton(destination))  # fmt: skip
    return bytes(12) + struct.pack("!H", 0x0800) + ip + udp


def test_counts_a_crafted_packet_and_passes_it(bpf: pyaya.Ebpf) -> None:
    program = bpf.programs["{{crate_name}}"]
    program.load()
    frame = udp_frame("192.0.2.1", "192.0.2.2")
    result = program.test_run(frame, repeat=3)
    assert result.return_value == XDP_PASS
    assert main.total(bpf.maps["PACKETS"][UDP]) == 3
    assert main.total(bpf.maps["BYTES"][UDP]) == 3 * len(frame)


def test_non_ip_frames_are_counted_apart(bpf: pyaya.Ebpf) -> None:
    program = bpf.programs["{{crate_name}}"]
    program.load()
    arp = bytes(12) + struct.pack("!H", 0x0806) + bytes(28)
    assert program.test_run(arp).return_value == XDP_PASS
    assert main.total(bpf.maps["PACKETS"][255]) == 1
    assert main.total(bpf.maps["PACKETS"][UDP]) == 0


def test_drops_listed_sources_only(bpf: pyaya.Ebpf) -> None:
    program = bpf.programs["{{crate_name}}"]
    program.load()
    bpf.maps["DROP_LIST"][main.address_key("198.51.100.7")] = 0
    assert program.test_run(udp_frame("198.51.100.7", "192.0.2.2")).return_value == XDP_DROP
    assert program.test_run(udp_frame("198.51.100.8", "192.0.2.2")).return_value == XDP_PASS
    assert bpf.maps["DROP_LIST"][main.address_key("198.51.100.7")] == 1
    records = bpf.maps["DROPPED"].typed(main.DropEvent).drain(timeout=1)
    assert len(records) == 1
    event = records[0]
    assert bytes(event.source) == socket.inet_aton("198.51.100.7")
    assert event.protocol == UDP


def send_udp(count: int, source: str = "127.0.0.1") -> int:
    """Sends `count` datagrams over lo from `source` to a fresh receiver; returns how many arrived."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(0.5)
        sender.bind((source, 0))
        for _ in range(count):
            sender.sendto(b"{{name}}", receiver.getsockname())
        received = 0
        try:
            while received < count:
                receiver.recv(64)
                received += 1
        except TimeoutError:
            pass
        return received


def test_counts_real_traffic_on_lo(bpf: pyaya.Ebpf) -> None:
    bpf.programs["{{crate_name}}"].attach("lo", mode="skb")
    assert send_udp(20) == 20
    assert main.total(bpf.maps["PACKETS"][UDP]) >= 20


def test_pyaya_run_prints_protocol_counts(pyaya_project: PyayaProject) -> None:
    with pyaya_project.run(duration=3) as run:
        if INTERFACE == "lo":
            send_udp(10)
        result = run.result()
    counts = {entry["protocol"]: entry["packets"] for entry in result.entries("PACKETS")}
    if INTERFACE == "lo":
        assert counts["udp"] >= 10


def test_main_drops_the_addresses_given(pyaya_project: PyayaProject) -> None:
    with pyaya_project.run("--", "--interface", "lo", "--drop", "127.0.0.5", duration=3) as run:
        assert send_udp(5, source="127.0.0.5") == 0
        assert send_udp(5) == 5
        result = run.result()
    assert len(result.events) == 5
    assert {(event["source"], event["protocol"], event["interface"]) for event in result.events} == {
        ("127.0.0.5", "udp", "lo")
    }
    assert result.entries("DROP_LIST") == [{"source": "127.0.0.5", "dropped": 5}]
