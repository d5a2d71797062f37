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
import logging

from pyaya import PyayaError
from pyaya.kernel import member_offset
from pyaya.runtime import Column, Session

log = logging.getLogger("{{name}}")


def kernel_offsets() -> dict[str, ctypes.c_uint64]:
    """Where this kernel keeps `linux_binprm.filename`: the kernel side reads it from the tracepoint's `bprm`
    argument, and Rust eBPF programs have no CO-RE relocations."""
    try:
        return {"BINPRM_FILENAME_OFFSET": ctypes.c_uint64(member_offset("linux_binprm", "filename"))}
    except (OSError, PyayaError) as error:
        log.warning("no kernel BTF (%s): filenames will show empty", error)
        return {}


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
        bpf = session.load(globals={**kernel_offsets(), **target})
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
