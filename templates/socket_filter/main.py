"""User space of {{name}}: a tiny tcpdump. A socket filter on a raw packet socket
reports every packet (protocol, addresses, ports, length, direction) as an event; the packet counts per protocol are
printed when it stops.

    sudo pyaya run                                   # packets on lo, until Ctrl-C
    sudo pyaya run --json --duration 5
    sudo python main.py --interface eth0             # or --interface any (careful over ssh: every line printed
                                                     # is itself a packet)

It also runs on its own:

    sudo python main.py --object target/bpfel-unknown-none/release/{{name}}
"""

from __future__ import annotations

import argparse
import ctypes
import ipaddress
import socket
from typing import Any

from pyaya.runtime import Column, RunOptions, Session, parse_options

ETH_P_ALL = 0x0003
PROTOCOL_NAMES = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 47: "gre", 50: "esp", 58: "icmpv6", 132: "sctp"}
ETHERTYPE_NAMES = {0x0806: "arp", 0x8035: "rarp", 0x88CC: "lldp", 0x8100: "vlan", 0x8847: "mpls"}
PACKET_TYPES = {0: "in", 1: "broadcast", 2: "multicast", 3: "other-host", 4: "out"}
#: PROTOCOL_COUNTS keys at or above this are `NOT_IP + EtherType`.
NOT_IP = 0x10000


class PacketEvent(ctypes.Structure):
    """Mirrors `{{crate_name}}_common::PacketEvent` (keep the two in step)."""

    _fields_ = [
        ("source", ctypes.c_uint8 * 16),
        ("destination", ctypes.c_uint8 * 16),
        ("source_port", ctypes.c_uint16),
        ("destination_port", ctypes.c_uint16),
        ("ethertype", ctypes.c_uint16),
        ("protocol", ctypes.c_uint8),
        ("family", ctypes.c_uint8),
        ("length", ctypes.c_uint32),
        ("ifindex", ctypes.c_uint32),
        ("packet_type", ctypes.c_uint32),
    ]


def protocol_name(key: int) -> str:
    """A PROTOCOL_COUNTS key (or an event's protocol) by name."""
    if key >= NOT_IP:
        ethertype = key - NOT_IP
        return ETHERTYPE_NAMES.get(ethertype, f"ethertype-0x{ethertype:04x}")
    return PROTOCOL_NAMES.get(key, str(key))


def address(raw: Any, family: int) -> str:
    data = bytes(raw)
    if family == 4:
        return str(ipaddress.IPv4Address(data[:4]))
    return str(ipaddress.IPv6Address(data)) if family == 6 else ""


def interface_name(ifindex: int) -> str:
    try:
        return socket.if_indextoname(ifindex)
    except OSError:
        return str(ifindex)


def event_fields(event: PacketEvent) -> dict[str, Any]:
    key = event.protocol if event.family else NOT_IP + event.ethertype
    return {
        "protocol": protocol_name(key),
        "source": address(event.source, event.family),
        "source_port": event.source_port,
        "destination": address(event.destination, event.family),
        "destination_port": event.destination_port,
        "length": event.length,
        "direction": PACKET_TYPES.get(event.packet_type, str(event.packet_type)),
        "interface": interface_name(event.ifindex),
    }


class ProtocolCounts:
    """PROTOCOL_COUNTS with protocol names as keys, for `show_map_at_exit`."""

    def __init__(self, counts: Any) -> None:
        self.counts = counts
        self.name = counts.name

    def items(self) -> list[tuple[str, int]]:
        return [(protocol_name(key), count) for key, count in self.counts.items()]


def open_packet_socket(interface: str) -> socket.socket:
    """A raw packet socket seeing every protocol, on one interface or (`any`) all of them."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    if interface != "any":
        sock.bind((interface, ETH_P_ALL))
    return sock


#: What --help says first: the opening of this file's docstring.
DESCRIPTION = (__doc__ or "").partition("\n\n")[0].replace("\n", " ")


def parse_arguments() -> tuple[argparse.Namespace, RunOptions]:
    """This project's options and the ones every pyaya project has (--object, --json, -p PID, interval, ...), in
    one parser: --help lists them all."""
    parser = argparse.ArgumentParser(prog="main.py", description=DESCRIPTION, allow_abbrev=False)
    parser.add_argument("--interface", default="lo", help="interface to watch, or any (default: %(default)s)")
    options = parse_options(parser=parser)
    return options.args, options


def main() -> None:
    columns = [
        Column("direction", 9),
        Column("interface", 9),
        Column("protocol", 8),
        Column("source", 24),
        Column("source_port", 6, "SPORT", ">"),
        Column("destination", 24),
        Column("destination_port", 6, "DPORT", ">"),
        Column("length", 6, align=">"),
    ]
    arguments, options = parse_arguments()
    with Session("{{name}}", options=options, columns=columns) as session:
        bpf = session.load()
        with open_packet_socket(arguments.interface) as packet_socket:
            bpf.programs["{{crate_name}}"].attach(packet_socket)
            session.show_map_at_exit(ProtocolCounts(bpf.maps["PROTOCOL_COUNTS"]), key="protocol", value="packets")  # type: ignore[arg-type]
            for record in session.stream(bpf.maps["PACKETS"].typed(PacketEvent)):
                session.event("PACKETS", event_fields(record))


if __name__ == "__main__":
    main()
