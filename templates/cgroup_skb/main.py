"""User space of {{name}}: meters the {{direction|py}} traffic
of every process in a cgroup (v2): an event for each new flow, with the uid owning its socket, and packets and bytes per
protocol when it stops.

    sudo pyaya run                                   # the root cgroup: the whole machine, until Ctrl-C
    sudo pyaya run --json --duration 5
    sudo python main.py --cgroup /sys/fs/cgroup/unified/my.slice      # created if missing, removed at exit if so

It also runs on its own:

    sudo python main.py --object target/bpfel-unknown-none/release/{{name}}
"""

from __future__ import annotations

import argparse
import ctypes
import ipaddress
from pathlib import Path
from typing import Any

from pyaya.kernel import cgroup
from pyaya.runtime import Column, RunOptions, Session, parse_options

PROTOCOL_NAMES = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 47: "gre", 50: "esp", 58: "icmpv6", 132: "sctp"}
DIRECTION = "{{direction|py}}"


class Flow(ctypes.Structure):
    """Mirrors `{{crate_name}}_common::Flow` (keep the two in step)."""

    _fields_ = [
        ("source", ctypes.c_uint8 * 16),
        ("destination", ctypes.c_uint8 * 16),
        ("source_port", ctypes.c_uint16),
        ("destination_port", ctypes.c_uint16),
        ("protocol", ctypes.c_uint8),
        ("family", ctypes.c_uint8),
        ("padding", ctypes.c_uint8 * 2),
    ]


class NewFlowEvent(ctypes.Structure):
    """Mirrors `{{crate_name}}_common::NewFlowEvent`."""

    _fields_ = [("flow", Flow), ("length", ctypes.c_uint32), ("uid", ctypes.c_uint32)]


def protocol_name(number: int) -> str:
    return PROTOCOL_NAMES.get(number, str(number))


def address(raw: Any, family: int) -> str:
    data = bytes(raw)
    return str(ipaddress.IPv4Address(data[:4]) if family == 4 else ipaddress.IPv6Address(data))


def event_fields(event: NewFlowEvent) -> dict[str, Any]:
    flow = event.flow
    return {
        "protocol": protocol_name(flow.protocol),
        "source": address(flow.source, flow.family),
        "source_port": flow.source_port,
        "destination": address(flow.destination, flow.family),
        "destination_port": flow.destination_port,
        "length": event.length,
        "uid": event.uid,
    }


class ByProtocol:
    """A per-protocol counter map with protocol names as keys, for `show_map_at_exit`."""

    def __init__(self, counters: Any) -> None:
        self.counters = counters
        self.name = counters.name

    def items(self) -> list[tuple[str, int]]:
        return [(protocol_name(key), count) for key, count in self.counters.items()]


#: What --help says first: the opening of this file's docstring.
DESCRIPTION = (__doc__ or "").partition("\n\n")[0].replace("\n", " ")


def parse_arguments() -> tuple[argparse.Namespace, RunOptions]:
    """This project's options and the ones every pyaya project has (--object, --json, -p PID, interval, ...), in
    one parser: --help lists them all."""
    parser = argparse.ArgumentParser(prog="main.py", description=DESCRIPTION, allow_abbrev=False)
    parser.add_argument("--cgroup", type=Path, help="cgroup v2 folder (default: the root cgroup); created if missing")
    options = parse_options(parser=parser)
    return options.args, options


def main() -> None:
    columns = [
        Column("uid", 6),
        Column("protocol", 8),
        Column("source", 39),
        Column("source_port", 6, "SPORT", ">"),
        Column("destination", 39),
        Column("destination_port", 6, "DPORT", ">"),
        Column("length", 6, align=">"),
    ]
    arguments, options = parse_arguments()
    with Session("{{name}}", options=options, columns=columns) as session:
        bpf = session.load()
        with cgroup(arguments.cgroup) as path:
            bpf.programs["{{crate_name}}"].attach(str(path), direction=DIRECTION)
            session.show_map_at_exit(ByProtocol(bpf.maps["PACKETS"]), key="protocol", value="packets")  # type: ignore[arg-type]
            session.show_map_at_exit(ByProtocol(bpf.maps["BYTES"]), key="protocol", value="bytes")  # type: ignore[arg-type]
            for record in session.stream(bpf.maps["NEW_FLOWS"].typed(NewFlowEvent)):
                session.event("NEW_FLOWS", event_fields(record))


if __name__ == "__main__":
    main()
