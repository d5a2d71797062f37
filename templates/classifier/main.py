"""User space of {{name}}: a TC classifier on an interface that prints each new flow
(protocol, addresses, ports), then the packets and bytes of every flow when it stops.

    sudo pyaya run                                   # {{direction|py}} traffic of {{interface|py}}, until Ctrl-C
    sudo pyaya run --json --duration 5
    sudo python main.py --interface eth0 --direction egress
    sudo pyaya run --args '--priority 1'             # a netlink filter on clsact instead of a tcx link

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

PROTOCOL_NAMES = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 47: "gre", 50: "esp", 58: "icmpv6", 132: "sctp"}


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


class FlowStats(ctypes.Structure):
    """Mirrors `{{crate_name}}_common::FlowStats`."""

    _fields_ = [("packets", ctypes.c_uint64), ("bytes", ctypes.c_uint64)]


class NewFlowEvent(ctypes.Structure):
    """Mirrors `{{crate_name}}_common::NewFlowEvent`."""

    _fields_ = [("flow", Flow), ("length", ctypes.c_uint32), ("ifindex", ctypes.c_uint32)]


def protocol_name(number: int) -> str:
    return PROTOCOL_NAMES.get(number, str(number))


def address(raw: Any, family: int) -> str:
    data = bytes(raw)
    return str(ipaddress.IPv4Address(data[:4]) if family == 4 else ipaddress.IPv6Address(data))


def endpoint(raw: Any, port: int, family: int) -> str:
    host = address(raw, family)
    if not port:
        return host
    return f"{host}:{port}" if family == 4 else f"[{host}]:{port}"


def flow_fields(flow: Flow) -> dict[str, Any]:
    return {
        "protocol": protocol_name(flow.protocol),
        "source": address(flow.source, flow.family),
        "source_port": flow.source_port,
        "destination": address(flow.destination, flow.family),
        "destination_port": flow.destination_port,
    }


def flow_text(flow: Flow) -> str:
    source = endpoint(flow.source, flow.source_port, flow.family)
    destination = endpoint(flow.destination, flow.destination_port, flow.family)
    return f"{protocol_name(flow.protocol)} {source} > {destination}"


def interface_name(ifindex: int) -> str:
    try:
        return socket.if_indextoname(ifindex)
    except OSError:
        return str(ifindex)


class FlowTable:
    """FLOWS as `(flow, {"packets", "bytes"})` pairs, busiest first, for `show_map_at_exit`."""

    def __init__(self, flows: Any) -> None:
        self.flows = flows.typed(Flow, FlowStats)
        self.name = flows.name

    def items(self) -> list[tuple[str, dict[str, int]]]:
        rows = [(flow_text(flow), {"packets": s.packets, "bytes": s.bytes}) for flow, s in self.flows.items()]
        return sorted(rows, key=lambda row: row[1]["bytes"], reverse=True)


#: What --help says first: the opening of this file's docstring.
DESCRIPTION = (__doc__ or "").partition("\n\n")[0].replace("\n", " ")


def parse_arguments() -> tuple[argparse.Namespace, RunOptions]:
    """This project's options and the ones every pyaya project has (--object, --json, -p PID, interval, ...), in
    one parser: --help lists them all."""
    parser = argparse.ArgumentParser(prog="main.py", description=DESCRIPTION, allow_abbrev=False)
    parser.add_argument("--interface", default="{{interface|py}}", help="interface to attach to (default: %(default)s)")
    parser.add_argument("--direction", choices=["ingress", "egress"], default="{{direction|py}}")
    parser.add_argument(
        "--priority",
        type=int,
        default=0,
        help="attach as a netlink filter of this priority on the clsact qdisc (default 0: a tcx link, kernel 6.6+)",
    )
    options = parse_options(parser=parser)
    return options.args, options


def main() -> None:
    columns = [
        Column("protocol", 8),
        Column("source", 39),
        Column("source_port", 6, "SPORT", ">"),
        Column("destination", 39),
        Column("destination_port", 6, "DPORT", ">"),
        Column("length", 6, align=">"),
        Column("interface"),
    ]
    arguments, options = parse_arguments()
    with Session("{{name}}", options=options, columns=columns) as session:
        bpf = session.load()
        bpf.programs["{{crate_name}}"].attach(
            arguments.interface, direction=arguments.direction, priority=arguments.priority
        )
        session.show_map_at_exit(FlowTable(bpf.maps["FLOWS"]), key="flow", value="traffic", sort_by_value=False)  # type: ignore[arg-type]
        for event in session.stream(bpf.maps["NEW_FLOWS"].typed(NewFlowEvent)):
            fields = flow_fields(event.flow)
            session.event("NEW_FLOWS", {**fields, "length": event.length, "interface": interface_name(event.ifindex)})


if __name__ == "__main__":
    main()
