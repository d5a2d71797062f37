"""UDP socket helpers shared by the kernel tests of socket programs (reuseport groups and what they receive)."""

from __future__ import annotations

import contextlib
import socket


def reuseport_group(size: int) -> list[socket.socket]:
    """``size`` UDP sockets on one 127.0.0.1 port, all with SO_REUSEPORT: one reuseport group."""
    group: list[socket.socket] = []
    port = 0
    for _ in range(size):
        member = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        member.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        member.bind(("127.0.0.1", port))
        member.settimeout(0.2)
        port = member.getsockname()[1]
        group.append(member)
    return group


def receive_all(receiver: socket.socket, limit: int = 64) -> list[bytes]:
    """Datagrams waiting on ``receiver`` (up to ``limit``), until its timeout passes with none."""
    received = []
    with contextlib.suppress(TimeoutError):
        while len(received) < limit:
            received.append(receiver.recv(2048))
    return received


def spread(group: list[socket.socket], datagrams: int) -> list[int]:
    """How many of ``datagrams`` (each from a new source port) each member of ``group`` receives."""
    destination = group[0].getsockname()
    for i in range(datagrams):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"datagram %d" % i, destination)
    return [len(receive_all(member)) for member in group]
