"""User space of {{name}}: counts packets and bytes per IP protocol on an interface with
XDP, drops IPv4 packets from the addresses given with --drop (printing each one), and prints the counts when it stops.

    sudo pyaya run                                   # interface {{interface|py}}, until Ctrl-C
    sudo pyaya run --json --duration 5
    sudo python main.py --drop 192.0.2.7 --drop 198.51.100.1 --interface eth0 --mode skb

It also runs on its own:

    sudo python main.py --object target/bpfel-unknown-none/release/{{name}}
"""

from __future__ import annotations

import argparse
import ctypes
import ipaddress
import socket
import sys
from typing import Any

from pyaya.runtime import Column, RunOptions, Session, parse_options

#: Names for the protocol slots of PACKETS and BYTES; other numbers are shown as they are.
PROTOCOL_NAMES = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 41: "ipv6-in-ipv4", 47: "gre", 50: "esp", 58: "icmpv6",
                  132: "sctp", 255: "not-ip"}  # fmt: skip
#: XDP modes: skb (generic, any interface, kernel 4.12), drv (the driver's, fastest), hw (offloaded to the NIC).
MODES = {"skb": "skb", "drv": "drv", "hw": "hw", "auto": None}


class DropEvent(ctypes.Structure):
    """Mirrors `{{crate_name}}_common::DropEvent` (keep the two in step)."""

    _fields_ = [
        ("source", ctypes.c_uint8 * 4),
        ("destination", ctypes.c_uint8 * 4),
        ("length", ctypes.c_uint32),
        ("ifindex", ctypes.c_uint32),
        ("protocol", ctypes.c_uint8),
        ("padding", ctypes.c_uint8 * 3),
    ]


def address_key(address: str) -> bytes:
    """The DROP_LIST key of an IPv4 address: its four bytes in network order (the key type is `[u8; 4]`)."""
    return ipaddress.IPv4Address(address).packed


def key_address(key: bytes | int) -> str:
    """The address of a DROP_LIST key, whether the map hands it back as bytes or as a native-order int."""
    packed = key.to_bytes(4, sys.byteorder) if isinstance(key, int) else bytes(key)
    return str(ipaddress.IPv4Address(packed))


def protocol_name(number: int) -> str:
    return PROTOCOL_NAMES.get(number, str(number))


def interface_name(ifindex: int) -> str:
    try:
        return socket.if_indextoname(ifindex)
    except OSError:
        return str(ifindex)


def total(value: Any) -> int:
    """A counter's value: per-CPU maps give one value per CPU (`PerCpuValues`), summed here."""
    return int(value.sum()) if hasattr(value, "sum") else int(value)


class ProtocolTotals:
    """A per-protocol PerCpuArray as `(protocol, total)` pairs with a non-zero total, for `show_map_at_exit`."""

    def __init__(self, counters: Any) -> None:
        self.counters = counters
        self.name = counters.name

    def items(self) -> list[tuple[str, int]]:
        totals = ((slot, total(self.counters[slot])) for slot in range(len(self.counters)))
        return [(protocol_name(slot), count) for slot, count in totals if count]


class DropCounts:
    """DROP_LIST as `(address, packets dropped)` pairs."""

    def __init__(self, drop_list: Any) -> None:
        self.drop_list = drop_list
        self.name = drop_list.name

    def items(self) -> list[tuple[str, int]]:
        return [(key_address(key), total(count)) for key, count in self.drop_list.items()]


#: What --help says first: the opening of this file's docstring.
DESCRIPTION = (__doc__ or "").partition("\n\n")[0].replace("\n", " ")


def parse_arguments() -> tuple[argparse.Namespace, RunOptions]:
    """This project's options and the ones every pyaya project has (--object, --json, -p PID, interval, ...), in
    one parser: --help lists them all."""
    parser = argparse.ArgumentParser(prog="main.py", description=DESCRIPTION, allow_abbrev=False)
    parser.add_argument("--interface", default="{{interface|py}}", help="interface to attach to (default: %(default)s)")
    parser.add_argument("--mode", choices=sorted(MODES), default="skb", help="XDP mode (default: %(default)s)")
    parser.add_argument(
        "--drop",
        action="append",
        default=[],
        metavar="ADDR",
        type=lambda text: str(ipaddress.IPv4Address(text)),
        help="drop IPv4 packets from this source address (repeatable)",
    )
    options = parse_options(parser=parser)
    return options.args, options


def main() -> None:
    columns = [
        Column("source", 16),
        Column("destination", 16),
        Column("protocol", 9),
        Column("length", 7, align=">"),
        Column("interface"),
    ]
    arguments, options = parse_arguments()
    with Session("{{name}}", options=options, columns=columns) as session:
        bpf = session.load()
        drop_list = bpf.maps["DROP_LIST"]
        for address in arguments.drop:
            drop_list[address_key(address)] = 0
        bpf.programs["{{crate_name}}"].attach(arguments.interface, mode=MODES[arguments.mode])
        session.show_map_at_exit(ProtocolTotals(bpf.maps["PACKETS"]), key="protocol", value="packets")  # type: ignore[arg-type]
        session.show_map_at_exit(ProtocolTotals(bpf.maps["BYTES"]), key="protocol", value="bytes")  # type: ignore[arg-type]
        if arguments.drop:
            session.show_map_at_exit(DropCounts(drop_list), key="source", value="dropped")  # type: ignore[arg-type]
        for event in session.stream(bpf.maps["DROPPED"].typed(DropEvent)):
            session.event(
                "DROPPED",
                {
                    "source": str(ipaddress.IPv4Address(bytes(event.source))),
                    "destination": str(ipaddress.IPv4Address(bytes(event.destination))),
                    "protocol": protocol_name(event.protocol),
                    "length": event.length,
                    "interface": interface_name(event.ifindex),
                },
            )


if __name__ == "__main__":
    main()
