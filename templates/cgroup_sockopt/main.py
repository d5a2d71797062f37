"""User space of {{name}}: logs every {{sockopt_target|py}} call made
by the processes of a cgroup (v2): who called it, on which kind of socket, which option and how long a buffer; prints
the calls per option when it stops. The calls themselves are not changed.

    sudo pyaya run                                   # the root cgroup: every process, until Ctrl-C
    sudo pyaya run --json --duration 5
    sudo python main.py --cgroup /sys/fs/cgroup/unified/my.slice      # created if missing, removed at exit if so

It also runs on its own:

    sudo python main.py --object target/bpfel-unknown-none/release/{{name}}
"""

from __future__ import annotations

import argparse
import ctypes
import socket
from pathlib import Path
from typing import Any

from pyaya.kernel import cgroup
from pyaya.runtime import Column, RunOptions, Session, parse_options

LEVELS = {socket.SOL_SOCKET: "SOL_SOCKET", socket.IPPROTO_IP: "IPPROTO_IP", socket.IPPROTO_TCP: "IPPROTO_TCP",
          socket.IPPROTO_UDP: "IPPROTO_UDP", socket.IPPROTO_IPV6: "IPPROTO_IPV6"}  # fmt: skip
#: Option-name prefixes of each level, to name options from the socket module's constants.
OPTION_PREFIXES = {socket.SOL_SOCKET: "SO_", socket.IPPROTO_IP: "IP_", socket.IPPROTO_TCP: "TCP_",
                   socket.IPPROTO_UDP: "UDP_", socket.IPPROTO_IPV6: "IPV6_"}  # fmt: skip
#: Names in Python's socket module that look like options of a level but are not (other levels, default values).
NOT_OPTIONS = ("J1939", "VM_SOCKETS", "DEFAULT_", "MAX_MEMBERSHIPS")
FAMILIES = {1: "unix", 2: "inet", 10: "inet6", 16: "netlink", 17: "packet"}
SOCKET_TYPES = {1: "stream", 2: "dgram", 3: "raw", 5: "seqpacket"}
PROTOCOLS = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6", 132: "sctp"}


class SockoptEvent(ctypes.Structure):
    """Mirrors `{{crate_name}}_common::SockoptEvent` (keep the two in step)."""

    _fields_ = [
        ("pid", ctypes.c_uint32),
        ("level", ctypes.c_int32),
        ("optname", ctypes.c_int32),
        ("optlen", ctypes.c_int32),
        ("retval", ctypes.c_int32),
        ("family", ctypes.c_uint32),
        ("socket_type", ctypes.c_uint32),
        ("protocol", ctypes.c_uint32),
        ("comm", ctypes.c_char * 16),
    ]


def option_name(level: int, optname: int) -> str:
    """`SO_RCVBUF`-style name of an option, from Python's socket module; the number when it has none."""
    prefix = OPTION_PREFIXES.get(level)
    if prefix is not None:
        names = sorted(
            name
            for name in dir(socket)
            if name.startswith(prefix)
            and not any(other in name for other in NOT_OPTIONS)
            and getattr(socket, name) == optname
        )
        if names:
            return names[0]
    return str(optname)


def level_name(level: int) -> str:
    return LEVELS.get(level, str(level))


def socket_kind(event: SockoptEvent) -> str:
    """`inet/stream/tcp`-style description of the socket."""
    family = FAMILIES.get(event.family, str(event.family))
    kind = SOCKET_TYPES.get(event.socket_type, str(event.socket_type))
    return f"{family}/{kind}" + (f"/{PROTOCOLS.get(event.protocol, event.protocol)}" if event.protocol else "")


def event_fields(event: SockoptEvent) -> dict[str, Any]:
    return {
        "pid": event.pid,
        "comm": event.comm.decode(errors="replace"),
        "socket": socket_kind(event),
        "level": level_name(event.level),
        "option": option_name(event.level, event.optname),
        "optlen": event.optlen,
        "retval": event.retval,
    }


class CallCounts:
    """CALLS with `LEVEL/OPTION` names as keys, for `show_map_at_exit`."""

    def __init__(self, calls: Any) -> None:
        self.calls = calls
        self.name = calls.name

    def items(self) -> list[tuple[str, int]]:
        rows = []
        for key, count in self.calls.items():
            level = ctypes.c_int32(key >> 32).value
            optname = ctypes.c_int32(key & 0xFFFFFFFF).value
            rows.append((f"{level_name(level)}/{option_name(level, optname)}", count))
        return rows


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
        Column("pid", 7),
        Column("comm", 16),
        Column("socket", 18),
        Column("level", 12),
        Column("option", 20),
        Column("optlen", 6, align=">"),
        Column("retval", 6, align=">"),
    ]
    arguments, options = parse_arguments()
    with Session("{{name}}", options=options, columns=columns) as session:
        bpf = session.load()
        with cgroup(arguments.cgroup) as path:
            bpf.programs["{{crate_name}}"].attach(str(path))
            session.show_map_at_exit(CallCounts(bpf.maps["CALLS"]), key="option", value="calls")  # type: ignore[arg-type]
            for record in session.stream(bpf.maps["EVENTS"].typed(SockoptEvent)):
                session.event("EVENTS", event_fields(record))


if __name__ == "__main__":
    main()
