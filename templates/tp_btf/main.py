"""User space of {{name}}: prints every hit of the BTF tracepoint
`{{btf_tracepoint|py}}` (for sched_process_exec: every exec on the system, with the binary's resolved
path), then the counts per uid when it stops.

    sudo pyaya run                # until Ctrl-C
    sudo pyaya run --json --duration 5
    sudo pyaya run -p 1234        # only the hits of process 1234

It also runs on its own:

    sudo python main.py --object target/bpfel-unknown-none/release/{{name}}
"""

from __future__ import annotations

import ctypes

from pyaya.runtime import Column, Session


def main() -> None:
    columns = [
        Column("pid", 7),
        Column("old_pid", 7, "OLDPID"),
        Column("uid", 6),
        Column("comm", 16),
        Column("filename"),
    ]
    with Session("{{name}}", columns=columns) as session:
        # -p PID: the kernel side drops every other process's hits before they reach the ring buffer.
        target = {"TARGET_TGID": ctypes.c_uint32(session.options.pid or 0)}
        # The kernel side's kernel_field! declaration (the binary's name) is filled from this kernel's BTF by the
        # load itself.
        bpf = session.load(globals=target)
        # The program names its tracepoint in its ELF section (tp_btf/{{btf_tracepoint|text}}): loading finds its type
        # in the kernel's BTF.
        program = bpf.programs["{{crate_name}}"]
        program.load()
        program.attach()
        session.show_map_at_exit(bpf.maps["EXEC_COUNTS"], key="uid", value="execs")
        # EVENTS is a #[btf_map] ring buffer of ExecEvent: each record arrives decoded by the object's BTF, with
        # the fields of ExecEvent as attributes (byte arrays holding text as str).
        # ExecEvent is defined once, in {{name}}-common.
        for event in session.stream(bpf.maps["EVENTS"]):
            session.event("EVENTS", event)


if __name__ == "__main__":
    main()
