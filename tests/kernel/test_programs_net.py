"""Networking and cgroup programs against the real kernel: real packets through a veth pair into a namespace made
for the test, real sockets, real processes in a cgroup made for the test, and BPF_PROG_TEST_RUN on packets built
here. Fixtures come from the `pyaya.testing` plugin (netns_pair, cgroup, bpf_object)."""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyaya
import pyaya.testing
import pytest
from _sockets import reuseport_group, spread
from pyaya import Ebpf
from pyaya.maps import CpuMap, DevMap, DevMapValue, ReusePortSockArray, XskMap
from pyaya.testing import Cgroup, NetnsPair, cgroup2_mount

LoadObject = Callable[..., Ebpf]

BPF_OK = 0
BPF_DEVCG_DEV_CHAR = 2
BPF_SOCK_OPS_TCP_CONNECT_CB = 3
BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB = 4
SO_MARK = 36


# -- packets built here ------------------------------------------------------------------------------------------


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _udp_checksum(src: str, dst: str, segment: bytes) -> int:
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 17, len(segment))
    return _checksum(pseudo + segment) or 0xFFFF


def _ipv4(src: str, dst: str, protocol: int, body: bytes) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 1, 0, 64, protocol, 0, socket.inet_aton(src), socket.inet_aton(dst)
    )
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + body


def _ethernet(payload: bytes, *, destination: bytes = b"\x02" * 6, source: bytes = b"\x04" * 6) -> bytes:
    return destination + source + struct.pack("!H", 0x0800) + payload


def _udp_frame(
    dport: int, payload: bytes, *, sport: int = 40000, src: str = "10.1.0.1", dst: str = "10.1.0.2"
) -> bytes:
    segment = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    segment = segment[:6] + struct.pack("!H", _udp_checksum(src, dst, segment)) + segment[8:]
    return _ethernet(_ipv4(src, dst, 17, segment))


def _icmp_frame() -> bytes:
    echo = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"ping"
    echo = echo[:2] + struct.pack("!H", _checksum(echo)) + echo[4:]
    return _ethernet(_ipv4("10.1.0.1", "10.1.0.2", 1, echo))


# -- helpers -----------------------------------------------------------------------------------------------------


def _counts(bpf: Ebpf, name: str) -> list[int]:
    return list(bpf.maps[name])  # type: ignore[call-overload]


def _counts_soon(bpf: Ebpf, name: str, expected: list[int], timeout: float = 5) -> list[int]:
    """The counters once they reach ``expected``, or after ``timeout``: a frame sent into a veth is usually
    processed before the send returns, but the kernel may defer it to ksoftirqd."""
    deadline = time.monotonic() + timeout
    while (counts := _counts(bpf, name)) != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return counts


def _set(bpf: Ebpf, name: str, index: int, value: int) -> None:
    bpf.maps[name][index] = value  # type: ignore[index]


@contextlib.contextmanager
def _udp_receiver(address: str) -> Iterator[tuple[socket.socket, int]]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.bind((address, 0))
        receiver.settimeout(0.5)
        yield receiver, receiver.getsockname()[1]
    finally:
        receiver.close()


def _receive_all(receiver: socket.socket, limit: int = 64) -> list[bytes]:
    received = []
    with contextlib.suppress(TimeoutError):
        while len(received) < limit:
            received.append(receiver.recv(2048))
    return received


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _ping(address: str, sock: socket.socket | None = None) -> bool:
    """One ICMP echo from a raw socket (this machine has no `ping`); whether the reply came within a second."""
    icmp = sock or socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    try:
        identifier = os.getpid() & 0xFFFF
        echo = struct.pack("!BBHHH", 8, 0, 0, identifier, 1) + b"pyaya"
        echo = echo[:2] + struct.pack("!H", _checksum(echo)) + echo[4:]
        icmp.settimeout(1)
        icmp.sendto(echo, (address, 0))
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            try:
                reply = icmp.recv(2048)
            except TimeoutError:
                return False
            header_len = (reply[0] & 0x0F) * 4
            kind, _, _, reply_id = struct.unpack_from("!BBHH", reply, header_len)
            if kind == 0 and reply_id == identifier:
                return True
        return False
    finally:
        icmp.close()


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _program_ids(bpf: Ebpf) -> set[int]:
    return {int(program.info()["id"]) for program in bpf.programs.values() if program.loaded}


def _bpf_fds(kind: str) -> set[int]:
    """This process's fds of one kind of BPF object (``bpf_link``, ``bpf-prog``): what it still holds."""
    held = set()
    for entry in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(entry) == f"anon_inode:{kind}":
                held.add(int(entry.name))
    return held


def _loaded_ids() -> set[int]:
    return {program_id for program_id, _, _ in pyaya.loaded_programs()}


def _store_socket(bpf: Ebpf, map_name: str, index: int, sock: socket.socket) -> None:
    """Puts a socket into a SockMap through the raw map update (the value is the socket's fd)."""
    native = bpf.maps[map_name]._native
    native.update(struct.pack("=I", index), struct.pack("=I", sock.fileno()))


# -- XDP ---------------------------------------------------------------------------------------------------------


def test_xdp_drops_and_counts_udp_through_a_veth_pair(
    bpf_object: LoadObject, fixtures_dir: Path, netns_pair: NetnsPair
) -> None:
    bpf = bpf_object(fixtures_dir / "net_xdp")
    program = bpf.programs["net_xdp_filter"]
    assert isinstance(program, pyaya.Xdp)
    with (
        _udp_receiver(netns_pair.host_address) as (kept, kept_port),
        _udp_receiver(netns_pair.host_address) as (dropped, dropped_port),
    ):
        _set(bpf, "DROP_PORT", 0, dropped_port)
        link = program.attach(netns_pair.host_interface, mode="skb")
        assert (
            "xdp"
            in subprocess.run(
                ["ip", "link", "show", "dev", netns_pair.host_interface], capture_output=True, text=True, check=True
            ).stdout
        )
        sender = netns_pair.socket()
        try:
            for i in range(5):
                sender.sendto(b"drop %d" % i, (netns_pair.host_address, dropped_port))
            for i in range(3):
                sender.sendto(b"keep %d" % i, (netns_pair.host_address, kept_port))
            assert sorted(_receive_all(kept)) == [b"keep 0", b"keep 1", b"keep 2"]
            assert _receive_all(dropped) == []
            seen, drops = _counts(bpf, "XDP_COUNTS")
            assert drops == 5
            assert seen >= 8
            link.detach()
            sender.sendto(b"after", (netns_pair.host_address, dropped_port))
            assert _receive_all(dropped) == [b"after"]
        finally:
            sender.close()
    assert (
        "xdp"
        not in subprocess.run(
            ["ip", "link", "show", "dev", netns_pair.host_interface], capture_output=True, text=True, check=True
        ).stdout
    )


def _xdp_modes(interface: str) -> list[str]:
    shown = subprocess.run(["ip", "link", "show", "dev", interface], capture_output=True, text=True, check=True)
    return [word for word in shown.stdout.split() if word.startswith("xdp")]


#: IEEE 802's local experimental EtherType: nothing but these tests sends it on their links.
ETH_P_LOCAL_EXPERIMENTAL = 0x88B5


def _frame_socket(pair: NetnsPair, *, inside: bool) -> socket.socket:
    """A raw packet socket for the test EtherType on the namespace's end (``inside``) or this end of ``pair``."""
    protocol = socket.htons(ETH_P_LOCAL_EXPERIMENTAL)
    if inside:
        raw = pair.socket(socket.AF_PACKET, socket.SOCK_RAW, protocol)
        raw.bind((pair.peer_interface, ETH_P_LOCAL_EXPERIMENTAL))
    else:
        raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, protocol)
        raw.bind((pair.host_interface, ETH_P_LOCAL_EXPERIMENTAL))
    raw.settimeout(0.5)
    return raw


def _frames_with(raw: socket.socket, marker: bytes) -> int:
    return sum(marker in frame for frame in _receive_all(raw))


def _send_frame(sender: socket.socket, marker: bytes) -> None:
    source = sender.getsockname()[4]
    header = b"\xff" * 6 + source + struct.pack("!H", ETH_P_LOCAL_EXPERIMENTAL)
    sender.send(header + marker.ljust(46, b"\0"))


def test_xdp_redirects_through_a_devmap_to_another_interface(
    bpf_object: LoadObject, fixtures_dir: Path, netns_pairs: Callable[[], NetnsPair]
) -> None:
    """Frames sent into the first pair leave through the second: XDP on the first pair's host end redirects them
    through REDIRECT_DEVICES[0] to the second pair's host end, and the second namespace receives them."""
    first, second = netns_pairs(), netns_pairs()
    bpf = bpf_object(fixtures_dir / "net_redirect")
    devices = bpf.maps["REDIRECT_DEVICES"]
    assert isinstance(devices, DevMap)
    bpf.programs["net_redirect_dev"].attach(first.host_interface, mode="skb")
    with _frame_socket(first, inside=True) as sender, _frame_socket(second, inside=True) as far_end:
        _send_frame(sender, b"no entry yet")
        assert _frames_with(far_end, b"no entry yet") == 0
        assert _counts(bpf, "REDIRECT_COUNTS") == [0, 1]  # no entry: the fallback action, XDP_PASS
        devices[0] = second.host_interface
        assert devices[0] == DevMapValue(second.host_ifindex, 0)
        for i in range(3):
            _send_frame(sender, b"redirected %d" % i)
        assert _frames_with(far_end, b"redirected") == 3
        assert _counts(bpf, "REDIRECT_COUNTS") == [3, 1]


def test_xdp_redirects_through_a_cpumap(bpf_object: LoadObject, fixtures_dir: Path, netns_pair: NetnsPair) -> None:
    """REDIRECT_CPUS[0] hands each frame to a kernel thread of CPU 0, which passes it on to the stack."""
    bpf = bpf_object(fixtures_dir / "net_redirect")
    cpus = bpf.maps["REDIRECT_CPUS"]
    assert isinstance(cpus, CpuMap)
    cpus[0] = 256  # the queue size of CPU 0's redirect queue
    bpf.programs["net_redirect_cpu"].attach(netns_pair.host_interface, mode="skb")
    with _frame_socket(netns_pair, inside=True) as sender, _frame_socket(netns_pair, inside=False) as host_end:
        for i in range(4):
            _send_frame(sender, b"to cpu 0 #%d" % i)
        assert _frames_with(host_end, b"to cpu 0") == 4  # delivered after the redirect
    assert _counts(bpf, "REDIRECT_COUNTS") == [4, 0]


AF_XDP = 44
SOL_XDP = 283
XDP_MMAP_OFFSETS, XDP_RX_RING, XDP_UMEM_REG, XDP_UMEM_FILL_RING, XDP_UMEM_COMPLETION_RING = 1, 2, 4, 5, 6
XDP_COPY = 1 << 1
XDP_PGOFF_RX_RING = 0
XDP_UMEM_PGOFF_FILL_RING = 0x100000000


class _AfXdpReceiver:
    """The smallest AF_XDP receiver: a UMEM whose frames all go to the fill ring, and an RX ring, bound in copy
    mode to queue 0 of an interface. Frames an XDP program redirects to it are read back from the UMEM."""

    FRAME_SIZE = 2048
    FRAMES = 16  # ring sizes are powers of two

    def __init__(self, ifindex: int) -> None:
        self.socket = socket.socket(AF_XDP, socket.SOCK_RAW, 0)
        self.umem = mmap.mmap(-1, self.FRAMES * self.FRAME_SIZE)
        umem_view = ctypes.c_char.from_buffer(self.umem)
        try:
            umem_address = ctypes.addressof(umem_view)
            registration = struct.pack("QQII", umem_address, len(self.umem), self.FRAME_SIZE, 0)
            self.socket.setsockopt(SOL_XDP, XDP_UMEM_REG, registration)
        finally:
            del umem_view  # the kernel pinned the pages; the mmap must stay closable
        for ring in (XDP_UMEM_FILL_RING, XDP_UMEM_COMPLETION_RING, XDP_RX_RING):
            self.socket.setsockopt(SOL_XDP, ring, self.FRAMES)
        offsets = struct.unpack("16Q", self.socket.getsockopt(SOL_XDP, XDP_MMAP_OFFSETS, 128))
        self.rx_offsets, fill_offsets = offsets[0:4], offsets[8:12]  # (producer, consumer, desc, flags) each
        fd = self.socket.fileno()
        self.fill = mmap.mmap(fd, fill_offsets[2] + self.FRAMES * 8, offset=XDP_UMEM_PGOFF_FILL_RING)
        self.rx = mmap.mmap(fd, self.rx_offsets[2] + self.FRAMES * 16, offset=XDP_PGOFF_RX_RING)
        for i in range(self.FRAMES):
            struct.pack_into("Q", self.fill, fill_offsets[2] + 8 * i, i * self.FRAME_SIZE)
        struct.pack_into("I", self.fill, fill_offsets[0], self.FRAMES)  # the producer index: all frames given
        address = struct.pack("HHIII", AF_XDP, XDP_COPY, ifindex, 0, 0)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.bind(fd, ctypes.c_char_p(address), len(address)) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"binding an AF_XDP socket to queue 0: {os.strerror(errno)}")

    def receive(self, count: int, timeout: float) -> list[bytes]:
        producer, consumer, desc, _ = self.rx_offsets
        deadline = time.monotonic() + timeout
        while struct.unpack_from("I", self.rx, producer)[0] < count and time.monotonic() < deadline:
            time.sleep(0.01)
        available = struct.unpack_from("I", self.rx, producer)[0]
        frames = []
        for i in range(available):
            address, length, _options = struct.unpack_from("QII", self.rx, desc + 16 * (i % self.FRAMES))
            frames.append(self.umem[address : address + length])
        struct.pack_into("I", self.rx, consumer, available)
        return frames

    def close(self) -> None:
        self.rx.close()
        self.fill.close()
        self.socket.close()
        self.umem.close()

    def __enter__(self) -> _AfXdpReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def test_xdp_redirects_into_an_af_xdp_socket_through_an_xskmap(
    bpf_object: LoadObject, fixtures_dir: Path, netns_pair: NetnsPair
) -> None:
    bpf = bpf_object(fixtures_dir / "net_redirect")
    sockets = bpf.maps["REDIRECT_SOCKETS"]
    assert isinstance(sockets, XskMap)
    bpf.programs["net_redirect_xsk"].attach(netns_pair.host_interface, mode="skb")
    with _AfXdpReceiver(netns_pair.host_ifindex) as receiver, _frame_socket(netns_pair, inside=True) as sender:
        _send_frame(sender, b"no socket yet")
        assert _counts_soon(bpf, "REDIRECT_COUNTS", [0, 1]) == [0, 1]
        sockets[0] = receiver.socket
        for i in range(3):
            _send_frame(sender, b"to af_xdp #%d" % i)
        frames = receiver.receive(3, timeout=5)
    assert [frame[14:26] for frame in frames] == [b"to af_xdp #%d" % i for i in range(3)]
    assert all(frame[12:14] == struct.pack("!H", ETH_P_LOCAL_EXPERIMENTAL) for frame in frames)
    assert _counts(bpf, "REDIRECT_COUNTS") == [3, 1]


def test_xdp_modes_reach_the_kernel(fixtures_dir: Path, netns_pair: NetnsPair) -> None:
    with Ebpf.load_file(fixtures_dir / "net_xdp") as bpf:
        program = bpf.programs["net_xdp_filter"]
        for mode, shown in (("skb", ["xdpgeneric"]), ("drv", ["xdp"])):  # veth has native XDP
            link = program.attach(netns_pair.host_interface, mode=mode)  # type: ignore[arg-type]
            assert _xdp_modes(netns_pair.host_interface) == shown
            link.detach()
            assert _xdp_modes(netns_pair.host_interface) == []


def test_xdp_attach_by_index_and_close_detaches(fixtures_dir: Path, netns_pair: NetnsPair) -> None:
    with Ebpf.load_file(fixtures_dir / "net_xdp") as bpf:
        program = bpf.programs["net_xdp_filter"]
        assert program.attach(netns_pair.host_ifindex).attached  # not held: the program keeps it until close
        ids = _program_ids(bpf)
        assert ids <= _loaded_ids()
    assert not ids & _loaded_ids()
    shown = subprocess.run(
        ["ip", "link", "show", "dev", netns_pair.host_interface], capture_output=True, text=True, check=True
    ).stdout
    assert "xdp" not in shown


def test_xdp_bad_interface_and_mode(fixtures_dir: Path, requires_root: None) -> None:
    with Ebpf.load_file(fixtures_dir / "net_xdp") as bpf:
        program = bpf.programs["net_xdp_filter"]
        assert isinstance(program, pyaya.Xdp)
        with pytest.raises(pyaya.NotFoundError, match='no network interface "pyaya-none"'):
            program.attach("pyaya-none")
        with pytest.raises(ValueError, match="XDP mode must be"):
            program.attach("lo", mode="turbo")  # type: ignore[arg-type]
        tc = bpf.programs["net_xdp_swap"]
        with pytest.raises(pyaya.ProgramError, match="is a Xdp program, not a SchedClassifier"):
            tc._native.attach_sched_classifier("lo", "ingress", 0)


# -- TC ----------------------------------------------------------------------------------------------------------


def _qdiscs(interface: str) -> str:
    return subprocess.run(["tc", "qdisc", "show", "dev", interface], capture_output=True, text=True, check=True).stdout


def test_tc_rewrites_ingress_payload_and_drops_egress_icmp(
    bpf_object: LoadObject, fixtures_dir: Path, netns_pair: NetnsPair
) -> None:
    bpf = bpf_object(fixtures_dir / "net_tc")
    rewrite = bpf.programs["net_tc_rewrite"]
    drop_icmp = bpf.programs["net_tc_drop_icmp"]
    assert isinstance(rewrite, pyaya.SchedClassifier)
    with _udp_receiver(netns_pair.host_address) as (receiver, port):
        _set(bpf, "REWRITE_PORT", 0, port)
        rewrite.attach(netns_pair.host_interface, "ingress")
        sender = netns_pair.socket()
        try:
            sender.sendto(b"ping-1234", (netns_pair.host_address, port))
            assert _receive_all(receiver) == [b"TCOK-1234"]
        finally:
            sender.close()
    assert _counts(bpf, "TC_COUNTS")[0] == 1

    assert _ping(netns_pair.peer_address)
    link = drop_icmp.attach(netns_pair.host_interface, "egress")
    assert not _ping(netns_pair.peer_address)
    assert _counts(bpf, "TC_COUNTS")[1] >= 1
    link.detach()
    assert _ping(netns_pair.peer_address)
    # tcx (kernel 6.6+) needs no qdisc, so none was added
    assert "clsact" not in _qdiscs(netns_pair.host_interface)


def test_tc_netlink_priority_uses_clsact_and_detaches_its_filter(fixtures_dir: Path, netns_pair: NetnsPair) -> None:
    def filters() -> str:
        return subprocess.run(
            ["tc", "filter", "show", "dev", netns_pair.host_interface, "ingress"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    with Ebpf.load_file(fixtures_dir / "net_tc") as bpf:
        program = bpf.programs["net_tc_drop_icmp"]
        link = program.attach(netns_pair.host_interface, "ingress", priority=7)
        assert "clsact" in _qdiscs(netns_pair.host_interface)
        assert "net_tc_drop_icmp" in filters()
        assert "pref 7" in filters()
        link.detach()
        assert "net_tc_drop_icmp" not in filters()

        link = program.attach(netns_pair.host_interface, "ingress", priority=7)
        with pytest.raises(pyaya.UnsupportedError, match="pinning the link"):
            link.pin("/sys/fs/bpf/pyaya-net-tc-netlink")
        assert link.attached  # a refused pin leaves the attachment as it was
        assert "net_tc_drop_icmp" in filters()
        link.detach()
        assert "net_tc_drop_icmp" not in filters()
        program.attach(netns_pair.host_interface, "ingress", priority=7)
    assert "net_tc_drop_icmp" not in filters()
    assert "clsact" not in _qdiscs(netns_pair.host_interface)  # pyaya added it: removed with its last filter


def _tcx_run_order(bpf: Ebpf, pair: NetnsPair) -> str:
    """The letters the net_tcx programs appended for one datagram sent into the host's ingress."""
    for index in range(4):
        _set(bpf, "TCX_ORDER", index, 0)
    with _udp_receiver(pair.host_address) as (receiver, port):
        _set(bpf, "TCX_PORT", 0, port)
        sender = pair.socket()
        try:
            sender.sendto(b"order", (pair.host_address, port))
            assert _receive_all(receiver) == [b"order"]
        finally:
            sender.close()
    counts = _counts(bpf, "TCX_ORDER")
    return "".join(chr(letter) for letter in counts[1 : 1 + counts[0]])


def test_tcx_orders_programs_with_before_after_first_last_and_the_query_shows_it(
    fixtures_dir: Path, netns_pair: NetnsPair
) -> None:
    if not pyaya.features.probe("tcx").supported:
        pytest.skip(f"no tcx here: {pyaya.features.probe('tcx').reason}")
    interface = netns_pair.host_interface
    with Ebpf.load_file(fixtures_dir / "net_tcx") as bpf:
        a, b, c = (bpf.programs[f"net_tcx_{letter}"] for letter in "abc")
        assert isinstance(a, pyaya.SchedClassifier)
        assert isinstance(c, pyaya.SchedClassifier)
        link_b = b.attach(interface, "ingress", last=True)
        a.attach(interface, "ingress", before=link_b)
        link_c = c.attach(interface, "ingress", first=True)
        ids = {program.info()["id"]: program.name for program in (a, b, c)}
        chain = pyaya.tcx_programs(interface, "ingress")
        assert [name for _, name in chain] == ["net_tcx_c", "net_tcx_a", "net_tcx_b"]
        assert all(ids[program_id] == name for program_id, name in chain)
        assert _tcx_run_order(bpf, netns_pair) == "cab"

        link_c.detach()
        c.attach(interface, "ingress", after=a)
        assert [name for _, name in pyaya.tcx_programs(interface, "ingress")] == ["net_tcx_a", "net_tcx_c", "net_tcx_b"]
        assert _tcx_run_order(bpf, netns_pair) == "acb"
        assert pyaya.tcx_programs(interface, "egress") == []

        with pytest.raises(pyaya.InvalidArgumentError, match="at most one of before=, after=, first=, last="):
            c.attach(interface, "ingress", first=True, after=a)
        with pytest.raises(pyaya.InvalidArgumentError, match="give one kind or the other"):
            c.attach(interface, "egress", first=True, priority=3)
    # Closing the object detached the links nobody holds; the held one stays until it is let go.
    assert [name for _, name in pyaya.tcx_programs(interface, "ingress")] == ["net_tcx_b"]
    del link_b
    assert pyaya.tcx_programs(interface, "ingress") == []


def test_tc_netlink_filters_take_priority_and_handle_and_report_them(fixtures_dir: Path, netns_pair: NetnsPair) -> None:
    interface = netns_pair.host_interface
    ifindex = socket.if_nametoindex(interface)
    with Ebpf.load_file(fixtures_dir / "net_tc") as bpf:
        rewrite = bpf.programs["net_tc_rewrite"]
        drop_icmp = bpf.programs["net_tc_drop_icmp"]
        first = rewrite.attach(interface, "ingress", priority=3, handle=0x11)
        second = drop_icmp.attach(interface, "ingress", priority=9, handle=0x22)
        assert (first.priority, first.handle) == (3, 0x11)
        assert (second.priority, second.handle) == (9, 0x22)
        filters = {
            (priority, handle): name for priority, handle, _, name, _ in pyaya._native.tc_filters(ifindex, "ingress")
        }
        assert filters[(3, 0x11)].startswith("net_tc_rewrite")
        assert filters[(9, 0x22)].startswith("net_tc_drop_icmp")
        second.detach()
        # (the dump also has a row per priority with handle 0, the priority's head, without a program)
        assert [(p, h) for p, h, _, _, program_id in pyaya._native.tc_filters(ifindex, "ingress") if program_id] == [
            (3, 0x11)
        ]
        assert (second.priority, second.handle) == (None, None)
        automatic = drop_icmp.attach(interface, "ingress", priority=9)
        assert automatic.priority == 9
        assert automatic.handle  # the kernel picked one, and the link says which


def test_tc_netlink_classid_reaches_the_filter_and_the_link(fixtures_dir: Path, netns_pair: NetnsPair) -> None:
    """aya's netlink options have no classid: pyaya sets TCA_BPF_CLASSID on the filter itself, and iproute2 sees it."""
    interface = netns_pair.host_interface

    def shown() -> str:
        return subprocess.run(
            ["tc", "filter", "show", "dev", interface, "ingress"], capture_output=True, text=True, check=True
        ).stdout

    with Ebpf.load_file(fixtures_dir / "net_tc") as bpf:
        program = bpf.programs["net_tc_rewrite"]
        for bad in (-1, 1 << 32, True, "1:1"):
            with pytest.raises(ValueError, match="classid"):
                program.attach(interface, "ingress", classid=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="classid"):
            program.attach(interface, "ingress", classid=0x10001, first=True)
        link = program.attach(interface, "ingress", priority=4, handle=0x7, classid=0x10001)
        assert (link.priority, link.handle, link.classid) == (4, 0x7, 0x10001)
        listing = shown()
        # iproute2 prints TCA_BPF_CLASSID as "flowid" (its `tc filter add ... classid` is the same attribute)
        assert "flowid 1:1" in listing, listing
        assert "direct-action" in listing, listing
        # classid alone makes a netlink filter too, with the kernel's priority and handle
        plain = bpf.programs["net_tc_drop_icmp"].attach(interface, "ingress", classid=0x20003)
        assert plain.classid == 0x20003
        assert plain.priority
        assert plain.handle
        assert "flowid 2:3" in shown()
        link.detach()
        plain.detach()
        assert link.classid is None
        assert "flowid" not in shown()


# -- socket filter -----------------------------------------------------------------------------------------------


def test_socket_filter_counts_and_drops_on_a_python_socket(bpf_object: LoadObject, fixtures_dir: Path) -> None:
    bpf = bpf_object(fixtures_dir / "net_socket")
    program = bpf.programs["net_socket_filter"]
    assert isinstance(program, pyaya.SocketFilter)
    with _udp_receiver("127.0.0.1") as (receiver, port), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        link = program.attach(receiver)
        for payload in (b"keep 1", b"drop!", b"keep 2", b"also!"):
            sender.sendto(payload, ("127.0.0.1", port))
        assert _receive_all(receiver) == [b"keep 1", b"keep 2"]
        assert _counts(bpf, "FILTER_COUNTS") == [4, 2]
        link.detach()
        sender.sendto(b"after!", ("127.0.0.1", port))
        assert _receive_all(receiver) == [b"after!"]
        assert _counts(bpf, "FILTER_COUNTS") == [4, 2]


def test_socket_filter_as_reuseport_selector_sends_every_datagram_to_the_socket_it_picks(
    fixtures_dir: Path, requires_root: None
) -> None:
    group = reuseport_group(4)
    try:
        bpf = Ebpf.load_file(fixtures_dir / "net_socket")
        pick = bpf.programs["net_socket_pick"]
        assert isinstance(pick, pyaya.SocketFilter)
        _set(bpf, "PICK", 0, 2)
        link = pick.attach_reuseport(group[0])
        assert spread(group, 20) == [0, 0, 20, 0]
        _set(bpf, "PICK", 0, 1)
        assert spread(group, 20) == [0, 20, 0, 0]
        bpf.close()  # the group keeps its selector while the link is held, and after the object is gone
        assert spread(group, 20) == [0, 20, 0, 0]
        link.detach()  # SO_DETACH_REUSEPORT_BPF: the kernel's hash spreads them again
        spread_after = spread(group, 20)
        assert sum(spread_after) == 20
        assert max(spread_after) < 20
    finally:
        for member in group:
            member.close()


def test_socket_filter_link_outlives_a_closed_socket(fixtures_dir: Path, requires_root: None) -> None:
    with Ebpf.load_file(fixtures_dir / "net_socket") as bpf:
        program = bpf.programs["net_socket_filter"]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        link = program.attach(sock)
        sock.close()
        link.detach()  # the socket took its filter with it: nothing to do, no error
        assert not link.attached
        with pytest.raises(ValueError, match="closed"):
            program.attach(sock)


@contextlib.contextmanager
def _pin_path(name: str) -> Iterator[Path]:
    root = pyaya.features.bpffs_mount()
    if root is None:
        pytest.skip("bpffs is not mounted (mount -t bpf bpf /sys/fs/bpf)")
    path = root / f"pyaya_test_{os.getpid()}_{name}"
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def test_pinned_packet_programs_reopen_and_attach(fixtures_dir: Path, netns_pair: NetnsPair) -> None:
    """XDP, TC and socket filter programs pinned by one handle are reopened from the pin as their classes, and
    the reopened handles attach the same kernel programs (which count into the first handle's maps)."""
    with (
        _pin_path("xdp") as xdp_pin,
        _pin_path("tc") as tc_pin,
        _pin_path("socket") as socket_pin,
        Ebpf.load_file(fixtures_dir / "net_xdp") as xdp_object,
        Ebpf.load_file(fixtures_dir / "net_tc") as tc_object,
        Ebpf.load_file(fixtures_dir / "net_socket") as socket_object,
    ):
        pinned = []
        for bpf, name, pin in (
            (xdp_object, "net_xdp_filter", xdp_pin),
            (tc_object, "net_tc_drop_icmp", tc_pin),
            (socket_object, "net_socket_filter", socket_pin),
        ):
            program = bpf.programs[name]
            program.load()
            program.pin(pin)
            reopened = pyaya.Program.from_pin(pin)
            assert type(reopened) is type(program)
            assert reopened.info()["id"] == program.info()["id"]
            pinned.append(reopened)
        xdp, tc, socket_filter = pinned

        with xdp.attach(netns_pair.host_interface, mode="skb"), _udp_receiver(netns_pair.host_address) as (kept, port):
            sender = netns_pair.socket()
            with sender:
                sender.sendto(b"through the reopened program", (netns_pair.host_address, port))
            assert _receive_all(kept) == [b"through the reopened program"]
        assert _counts(xdp_object, "XDP_COUNTS")[0] >= 1

        assert tc.test_run(_icmp_frame()).return_value == pyaya.TC_ACT_SHOT
        with tc.attach(netns_pair.host_interface, "egress") as link:
            assert link.attached

        with _udp_receiver("127.0.0.1") as (receiver, port), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            socket_filter.attach(receiver)
            for payload in (b"keep 1", b"drop!"):
                sender.sendto(payload, ("127.0.0.1", port))
            assert _receive_all(receiver) == [b"keep 1"]
        assert _counts(socket_object, "FILTER_COUNTS") == [2, 1]


def test_sk_reuseport_picks_the_socket_of_its_group(bpf_object: LoadObject, fixtures_dir: Path) -> None:
    bpf = bpf_object(fixtures_dir / "net_reuseport")
    program = bpf.programs["net_reuseport_select"]
    assert isinstance(program, pyaya.SkReuseport)
    slots = bpf.maps["REUSEPORT_SOCKETS"]
    assert isinstance(slots, ReusePortSockArray)
    group = reuseport_group(2)
    try:
        slots[0], slots[1] = group
        link = program.attach(group[0])
        _set(bpf, "REUSEPORT_TARGET", 0, 1)
        assert spread(group, 16) == [0, 16]
        _set(bpf, "REUSEPORT_TARGET", 0, 0)
        assert spread(group, 16) == [16, 0]
        assert _counts(bpf, "REUSEPORT_COUNTS") == [32, 0]
        with pytest.raises(pyaya.UnsupportedError, match="cannot be pinned"):
            link.pin("/sys/fs/bpf/pyaya-never-pinned")
        assert link.attached  # a refused pin leaves the attachment as it was
        link.detach()
        assert sum(spread(group, 16)) == 16  # the kernel's hash again; the program no longer runs
        assert _counts(bpf, "REUSEPORT_COUNTS") == [32, 0]
    finally:
        for member in group:
            member.close()


# -- test_run ----------------------------------------------------------------------------------------------------


def test_run_xdp_verdicts_and_rewritten_frame(fixtures_dir: Path, requires_root: None) -> None:
    with Ebpf.load_file(fixtures_dir / "net_xdp") as bpf:
        frame = _udp_frame(9999, b"payload")
        swapped = bpf.programs["net_xdp_swap"].test_run(frame)
        assert swapped.return_value == pyaya.XDP_TX
        assert swapped.data == frame[6:12] + frame[0:6] + frame[12:]
        assert swapped.duration_ns >= 0

        program = bpf.programs["net_xdp_filter"]
        _set(bpf, "DROP_PORT", 0, 9999)
        assert program.test_run(frame).return_value == pyaya.XDP_DROP
        passed = program.test_run(_udp_frame(53, b"payload"), repeat=100)
        assert passed.return_value == pyaya.XDP_PASS
        assert passed.data == _udp_frame(53, b"payload")
        assert _counts(bpf, "XDP_COUNTS") == [101, 1]  # one drop, then the same pass 100 times


def test_run_tc_rewrites_payload_with_a_valid_checksum(fixtures_dir: Path, requires_root: None) -> None:
    with Ebpf.load_file(fixtures_dir / "net_tc") as bpf:
        _set(bpf, "REWRITE_PORT", 0, 7777)
        frame = _udp_frame(7777, b"ping-1234")
        result = bpf.programs["net_tc_rewrite"].test_run(frame)
        assert result.return_value == pyaya.TC_ACT_OK
        assert result.data[42:] == b"TCOK-1234"
        segment = result.data[34:]
        assert (
            _checksum(
                socket.inet_aton("10.1.0.1")
                + socket.inet_aton("10.1.0.2")
                + struct.pack("!BBH", 0, 17, len(segment))
                + segment
            )
            == 0
        )
        untouched = bpf.programs["net_tc_rewrite"].test_run(_udp_frame(53, b"ping-1234"))
        assert untouched.data[42:] == b"ping-1234"
        assert bpf.programs["net_tc_drop_icmp"].test_run(_icmp_frame()).return_value == pyaya.TC_ACT_SHOT
        assert bpf.programs["net_tc_drop_icmp"].test_run(frame).return_value == pyaya.TC_ACT_OK


def test_run_socket_filter_and_cgroup_skb(fixtures_dir: Path, requires_root: None) -> None:
    with Ebpf.load_file(fixtures_dir / "net_socket") as bpf:
        program = bpf.programs["net_socket_filter"]
        kept = _udp_frame(53, b"fine")
        # socket filters see the packet from its network header: the Ethernet header is not counted
        assert program.test_run(kept).return_value == len(kept) - 14
        assert program.test_run(_udp_frame(53, b"bad!")).return_value == 0
    with Ebpf.load_file(fixtures_dir / "net_cgroup") as bpf:
        program = bpf.programs["net_cgroup_skb"]
        assert program.test_run(_udp_frame(53, b"dns")).return_value == 1
        assert program.test_run(_udp_frame(9, b"discard")).return_value == 0
        assert _counts(bpf, "SKB_COUNTS")[2] == 1


def test_run_flow_dissector_fills_flow_keys(fixtures_dir: Path, requires_root: None) -> None:
    with Ebpf.load_file(fixtures_dir / "net_flow") as bpf:
        result = bpf.programs["net_flow_dissect"].test_run(_udp_frame(4242, b"x", sport=1234))
        assert result.return_value == BPF_OK
        nhoff, thoff, addr_proto, _, _, _, ip_proto, _n_proto, sport, dport, src, dst = struct.unpack_from(
            "=HHHBBBBHHH4s4s", result.data
        )
        assert (nhoff, thoff, addr_proto, ip_proto) == (14, 34, 0x0800, 17)
        assert (socket.ntohs(sport), socket.ntohs(dport)) == (1234, 4242)
        assert (socket.inet_ntoa(src), socket.inet_ntoa(dst)) == ("10.1.0.1", "10.1.0.2")
        assert _counts(bpf, "FLOW_COUNTS") == [1, 1]


def test_run_raw_tracepoint_with_packed_args(fixtures_dir: Path, requires_root: None) -> None:
    with Ebpf.load_file(fixtures_dir / "net_rawtp") as bpf:
        program = bpf.programs["net_rawtp_args"]
        assert isinstance(program, pyaya.RawTracePoint)
        result = program.test_run(ctx=struct.pack("=2Q", 40, 2))
        # aya-ebpf's #[raw_tracepoint] returns 0 whatever the function returns; the program keeps what it saw
        assert result == pyaya.TestRunResult(return_value=0, data=b"", ctx=b"", duration_ns=0)
        assert _counts(bpf, "LAST_ARG") == [2, 42]
        with pytest.raises(pyaya.ProgramError, match="packed as native-endian u64"):
            program.test_run(ctx=b"\x01\x02\x03")
        with pytest.raises(pyaya.ProgramError, match="takes only ctx"):
            program.test_run(b"packet")


def test_run_is_refused_for_types_the_kernel_cannot_run(fixtures_dir: Path, requires_root: None) -> None:
    with Ebpf.load_file(fixtures_dir / "net_sockmap") as bpf:
        program = bpf.programs["net_sk_lookup"]
        with pytest.raises(pyaya.UnsupportedError, match=r"SkLookup programs.*Xdp, SchedClassifier, SocketFilter"):
            program.test_run(_udp_frame(1, b""))
        assert not program.loaded  # refused before loading anything


# -- cgroups -----------------------------------------------------------------------------------------------------


def test_cgroup_skb_counts_and_drops_egress_of_a_process_in_the_cgroup(
    bpf_object: LoadObject, fixtures_dir: Path, cgroup: Cgroup
) -> None:
    bpf = bpf_object(fixtures_dir / "net_cgroup")
    program = bpf.programs["net_cgroup_skb"]
    assert isinstance(program, pyaya.CgroupSkb)
    program.attach(cgroup.path)  # direction from the program's section: cgroup_skb/egress
    with _udp_receiver("127.0.0.1") as (receiver, port):
        code = (
            "import socket\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"for i in range(3): s.sendto(b'x' * 10, ('127.0.0.1', {port}))\n"
            "for i in range(2):\n"
            "    try: s.sendto(b'discard', ('127.0.0.1', 9))\n"
            "    except PermissionError: print('refused')\n"
        )
        child = cgroup.run(*_python(code))
        assert child.stdout.split() == ["refused", "refused"]
        assert len(_receive_all(receiver)) == 3
        packets, octets, discarded = _counts(bpf, "SKB_COUNTS")
        assert discarded == 2
        assert packets == 5
        assert octets == 3 * (20 + 8 + 10) + 2 * (20 + 8 + 7)
        # this process is not in the cgroup: its traffic is not seen
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as outsider:
            outsider.sendto(b"outside", ("127.0.0.1", port))
        assert _receive_all(receiver) == [b"outside"]
        assert _counts(bpf, "SKB_COUNTS")[0] == 5


def test_cgroup_sysctl_refuses_a_read(bpf_object: LoadObject, fixtures_dir: Path, cgroup: Cgroup) -> None:
    bpf = bpf_object(fixtures_dir / "net_cgroup")
    program = bpf.programs["net_cgroup_sysctl"]
    assert isinstance(program, pyaya.CgroupSysctl)
    link = program.attach(cgroup.path)
    denied = cgroup.run("cat", "/proc/sys/kernel/ostype", check=False)
    assert denied.returncode != 0
    assert "Operation not permitted" in denied.stderr
    assert cgroup.run("cat", "/proc/sys/kernel/osrelease").stdout.strip() == os.uname().release
    assert Path("/proc/sys/kernel/ostype").read_text().strip() == "Linux"  # outside the cgroup
    assert _counts(bpf, "HOOK_COUNTS")[0] == 1
    link.detach()
    assert cgroup.run("cat", "/proc/sys/kernel/ostype").stdout.strip() == "Linux"


def test_cgroup_add_moves_a_running_process_under_the_program(
    bpf_object: LoadObject, fixtures_dir: Path, cgroup: Cgroup
) -> None:
    bpf = bpf_object(fixtures_dir / "net_cgroup")
    bpf.programs["net_cgroup_sysctl"].attach(cgroup.path)
    code = "input()\nprint(open('/proc/sys/kernel/ostype').read())"
    child = subprocess.Popen(
        _python(code), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        cgroup.add(child.pid)
        assert cgroup.pids == [child.pid]
        _, stderr = child.communicate("go\n", timeout=10)
    finally:
        child.kill()
        child.wait()
    assert child.returncode != 0
    assert "PermissionError" in stderr


def _so_mark_of_new_socket(cgroup: Cgroup) -> int:
    code = "import socket\nprint(socket.socket().getsockopt(socket.SOL_SOCKET, 36))"
    return int(cgroup.run(*_python(code)).stdout)


def test_cgroup_sockopt_alters_getsockopt(bpf_object: LoadObject, fixtures_dir: Path, cgroup: Cgroup) -> None:
    bpf = bpf_object(fixtures_dir / "net_cgroup")
    program = bpf.programs["net_cgroup_getsockopt"]
    assert isinstance(program, pyaya.CgroupSockopt)
    assert _so_mark_of_new_socket(cgroup) == 0
    link = program.attach(cgroup.path)
    assert _so_mark_of_new_socket(cgroup) == 0x5EBA
    with socket.socket() as outsider:
        assert outsider.getsockopt(socket.SOL_SOCKET, SO_MARK) == 0
    link.detach()
    assert _so_mark_of_new_socket(cgroup) == 0


def test_cgroup_sock_marks_new_sockets(bpf_object: LoadObject, fixtures_dir: Path, cgroup: Cgroup) -> None:
    bpf = bpf_object(fixtures_dir / "net_cgroup")
    program = bpf.programs["net_cgroup_sock_create"]
    assert isinstance(program, pyaya.CgroupSock)
    program.attach(cgroup.path)
    assert _so_mark_of_new_socket(cgroup) == 0x7AB
    assert _counts(bpf, "HOOK_COUNTS")[2] >= 1


def test_cgroup_sock_addr_redirects_connect(bpf_object: LoadObject, fixtures_dir: Path, cgroup: Cgroup) -> None:
    bpf = bpf_object(fixtures_dir / "net_cgroup")
    program = bpf.programs["net_cgroup_connect4"]
    assert isinstance(program, pyaya.CgroupSockAddr)
    with socket.socket() as listener, socket.socket() as placeholder:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(5)
        placeholder.bind(("127.0.0.1", 0))  # reserved, never listening: a connect there is refused
        _set(bpf, "PORTS", 0, placeholder.getsockname()[1])
        _set(bpf, "PORTS", 1, listener.getsockname()[1])
        program.attach(cgroup.path)
        code = (
            "import socket\n"
            f"c = socket.create_connection(('127.0.0.1', {placeholder.getsockname()[1]}), timeout=5)\n"
            "c.sendall(b'redirected')\n"
        )
        cgroup.run(*_python(code))
        accepted, _ = listener.accept()
        with accepted:
            assert accepted.recv(64) == b"redirected"
    assert _counts(bpf, "HOOK_COUNTS")[3] == 1


def test_cgroup_device_refuses_dev_null(bpf_object: LoadObject, fixtures_dir: Path, cgroup: Cgroup) -> None:
    bpf = bpf_object(fixtures_dir / "net_cgroup")
    program = bpf.programs["net_cgroup_device"]
    assert isinstance(program, pyaya.CgroupDevice)
    program.attach(cgroup.path)
    refused = cgroup.run(*_python("open('/dev/null')"), check=False)
    assert refused.returncode != 0
    assert "PermissionError" in refused.stderr
    cgroup.run(*_python("open('/dev/zero', 'rb').read(1)"))
    assert _counts(bpf, "HOOK_COUNTS")[4] >= 1


def test_sock_ops_sees_a_tcp_connect(bpf_object: LoadObject, fixtures_dir: Path, cgroup: Cgroup) -> None:
    bpf = bpf_object(fixtures_dir / "net_cgroup")
    program = bpf.programs["net_sock_ops"]
    assert isinstance(program, pyaya.SockOps)
    program.attach(cgroup.path)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        cgroup.run(*_python(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=5).close()"))
    events = _counts(bpf, "SOCK_OPS_EVENTS")
    assert events[BPF_SOCK_OPS_TCP_CONNECT_CB] == 1
    assert events[BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB] == 1
    assert socket.ntohl(_counts(bpf, "SOCK_OPS_PORT")[0]) == port


def test_cgroup_attach_errors(fixtures_dir: Path, cgroup: Cgroup, tmp_path: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "net_cgroup") as bpf:
        program = bpf.programs["net_cgroup_sysctl"]
        with pytest.raises(pyaya.NotFoundError, match="no-such-cgroup"):
            program.attach(cgroup.path / "no-such-cgroup")
        with pytest.raises(pyaya.ProgramError, match="not a cgroup v2 directory"):
            program.attach(tmp_path)
        with pytest.raises(pyaya.ProgramError, match="only CgroupSkb programs take a direction"):
            program._native.attach_cgroup(cgroup.path, "egress")
        skb = bpf.programs["net_cgroup_skb"]
        with pytest.raises(ValueError, match="ingress"):
            skb.attach(cgroup.path, "sideways")  # type: ignore[arg-type]


# -- socket maps, sk_lookup, flow dissector ----------------------------------------------------------------------


@contextlib.contextmanager
def _tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.create_connection(listener.getsockname(), timeout=5)
        server, _ = listener.accept()
        server.settimeout(5)
        try:
            yield client, server
        finally:
            client.close()
            server.close()


def test_sk_msg_on_a_sockmap_counts_and_refuses(bpf_object: LoadObject, fixtures_dir: Path) -> None:
    bpf = bpf_object(fixtures_dir / "net_sockmap")
    program = bpf.programs["net_sk_msg"]
    assert isinstance(program, pyaya.SkMsg)
    link = program.attach(bpf.maps["MSG_MAP"])
    with _tcp_pair() as (client, server):
        _store_socket(bpf, "MSG_MAP", 0, client)
        client.sendall(b"hello")
        assert server.recv(64) == b"hello"
        with pytest.raises(PermissionError):
            client.send(b"thirteen byte")
        messages, octets, refused, _, _ = _counts(bpf, "SOCK_COUNTS")
        assert (messages, octets, refused) == (2, 18, 1)
    link.detach()
    with pytest.raises(pyaya.ProgramError, match="SockMap or SockHash"):
        program.attach(bpf.maps["SOCK_COUNTS"])


def test_sk_skb_stream_verdict_sees_received_data(bpf_object: LoadObject, fixtures_dir: Path) -> None:
    bpf = bpf_object(fixtures_dir / "net_sockmap")
    program = bpf.programs["net_sk_skb"]
    assert isinstance(program, pyaya.SkSkb)
    program.attach(bpf.maps["SKB_MAP"])
    with _tcp_pair() as (client, server):
        _store_socket(bpf, "SKB_MAP", 0, server)
        client.sendall(b"through the verdict")
        received = b""
        while len(received) < len(b"through the verdict"):
            received += server.recv(64)
        assert received == b"through the verdict"
    assert _counts(bpf, "SOCK_COUNTS")[3] >= 1


def test_sk_lookup_steers_a_port_to_another_listener(
    bpf_object: LoadObject, fixtures_dir: Path, netns_pair: NetnsPair
) -> None:
    bpf = bpf_object(fixtures_dir / "net_sockmap")
    program = bpf.programs["net_sk_lookup"]
    assert isinstance(program, pyaya.SkLookup)
    listener = netns_pair.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(5)
        steered_port = 40000 + os.getpid() % 20000
        _store_socket(bpf, "LOOKUP_MAP", 0, listener)
        _set(bpf, "STEER_PORT", 0, steered_port)
        link = program.attach(netns_pair.netns_path)
        client = netns_pair.socket(socket.AF_INET, socket.SOCK_STREAM)
        with client:
            client.settimeout(5)
            client.connect(("127.0.0.1", steered_port))
            client.sendall(b"steered")
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.recv(64) == b"steered"
        assert _counts(bpf, "SOCK_COUNTS")[4] >= 1
        link.detach()
        refused = netns_pair.socket(socket.AF_INET, socket.SOCK_STREAM)
        with refused, pytest.raises(ConnectionRefusedError):
            refused.connect(("127.0.0.1", steered_port))
    finally:
        listener.close()


def test_flow_dissector_attaches_to_a_netns_and_dissects_its_traffic(
    bpf_object: LoadObject, fixtures_dir: Path, netns_pair: NetnsPair
) -> None:
    bpf = bpf_object(fixtures_dir / "net_flow")
    program = bpf.programs["net_flow_dissect"]
    assert isinstance(program, pyaya.FlowDissector)
    link = program.attach(netns_pair.netns_path)
    assert link.attached
    with pytest.raises(pyaya.ProgramError):
        bpf_object(fixtures_dir / "net_flow").programs["net_flow_dissect"].attach(netns_pair.netns_path)
    # With receive packet steering on, the kernel hashes each packet the peer receives: the namespace's flow
    # dissector runs for it.
    netns_pair.run("tee", f"/sys/class/net/{netns_pair.peer_interface}/queues/rx-0/rps_cpus", input="1\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for _ in range(3):
            sender.sendto(b"dissect me", (netns_pair.peer_address, 9))
    deadline = time.monotonic() + 2
    while _counts(bpf, "FLOW_COUNTS")[1] < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    runs, dissected = _counts(bpf, "FLOW_COUNTS")
    assert dissected >= 3
    assert runs >= dissected
    link.detach()
    with pytest.raises(pyaya.NotFoundError):
        program.attach("/var/run/netns/pyaya-no-such-netns")


# -- nothing left behind -----------------------------------------------------------------------------------------


def test_close_leaves_no_program_link_or_qdisc(fixtures_dir: Path, netns_pair: NetnsPair, cgroup: Cgroup) -> None:
    links_before, programs_before = _bpf_fds("bpf_link"), _bpf_fds("bpf-prog")
    with Ebpf.load_file(fixtures_dir / "net_tc") as tc_bpf, Ebpf.load_file(fixtures_dir / "net_cgroup") as cg_bpf:
        tc_bpf.programs["net_tc_rewrite"].attach(netns_pair.host_interface, "ingress")
        tc_bpf.programs["net_tc_drop_icmp"].attach(netns_pair.host_interface, "egress")
        cg_bpf.programs["net_cgroup_skb"].attach(cgroup.path, "egress")
        cg_bpf.programs["net_cgroup_sysctl"].attach(cgroup.path)
        cg_bpf.programs["net_sock_ops"].attach(cgroup.path)
        ids = _program_ids(tc_bpf) | _program_ids(cg_bpf)
        assert ids <= _loaded_ids()
        assert len(_bpf_fds("bpf_link") - links_before) == 5
    assert not ids & _loaded_ids()
    assert _bpf_fds("bpf_link") <= links_before
    assert _bpf_fds("bpf-prog") <= programs_before
    assert "clsact" not in _qdiscs(netns_pair.host_interface)
    attached = subprocess.run(
        ["tc", "filter", "show", "dev", netns_pair.host_interface, "ingress"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert attached.stdout.strip() == ""


def test_fixtures_removed_their_netns_and_cgroups() -> None:
    # Runs after every test above: each netns_pair and cgroup fixture they used has been torn down.
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    assert f"pyaya-{os.getpid() % 100000}" not in netns
    assert not list(Path("/sys/class/net").glob(f"pya{os.getpid() % 100000}*"))
    root = cgroup2_mount()
    if root is not None:
        assert not list(root.glob(f"pyaya-test-{os.getpid()}-*"))


def test_privilege_skip_reason_states_what_was_probed() -> None:
    # The reason behind the plugin's requires_root skip, asked in a process that dropped to nobody.
    script = (
        "import os, pyaya.testing\n"
        "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
        "print(pyaya.testing.privilege_skip_reason())\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd="/", check=True)
    assert result.stdout.strip() == "needs root: this process runs with euid 65534"
    assert pyaya.testing.privilege_skip_reason() is None  # this test runs as root with a working bpf()
