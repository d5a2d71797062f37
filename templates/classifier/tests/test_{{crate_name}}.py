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
TC_ACT_PIPE = 3
UDP = 17
INTERFACE = "{{interface|py}}"  # the interface main.py attaches to by default


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
    """Ethernet + IPv4 + UDP, as the wire has them (checksums are not checked by the program)."""
    payload = b"{{name}}"
    udp = struct.pack("!HHHH", source_port, destination_port, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, UDP, 0,
                     socket.inet_aton(source), socket.inet_aton(destination))  # fmt: skip
    return bytes(12) + struct.pack("!H", 0x0800) + ip + udp


def flows(bpf: pyaya.Ebpf) -> dict[tuple[str, int, str, int], tuple[int, int]]:
    table = bpf.maps["FLOWS"].typed(main.Flow, main.FlowStats)
    result = {}
    for flow, stats in table.items():
        fields = main.flow_fields(flow)
        key = (fields["source"], fields["source_port"], fields["destination"], fields["destination_port"])
        result[key] = (stats.packets, stats.bytes)
    return result


def test_counts_crafted_flows_and_reports_new_ones(bpf: pyaya.Ebpf) -> None:
    program = bpf.programs["{{crate_name}}"]
    program.load()
    first = udp_frame("192.0.2.1", "192.0.2.2", 1111, 53)
    second = udp_frame("192.0.2.3", "192.0.2.2", 2222, 53)
    assert program.test_run(first, repeat=4).return_value == TC_ACT_PIPE
    assert program.test_run(second).return_value == TC_ACT_PIPE
    assert flows(bpf) == {
        ("192.0.2.1", 1111, "192.0.2.2", 53): (4, 4 * len(first)),
        ("192.0.2.3", 2222, "192.0.2.2", 53): (1, len(second)),
    }
    events = [r for r in bpf.maps["NEW_FLOWS"].typed(main.NewFlowEvent).drain(timeout=1)]
    assert [(e.flow.source_port, e.flow.protocol, e.length) for e in events] == [
        (1111, UDP, len(first)),
        (2222, UDP, len(second)),
    ]


def test_non_ip_frames_are_ignored(bpf: pyaya.Ebpf) -> None:
    program = bpf.programs["{{crate_name}}"]
    program.load()
    arp = bytes(12) + struct.pack("!H", 0x0806) + bytes(28)
    assert program.test_run(arp).return_value == TC_ACT_PIPE
    assert flows(bpf) == {}


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


@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_meters_real_traffic_on_lo(bpf: pyaya.Ebpf, direction: str) -> None:
    bpf.programs["{{crate_name}}"].attach("lo", direction=direction)
    sender, receiver = udp_exchange(5)
    packets, _ = flows(bpf)[("127.0.0.1", sender, "127.0.0.1", receiver)]
    assert packets == 5


@pytest.mark.skipif(INTERFACE != "lo", reason=f"the project watches {INTERFACE}, where this test makes no traffic")
def test_pyaya_run_reports_new_flows(pyaya_project: PyayaProject) -> None:
    with pyaya_project.run(duration=3) as run:
        sender, receiver = udp_exchange(3)
        result = run.result()
    ours = result.events_where(source_port=sender)
    assert [(e["protocol"], e["destination_port"], e["interface"]) for e in ours] == [("udp", receiver, "lo")]
    traffic = {entry["flow"]: entry["traffic"] for entry in result.entries("FLOWS")}
    assert traffic[f"udp 127.0.0.1:{sender} > 127.0.0.1:{receiver}"]["packets"] == 3
