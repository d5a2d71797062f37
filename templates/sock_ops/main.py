"""User space of {{name}}: reports TCP connections of the processes in a cgroup (v2) as
they are established and closed (addresses, ports, smoothed RTT, bytes, retransmissions), then a log2 histogram of RTT
samples when it stops (like BCC's tcprtt).

    sudo pyaya run                                   # the root cgroup: every connection, until Ctrl-C
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

KINDS = {1: "connect", 2: "accept", 3: "close"}
AF_INET = 2


class TcpEvent(ctypes.Structure):
    """Mirrors `{{crate_name}}_common::TcpEvent` (keep the two in step)."""

    _fields_ = [
        ("kind", ctypes.c_uint32),
        ("family", ctypes.c_uint32),
        ("local", ctypes.c_uint8 * 16),
        ("remote", ctypes.c_uint8 * 16),
        ("local_port", ctypes.c_uint16),
        ("remote_port", ctypes.c_uint16),
        ("srtt_us", ctypes.c_uint32),
        ("bytes_acked", ctypes.c_uint64),
        ("bytes_received", ctypes.c_uint64),
        ("total_retrans", ctypes.c_uint32),
        ("padding", ctypes.c_uint32),
    ]


def address(raw: Any, family: int) -> str:
    data = bytes(raw)
    return str(ipaddress.IPv4Address(data[:4]) if family == AF_INET else ipaddress.IPv6Address(data))


def event_fields(event: TcpEvent) -> dict[str, Any]:
    return {
        "event": KINDS.get(event.kind, str(event.kind)),
        "local": address(event.local, event.family),
        "local_port": event.local_port,
        "remote": address(event.remote, event.family),
        "remote_port": event.remote_port,
        "srtt_us": event.srtt_us,
        "bytes_acked": event.bytes_acked,
        "bytes_received": event.bytes_received,
        "retransmits": event.total_retrans,
    }


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
        Column("event", 8),
        Column("local", 24),
        Column("local_port", 6, "LPORT", ">"),
        Column("remote", 24),
        Column("remote_port", 6, "RPORT", ">"),
        Column("srtt_us", 8, "SRTT(us)", ">"),
        Column("bytes_acked", 10, "TX", ">"),
        Column("bytes_received", 10, "RX", ">"),
        Column("retransmits", 0, "RETRANS", ">"),
    ]
    arguments, options = parse_arguments()
    with Session("{{name}}", options=options, columns=columns) as session:
        bpf = session.load()
        with cgroup(arguments.cgroup) as path:
            bpf.programs["{{crate_name}}"].attach(str(path))
            session.show_histogram_at_exit(bpf.maps["RTT_HISTOGRAM"], label="srtt usecs")
            for record in session.stream(bpf.maps["EVENTS"].typed(TcpEvent)):
                session.event("EVENTS", event_fields(record))


if __name__ == "__main__":
    main()
