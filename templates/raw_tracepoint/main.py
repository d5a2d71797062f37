"""User space of {{name}}: counts system calls per process on the raw tracepoint
`{{tracepoint_name|py}}`.

Every interval it prints the processes that were busiest in that interval; when it stops it prints the totals
per system call and per process.

    sudo pyaya run                          # one report a second until Ctrl-C
    sudo pyaya run -p 1234 --interval 5 --count 3   # only pid 1234, a report every 5 s, 3 reports
    sudo pyaya run --json --duration 5

It also runs on its own:

    sudo python main.py --object target/bpfel-unknown-none/release/{{name}}
"""

from __future__ import annotations

import ctypes
import time

from pyaya.runtime import Column, Session

#: Processes shown per interval.
TOP = 10


def main() -> None:
    columns = [Column("time", 8), Column("pid", 7), Column("comm", 16), Column("count", 10, "COUNT", ">")]
    with Session("{{name}}", columns=columns) as session:
        options = session.options
        bpf = session.load(globals={"TARGET_TGID": ctypes.c_uint32(options.pid or 0)})
        bpf.programs["{{crate_name}}"].attach("{{tracepoint_name|py}}")
        counts = bpf.maps["PROCESS_COUNTS"]
        names = bpf.maps["PROCESS_NAMES"]  # a #[btf_map]: values come back as Comm records
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
                name = comm.name if comm is not None else ""
                session.event("PROCESS_COUNTS", {"time": now, "pid": pid, "comm": name, "count": delta})
            previous.clear()
            previous.update(current)

        # A report every `interval` seconds (default 1), `count` times when given, as BCC tools do.
        session.every(options.interval or 1.0, report)
        session.wait()


if __name__ == "__main__":
    main()
