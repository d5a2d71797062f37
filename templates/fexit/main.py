"""User space of {{name}}: looks at every value the kernel function
`{{function|py}}` returns. Calls that fail are printed as they happen (with their errno); when
it stops it prints the calls per process, the errors per errno and a log2 histogram of the other results (for vfs_read:
bytes read).

    sudo pyaya run                          # until Ctrl-C
    sudo pyaya run --json --duration 5
    sudo pyaya run --interval 5 --count 3   # a histogram every 5 seconds, 3 times
    sudo pyaya run -p 1234                  # only pid 1234

It also runs on its own:

    sudo python main.py --object target/bpfel-unknown-none/release/{{name}}
"""

from __future__ import annotations

import ctypes
import errno
import logging
import time

from pyaya import PyayaError
from pyaya.btf import Btf, BtfFunc, BtfFuncProto, Kind
from pyaya.runtime import Column, Session

log = logging.getLogger("{{name}}")

FUNCTION = "{{function|py}}"


def return_bits(function: str) -> int:
    """The width of `function`'s return type, from the kernel's BTF (64 when it cannot be known)."""
    try:
        btf = Btf.vmlinux()
        func = btf.find(function, Kind.FUNC)
        proto = btf.resolve(func.type_id) if isinstance(func, BtfFunc) else None
        if not isinstance(proto, BtfFuncProto):
            raise PyayaError(f"{function} has no prototype")
        size = btf.size_of(proto.return_type_id)
    except (OSError, PyayaError) as error:
        log.warning("no BTF for %s (%s): results are read as 64-bit", function, error)
        return 64
    if size is None:
        log.warning("%s returns nothing: its results mean nothing", function)
        return 64
    return size * 8


def main() -> None:
    columns = [
        Column("time", 8),
        Column("pid", 7),
        Column("tid", 7),
        Column("comm", 16),
        Column("errno", 6, "ERRNO", ">"),
        Column("error"),
    ]
    with Session("{{name}}", columns=columns) as session:
        bpf = session.load(
            globals={
                "TARGET_TGID": ctypes.c_uint32(session.options.pid or 0),
                "RETURN_BITS": ctypes.c_uint64(return_bits(FUNCTION)),
            }
        )
        # The program names its function in its ELF section (fexit/{{function|text}}): loading finds it in the kernel's
        # BTF, attaching builds the trampoline.
        program = bpf.programs["{{crate_name}}"]
        program.load()
        program.attach()
        session.show_map_at_exit(bpf.maps["CALLS"], key="pid", value="calls")
        session.show_map_at_exit(bpf.maps["ERRORS"], key="errno", value="calls")
        histogram = bpf.maps["RESULTS"]
        if session.options.interval:
            # `interval [count]`: a histogram per interval (then emptied), as BCC tools print them.
            session.every(
                session.options.interval,
                lambda: session.show_histogram(histogram, label="result", clear=True),
            )
        else:
            session.show_histogram_at_exit(histogram, label="result")
        # EVENTS is a #[btf_map] ring buffer of Failure: each record arrives decoded by the object's BTF.
        for failure in session.stream(bpf.maps["EVENTS"]):
            session.event(
                "EVENTS",
                {
                    "time": time.strftime("%H:%M:%S"),
                    "pid": failure.pid,
                    "tid": failure.tid,
                    "comm": failure.comm,
                    "errno": failure.errno,
                    "error": errno.errorcode.get(failure.errno, "?"),
                },
            )


if __name__ == "__main__":
    main()
