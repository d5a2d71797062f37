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
import logging

from pyaya import PyayaError
from pyaya.kernel import member_offset
from pyaya.runtime import Column, Session

log = logging.getLogger("{{name}}")

HOOK = "{{lsm_hook|py}}"
#: The kernel struct members each decoded hook's program follows, and the globals their offsets go to.
OFFSETS = {
    "bprm_check_security": {"BINPRM_FILENAME_OFFSET": ("linux_binprm", "filename")},
    "file_open": {
        "FILE_PATH_OFFSET": ("file", "f_path"),
        "PATH_DENTRY_OFFSET": ("path", "dentry"),
        "DENTRY_NAME_OFFSET": ("dentry", "d_name"),
        "QSTR_NAME_OFFSET": ("qstr", "name"),
    },
}


def kernel_offsets() -> dict[str, ctypes.c_uint64]:
    """Offsets of the kernel struct members the program follows, from this kernel's BTF (Rust eBPF programs have
    no CO-RE relocations)."""
    try:
        return {
            name: ctypes.c_uint64(member_offset(struct, member))
            for name, (struct, member) in OFFSETS.get(HOOK, {}).items()
        }
    except (OSError, PyayaError) as error:
        log.warning("no kernel BTF (%s): names will show empty", error)
        return {}


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
        bpf = session.load(globals={**kernel_offsets(), **target})
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
