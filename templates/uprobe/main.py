"""User space of {{name}}: times every call of
`{{uprobe_function|py}}` in `{{uprobe_target|py}}` and prints one line per call
(its first argument, latency and result), then the calls per process and a latency histogram when it stops.

    sudo pyaya run                          # until Ctrl-C
    sudo pyaya run --json --duration 5
    sudo pyaya run --interval 5 --count 3   # a histogram every 5 seconds, 3 times
    sudo python main.py -p 1234 --min-ms 5  # only pid 1234, only calls of 5 ms or more

It also runs on its own:

    sudo python main.py --object target/bpfel-unknown-none/release/{{name}}
"""

from __future__ import annotations

import argparse
import ctypes
import time

from pyaya.runtime import Column, RunOptions, Session, parse_options

TARGET = "{{uprobe_target|py}}"
FUNCTION = "{{uprobe_function|py}}"
#: Width of the function's return type: getaddrinfo returns an int, whose register's upper half is undefined.
#: Use 64 for functions returning a long, a size or a pointer.
RETURN_BITS = 32


def signed(value: int, bits: int = RETURN_BITS) -> int:
    """The low ``bits`` of a register as a signed number."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


#: What --help says first: the opening of this file's docstring.
DESCRIPTION = (__doc__ or "").partition("\n\n")[0].replace("\n", " ")


def parse_arguments() -> tuple[argparse.Namespace, RunOptions]:
    """This project's options and the ones every pyaya project has (--object, --json, -p PID, interval, ...), in
    one parser: --help lists them all."""
    parser = argparse.ArgumentParser(prog="main.py", description=DESCRIPTION, allow_abbrev=False)
    parser.add_argument("--min-ms", type=float, default=0.0, help="only show calls that take at least this long")
    options = parse_options(parser=parser)
    return options.args, options


def main() -> None:
    columns = [
        Column("time", 8),
        Column("pid", 7),
        Column("comm", 16),
        Column("latency_ms", 10, "LAT(ms)", ">"),
        Column("ret", 6, "RET", ">"),
        Column("arg", 0, "ARG0"),
    ]
    options, run_options = parse_arguments()
    with Session("{{name}}", options=run_options, columns=columns) as session:
        bpf = session.load(globals={"MIN_LATENCY_NS": ctypes.c_uint64(int(options.min_ms * 1e6))})
        # -p PID: the kernel only fires the probes in that process.
        pid = session.options.pid
        bpf.programs["{{crate_name}}_entry"].attach(TARGET, FUNCTION, pid=pid)
        bpf.programs["{{crate_name}}_return"].attach(TARGET, FUNCTION, pid=pid)
        session.show_map_at_exit(bpf.maps["CALLS"], key="pid", value="calls")
        histogram = bpf.maps["LATENCY_NS"]
        if session.options.interval:
            # `interval [count]`: a histogram per interval (then emptied), as BCC tools print them.
            session.every(
                session.options.interval,
                lambda: session.show_histogram(histogram, label="nsecs", clear=True),
            )
        else:
            session.show_histogram_at_exit(histogram, label="nsecs")
        # EVENTS is a #[btf_map] ring buffer of CallEvent: each record arrives decoded by the object's BTF (byte
        # arrays holding text as str).
        for event in session.stream(bpf.maps["EVENTS"]):
            session.event(
                "EVENTS",
                {
                    "time": time.strftime("%H:%M:%S"),
                    "pid": event.pid,
                    "tid": event.tid,
                    "comm": event.comm,
                    "latency_ms": round(event.latency_ns / 1e6, 3),
                    "ret": signed(event.ret),
                    "arg0": event.arg0,
                    "arg": event.arg if isinstance(event.arg, str) else "",
                },
            )


if __name__ == "__main__":
    main()
