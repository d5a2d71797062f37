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
import logging

from pyaya import PyayaError
from pyaya.kernel import member_offsets
from pyaya.runtime import Column, Session

log = logging.getLogger("{{name}}")


def task_struct_offsets() -> dict[str, ctypes.c_uint64]:
    """Where this kernel keeps `task_struct.real_parent` and `.tgid`: the kernel side needs them for the ppid,
    because Rust eBPF programs have no CO-RE relocations."""
    try:
        offsets = member_offsets("task_struct", "real_parent", "tgid")
        return {
            "TASK_REAL_PARENT_OFFSET": ctypes.c_uint64(offsets["real_parent"]),
            "TASK_TGID_OFFSET": ctypes.c_uint64(offsets["tgid"]),
        }
    except PyayaError as error:
        log.warning("no kernel BTF (%s): ppid will show as 0", error)
        return {}


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
        bpf = session.load(globals={**task_struct_offsets(), **target})
        bpf.programs["{{crate_name}}"].attach("syscalls", "sys_enter_execve")
        session.show_map_at_exit(bpf.maps["EXEC_COUNTS"], key="uid", value="execs")
        # EVENTS is a #[btf_map] ring buffer of ExecEvent: each record arrives decoded by the object's BTF, with
        # the fields of ExecEvent as attributes (byte arrays holding text as str).
        # ExecEvent is defined once, in {{name}}-common.
        for event in session.stream(bpf.maps["EVENTS"]):
            session.event("EVENTS", event)


if __name__ == "__main__":
    main()
