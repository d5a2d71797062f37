"""User space of {{name}}: prints every call of the LSM hook
`{{lsm_hook|py}}` (for bprm_check_security: every program about to run; for file_open: every
file opened), then the checks per process when it stops. The program never denies anything.

    sudo pyaya run                # until Ctrl-C
    sudo pyaya run --json --duration 5
    sudo pyaya run -p 1234        # only the checks of process 1234

It also runs on its own:

    sudo python main.py --object target/bpfel-unknown-none/release/{{name}}
"""

from __future__ import annotations

import ctypes

from pyaya.runtime import Column, Session


def main() -> None:
    columns = [
        Column("pid", 7),
        Column("uid", 6),
        Column("comm", 16),
        Column("decision", 8, "DECISION", ">"),
        Column("name"),
    ]
    with Session("{{name}}", columns=columns) as session:
        # -p PID: the kernel side reports only that process's checks (and still denies nothing).
        target = {"TARGET_TGID": ctypes.c_uint32(session.options.pid or 0)}
        # The kernel side's kernel_field! declarations (the names it reads) are filled from this kernel's BTF by
        # the load itself.
        bpf = session.load(globals=target)
        # The program names its hook in its ELF section (lsm/{{lsm_hook|text}}): loading finds the hook's
        # bpf_lsm_ function in the kernel's BTF.
        program = bpf.programs["{{crate_name}}"]
        program.load()
        program.attach()
        session.show_map_at_exit(bpf.maps["CHECKS"], key="pid", value="checks")
        # EVENTS is a #[btf_map] ring buffer of Check: each record arrives decoded by the object's BTF, with the
        # fields of Check as attributes (byte arrays holding text as str).
        # Check is defined once, in {{name}}-common.
        for check in session.stream(bpf.maps["EVENTS"]):
            session.event("EVENTS", check)


if __name__ == "__main__":
    main()
