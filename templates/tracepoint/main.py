"""User space of {{name}}: prints every exec on the system, then the exec counts per uid
when it stops.

    sudo pyaya run                # builds if needed, runs until Ctrl-C
    sudo pyaya run --json --duration 5
    sudo pyaya run -p 1234        # only the execs of process 1234 (a shell you exec from)

It also runs on its own:

    sudo python main.py --object target/bpfel-unknown-none/release/{{name}}
"""

from __future__ import annotations

import ctypes

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
        # -p PID: the kernel side drops every other process's execs before they reach the ring buffer.
        target = {"TARGET_TGID": ctypes.c_uint32(session.options.pid or 0)}
        # The kernel side's kernel_field! declarations (the parent's tgid) are filled from this kernel's BTF by the
        # load itself.
        bpf = session.load(globals=target)
        bpf.programs["{{crate_name}}"].attach("syscalls", "sys_enter_execve")
        session.show_map_at_exit(bpf.maps["EXEC_COUNTS"], key="uid", value="execs")
        # EVENTS is a #[btf_map] ring buffer of ExecEvent: each record arrives decoded by the object's BTF, with
        # the fields of ExecEvent as attributes (byte arrays holding text as str).
        # ExecEvent is defined once, in {{name}}-common.
        for event in session.stream(bpf.maps["EVENTS"]):
            session.event("EVENTS", event)


if __name__ == "__main__":
    main()
