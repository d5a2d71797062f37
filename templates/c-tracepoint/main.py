"""User space of {{name}}: prints every exec on the system, then the exec counts per uid
when it stops.

    sudo pyaya run                # builds if needed, runs until Ctrl-C
    sudo pyaya run --json --duration 5
    sudo pyaya run -p 1234        # only the execs of process 1234 (a shell you exec from)

It also runs on its own:

    sudo python main.py --object target/bpf/{{crate_name}}.bpf.o
"""

from __future__ import annotations

from pyaya.runtime import Column, Session


def main() -> None:
    columns = [
        Column("pid", 7),
        Column("ppid", 7),
        Column("uid", 6),
        Column("comm", 16),
        Column("filename"),
    ]
    with Session("{{name}}", columns=columns) as session:
        # -p PID: the kernel side drops every other process's execs before they reach the ring buffer. A
        # `const volatile` global of the C source, set by name before load.
        bpf = session.load(globals={"target_tgid": session.options.pid or 0})
        # The tracepoint comes from the program's SEC("tracepoint/syscalls/sys_enter_execve").
        bpf.programs["handle_exec"].attach()
        session.show_map_at_exit(bpf.maps["exec_counts"], key="uid", value="execs")
        # Each record decoded as `struct event`, by name: the object's DWARF describes it (see the C source).
        for event in session.stream(bpf.maps["events"].typed("event")):
            session.event("events", event)


if __name__ == "__main__":
    main()
