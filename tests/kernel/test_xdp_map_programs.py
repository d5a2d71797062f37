"""XDP programs run by map entries: a CPU map entry whose program runs on the target CPU for each frame redirected
there (``#[xdp(map = "cpumap")]``, kernel 5.9), and a device map entry whose program runs on each frame before it
leaves the target interface (``#[xdp(map = "devmap")]``, 5.8). Real frames through veth pairs; the fixture
net_xdp_chain counts where each frame went."""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pyaya
import pytest
from pyaya import Ebpf
from pyaya.errors import InvalidArgumentError, InvalidArgumentTypeError
from pyaya.maps import CpuMap, CpuMapValue, DevMap, DevMapValue
from pyaya.testing import NetnsPair

LoadObject = Callable[..., Ebpf]

#: IEEE 802's local experimental EtherType: nothing but these tests sends it on their links.
ETH_P_LOCAL_EXPERIMENTAL = 0x88B5


@contextlib.contextmanager
def _frame_socket(pair: NetnsPair, *, inside: bool) -> Iterator[socket.socket]:
    protocol = socket.htons(ETH_P_LOCAL_EXPERIMENTAL)
    if inside:
        raw = pair.socket(socket.AF_PACKET, socket.SOCK_RAW, protocol)
        raw.bind((pair.peer_interface, ETH_P_LOCAL_EXPERIMENTAL))
    else:
        raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, protocol)
        raw.bind((pair.host_interface, ETH_P_LOCAL_EXPERIMENTAL))
    raw.settimeout(0.5)
    try:
        yield raw
    finally:
        raw.close()


def _send_frame(sender: socket.socket, marker: bytes) -> None:
    source = sender.getsockname()[4]
    sender.send(b"\xff" * 6 + source + struct.pack("!H", ETH_P_LOCAL_EXPERIMENTAL) + marker.ljust(46, b"\0"))


def _frames_with(raw: socket.socket, marker: bytes) -> int:
    seen = 0
    with contextlib.suppress(TimeoutError):
        while True:
            seen += marker in raw.recv(2048)
    return seen


def _counts(bpf: Ebpf) -> list[int]:
    return list(bpf.maps["CHAIN_COUNTS"])  # type: ignore[call-overload]


@pytest.mark.needs("bpf_link")
def test_a_cpu_map_entry_runs_its_program_on_that_cpu(
    bpf_object: LoadObject, fixtures_dir: Path, netns_pair: NetnsPair
) -> None:
    bpf = bpf_object(fixtures_dir / "net_xdp_chain")
    cpus = bpf.maps["CHAIN_CPUS"]
    assert isinstance(cpus, CpuMap)
    on_cpu = bpf.programs["net_chain_on_cpu"]
    cpus[0] = (256, on_cpu)  # loads it (as an XDP program for CPU maps) first
    assert cpus[0] == CpuMapValue(256, on_cpu.info()["id"])
    bpf.programs["net_chain_to_cpu"].attach(netns_pair.host_interface, mode="skb")
    with _frame_socket(netns_pair, inside=True) as sender, _frame_socket(netns_pair, inside=False) as host_end:
        for i in range(4):
            _send_frame(sender, b"via cpu 0 #%d" % i)
        assert _frames_with(host_end, b"via cpu 0") == 4  # the CPU's program passed them to the stack
        assert _counts(bpf) == [4, 4, 0, 0]
        cpus.set(0, 256)  # the same CPU without a program: frames still arrive, the program no longer sees them
        assert cpus[0] == CpuMapValue(256, 0)
        for i in range(2):
            _send_frame(sender, b"plain #%d" % i)
        assert _frames_with(host_end, b"plain") == 2
        assert _counts(bpf) == [6, 4, 0, 0]


@pytest.mark.needs("bpf_link")
def test_a_device_map_entry_runs_its_program_before_the_frame_leaves(
    bpf_object: LoadObject, fixtures_dir: Path, netns_pairs: Callable[[], NetnsPair]
) -> None:
    first, second = netns_pairs(), netns_pairs()
    bpf = bpf_object(fixtures_dir / "net_xdp_chain")
    devices = bpf.maps["CHAIN_DEVICES"]
    assert isinstance(devices, DevMap)
    on_dev = bpf.programs["net_chain_on_dev"]
    devices.set(0, second.host_interface, program=on_dev)
    assert devices[0] == DevMapValue(second.host_ifindex, on_dev.info()["id"])
    bpf.programs["net_chain_to_dev"].attach(first.host_interface, mode="skb")
    with _frame_socket(first, inside=True) as sender, _frame_socket(second, inside=True) as far_end:
        for i in range(3):
            _send_frame(sender, b"out the other side %d" % i)
        assert _frames_with(far_end, b"out the other side") == 3
    assert _counts(bpf) == [0, 0, 3, 3]


def test_map_entry_programs_are_checked(bpf_object: LoadObject, fixtures_dir: Path, requires_root: None) -> None:
    bpf = bpf_object(fixtures_dir / "net_xdp_chain")
    cpus = bpf.maps["CHAIN_CPUS"]
    with pytest.raises(InvalidArgumentTypeError, match="program must be a pyaya program"):
        cpus.set(0, 64, program="net_chain_on_cpu")  # type: ignore[arg-type]
    tracing = bpf_object(fixtures_dir / "trace_raw").programs["trace_sys_enter"]
    with pytest.raises(InvalidArgumentError, match=r"RawTracePoint program: a cpumap entry runs an XDP program"):
        cpus.set(0, 64, program=tracing)
    # A plain XDP program (not declared for CPU maps) is refused by the kernel, with its reason.
    with pytest.raises(pyaya.PyayaError) as refused:
        cpus.set(0, 64, program=bpf.programs["net_chain_to_cpu"])
    assert "CHAIN_CPUS" in str(refused.value)
    assert 0 not in cpus or cpus[0].program_id == 0
