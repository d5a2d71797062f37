"""User space of {{name}}: counts system calls per process on the raw tracepoint `{{tracepoint_name}}`.

Every interval it prints the processes that were busiest in that interval; when it stops it prints the totals
per system call and per process.

    sudo pyaya run                          # one report a second until Ctrl-C
    sudo pyaya run -- -p 1234 5 3           # only pid 1234, a report every 5 seconds, 3 reports
    sudo pyaya run --json --duration 5

It also runs on its own: sudo python main.py --object target/bpfel-unknown-none/release/{{name}}
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable

from pyaya.runtime import Column, Session

#: Processes shown per interval.
TOP = 10


class Comm(ctypes.Structure):
    """Mirrors `{{crate_name}}_common::Comm` (keep the two in step)."""

    _fields_ = [("name", ctypes.c_char * 16)]


def run_intervals(session: Session, report: Callable[[], None], interval: float, count: int | None) -> None:
    """Call ``report`` every ``interval`` seconds, ``count`` times (None: until --duration ends or Ctrl-C)."""
    session.announce()
    reports = 0
    while count is None or reports < count:
        left = session.remaining()
        if left is not None and left <= 0:
            return
        time.sleep(interval if left is None else min(interval, left))
        report()
        reports += 1


def main() -> None:
    columns = [Column("time", 8), Column("pid", 7), Column("comm", 16), Column("count", 10, "COUNT", ">")]
    with Session("{{name}}", columns=columns) as session:
        options = session.options
        bpf = session.load(globals={"TARGET_TGID": ctypes.c_uint32(options.pid or 0)})
        bpf.programs["{{crate_name}}"].attach("{{tracepoint_name}}")
        counts = bpf.maps["PROCESS_COUNTS"]
        names = bpf.maps["PROCESS_NAMES"].typed(None, Comm)
        session.show_map_at_exit(bpf.maps["SYSCALL_COUNTS"], key="syscall", value="calls")
        session.show_map_at_exit(counts, key="pid", value="count")
        previous: dict[int, int] = {}

        def report() -> None:
            now = time.strftime("%H:%M:%S")
            current = dict(counts.items())
            busiest = sorted(
                ((total - previous.get(pid, 0), pid) for pid, total in current.items()),
                reverse=True,
            )
            for delta, pid in busiest[:TOP]:
                if delta <= 0:
                    break
                comm = names.get(pid)
                name = comm.name.decode(errors="replace") if comm is not None else ""
                session.event("PROCESS_COUNTS", {"time": now, "pid": pid, "comm": name, "count": delta})
            previous.clear()
            previous.update(current)

        run_intervals(session, report, options.interval or 1.0, options.count)


if __name__ == "__main__":
    main()
