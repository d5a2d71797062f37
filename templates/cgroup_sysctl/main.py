"""User space of {{name}}: logs every sysctl read and write (a file under /proc/sys) by
the processes of a cgroup (v2): who, which sysctl, its value, and what is written; prints the accesses per sysctl when
it stops. Every access is allowed.

    sudo pyaya run                                   # the root cgroup: every process, until Ctrl-C
    sudo pyaya run --json --duration 5
    sudo python main.py --cgroup /sys/fs/cgroup/unified/my.slice      # created if missing, removed at exit if so

It also runs on its own:

    sudo python main.py --object target/bpfel-unknown-none/release/{{name}}
"""

from __future__ import annotations

import argparse
import ctypes
import sys
from pathlib import Path
from typing import Any

from pyaya.kernel import cgroup
from pyaya.runtime import Column, RunOptions, Session, parse_options

KEY_NAME_LEN = 60


class SysctlEvent(ctypes.Structure):
    """Mirrors `{{crate_name}}_common::SysctlEvent` (keep the two in step)."""

    _fields_ = [
        ("pid", ctypes.c_uint32),
        ("write", ctypes.c_uint32),
        ("comm", ctypes.c_char * 16),
        ("name", ctypes.c_char * 64),
        ("value", ctypes.c_char * 32),
        ("new_value", ctypes.c_char * 32),
    ]


def text(raw: bytes) -> str:
    """A NUL-terminated field as text, without the trailing newline sysctl values carry."""
    return raw.decode(errors="replace").rstrip("\n")


def event_fields(event: SysctlEvent) -> dict[str, Any]:
    return {
        "pid": event.pid,
        "comm": text(event.comm),
        "access": "write" if event.write else "read",
        "sysctl": text(event.name).replace("/", "."),
        "value": text(event.value),
        "new_value": text(event.new_value) if event.write else "",
    }


class AccessCounts:
    """ACCESSES as `("read kernel.ostype", count)` pairs, for `show_map_at_exit`."""

    def __init__(self, accesses: Any) -> None:
        self.accesses = accesses
        self.name = accesses.name

    def items(self) -> list[tuple[str, int]]:
        rows = []
        for key, count in self.accesses.items():
            data = bytes(key)  # name[60] then write (u32)
            name = data[:KEY_NAME_LEN].split(b"\0", 1)[0].decode(errors="replace").replace("/", ".")
            write = int.from_bytes(data[KEY_NAME_LEN:], sys.byteorder)
            rows.append((f"{'write' if write else 'read'} {name}", count))
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
        Column("access", 6),
        Column("sysctl", 40),
        Column("value", 20),
        Column("new_value", heading="NEW VALUE"),
    ]
    arguments, options = parse_arguments()
    with Session("{{name}}", options=options, columns=columns) as session:
        bpf = session.load()
        with cgroup(arguments.cgroup) as path:
            bpf.programs["{{crate_name}}"].attach(str(path))
            session.show_map_at_exit(AccessCounts(bpf.maps["ACCESSES"]), key="access", value="count")  # type: ignore[arg-type]
            for record in session.stream(bpf.maps["EVENTS"].typed(SysctlEvent)):
                session.event("EVENTS", event_fields(record))


if __name__ == "__main__":
    main()
