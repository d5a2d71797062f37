"""Replacing the program of a live link (``Program.attach_to_link``, ``BPF_LINK_UPDATE``): an XDP link on a veth
pair is moved from one loaded object's filter to another's, by handle and through its pin, while real datagrams
show which program runs; what the kernel cannot replace is refused with the link left as it was."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pyaya
import pytest
from pyaya import Ebpf
from pyaya.errors import InvalidArgumentTypeError, ProgramError, UnsupportedError
from pyaya.testing import NetnsPair

pytestmark = pytest.mark.needs("bpf_link")

LoadObject = Callable[..., Ebpf]


@contextlib.contextmanager
def _receiver(address: str) -> Iterator[tuple[socket.socket, int]]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.bind((address, 0))
        receiver.settimeout(0.3)
        yield receiver, receiver.getsockname()[1]
    finally:
        receiver.close()


def _arrived(receiver: socket.socket) -> list[bytes]:
    received = []
    with contextlib.suppress(TimeoutError):
        while True:
            received.append(receiver.recv(2048))
    return received


def _filter(bpf_object: LoadObject, fixtures_dir: Path, drop_port: int) -> tuple[Ebpf, pyaya.Xdp]:
    """A fresh load of net_xdp whose filter drops UDP datagrams to ``drop_port`` (and counts what it sees)."""
    bpf = bpf_object(fixtures_dir / "net_xdp")
    bpf.maps["DROP_PORT"][0] = drop_port  # type: ignore[index]
    program = bpf.programs["net_xdp_filter"]
    assert isinstance(program, pyaya.Xdp)
    return bpf, program


def _seen(bpf: Ebpf) -> int:
    return int(bpf.maps["XDP_COUNTS"][0])  # type: ignore[index]


def _which_dropped(pair: NetnsPair, first: tuple[socket.socket, int], second: tuple[socket.socket, int]) -> str:
    """Sends one datagram to each receiver and says whose were dropped: "first", "second", "none" or "both"."""
    sender = pair.socket()
    try:
        for _receiver_socket, port in (first, second):
            sender.sendto(b"x", (pair.host_address, port))
    finally:
        sender.close()
    lost = [not _arrived(first[0]), not _arrived(second[0])]
    return {(True, False): "first", (False, True): "second", (False, False): "none"}.get(tuple(lost), "both")  # type: ignore[arg-type]


def test_attach_to_link_moves_an_xdp_link_to_another_objects_program(
    bpf_object: LoadObject, fixtures_dir: Path, netns_pair: NetnsPair
) -> None:
    with _receiver(netns_pair.host_address) as first, _receiver(netns_pair.host_address) as second:
        old_bpf, old = _filter(bpf_object, fixtures_dir, first[1])
        new_bpf, new = _filter(bpf_object, fixtures_dir, second[1])
        link = old.attach(netns_pair.host_interface, mode="skb")
        assert _which_dropped(netns_pair, first, second) == "first"
        assert new.attach_to_link(link) is link
        assert link.attached
        assert _which_dropped(netns_pair, first, second) == "second"
        assert _seen(new_bpf) >= 2
        # The link belongs to the new program now: the old object's close leaves it attached.
        assert link in new.links
        assert link not in old.links
        old_seen = _seen(old_bpf)
        old_bpf.close()
        del old_bpf, old
        assert _which_dropped(netns_pair, first, second) == "second"
        new_bpf.programs["net_xdp_filter"].unload()  # held by `link`: stays attached
        assert link.attached
        assert _which_dropped(netns_pair, first, second) == "second"
        assert old_seen >= 1
        link.detach()
        assert _which_dropped(netns_pair, first, second) == "none"


def test_a_pinned_link_gets_its_program_replaced_through_its_pin(
    bpf_object: LoadObject, fixtures_dir: Path, netns_pair: NetnsPair
) -> None:
    pin = Path("/sys/fs/bpf") / f"pyaya-test-link-update-{os.getpid()}"
    with _receiver(netns_pair.host_address) as first, _receiver(netns_pair.host_address) as second:
        old_bpf, old = _filter(bpf_object, fixtures_dir, first[1])
        old.attach(netns_pair.host_interface, mode="skb").pin(pin)
        old_bpf.close()  # the pin keeps the link, as a process that exited would have left it
        try:
            assert _which_dropped(netns_pair, first, second) == "first"
            reopened = pyaya.Link.from_pin(pin)
            new_bpf, new = _filter(bpf_object, fixtures_dir, second[1])
            new.attach_to_link(reopened)
            assert _which_dropped(netns_pair, first, second) == "second"
            assert reopened.program == "net_xdp_filter"
            assert reopened.pinned_path == pin
            new_bpf.close()
            del new
            assert _which_dropped(netns_pair, first, second) == "second"  # the pin holds it, now with the new one
            reopened.detach()
            assert not pin.exists()
            assert _which_dropped(netns_pair, first, second) == "none"
        finally:
            pin.unlink(missing_ok=True)


def test_replacing_refuses_when_the_link_runs_another_program(
    bpf_object: LoadObject, fixtures_dir: Path, netns_pair: NetnsPair
) -> None:
    with _receiver(netns_pair.host_address) as first, _receiver(netns_pair.host_address) as second:
        _bpf_a, a = _filter(bpf_object, fixtures_dir, first[1])
        _bpf_b, b = _filter(bpf_object, fixtures_dir, second[1])
        _bpf_c, c = _filter(bpf_object, fixtures_dir, second[1])
        c.load()
        link = a.attach(netns_pair.host_interface, mode="skb")
        with pytest.raises(ProgramError, match="no longer runs the program given as `replacing`"):
            b.attach_to_link(link, replacing=c)
        assert link.attached
        assert _which_dropped(netns_pair, first, second) == "first"
        b.attach_to_link(link, replacing=a)
        assert _which_dropped(netns_pair, first, second) == "second"
        link.detach()


def test_what_the_kernel_cannot_replace_is_refused_and_left_attached(
    bpf_object: LoadObject, fixtures_dir: Path, netns_pair: NetnsPair
) -> None:
    with _receiver(netns_pair.host_address) as first, _receiver(netns_pair.host_address) as second:
        _bpf, xdp = _filter(bpf_object, fixtures_dir, first[1])
        link = xdp.attach(netns_pair.host_interface, mode="skb")
        # A tracepoint program has no replaceable links: refused before the link is touched.
        raw_tracepoint = bpf_object(fixtures_dir / "trace_raw").programs["trace_sys_enter"]
        with pytest.raises(UnsupportedError, match="only, not of a RawTracePoint program"):
            raw_tracepoint.attach_to_link(link)
        # A program of another type: the kernel refuses, the link keeps its program.
        classifier = bpf_object(fixtures_dir / "net_tc").programs["net_tc_drop_icmp"]
        with pytest.raises(UnsupportedError, match="same type and attach type"):
            classifier.attach_to_link(link)
        assert link.attached
        assert _which_dropped(netns_pair, first, second) == "first"
        with pytest.raises(InvalidArgumentTypeError, match=r"link must be a pyaya\.Link"):
            xdp.attach_to_link("eth0")  # type: ignore[arg-type]
        link.detach()
        with pytest.raises(pyaya.PyayaError, match="detached"):
            xdp.attach_to_link(link)


def test_a_netlink_tc_filter_is_not_replaced_in_place(
    bpf_object: LoadObject, fixtures_dir: Path, netns_pair: NetnsPair
) -> None:
    bpf = bpf_object(fixtures_dir / "net_tc")
    counting = bpf.programs["net_tc_drop_icmp"]
    assert isinstance(counting, pyaya.SchedClassifier)
    link = counting.attach(netns_pair.host_interface, "ingress", priority=7)  # a priority makes it a netlink filter
    assert link.priority == 7
    other = bpf_object(fixtures_dir / "net_tc").programs["net_tc_drop_icmp"]
    with pytest.raises(UnsupportedError, match="only a bpf_link's program can be replaced"):
        other.attach_to_link(link)
    assert link.attached
    assert link.priority == 7
    link.detach()
