"""User space of {{name}}: times every call of the kernel function
`{{function|py}}`, prints the calls slower than --min-ms as they happen, and when it stops the
calls per process and a log2 histogram of the latencies.

    sudo pyaya run                          # until Ctrl-C
    sudo pyaya run --json --duration 5
    sudo pyaya run --interval 5 --count 3   # a histogram every 5 seconds, 3 times
    sudo python main.py -p 1234 --min-ms 1  # only pid 1234, print calls of 1 ms or more

It also runs on its own:

    sudo python main.py --object target/bpfel-unknown-none/release/{{name}}
"""

from __future__ import annotations

import argparse
import ctypes
import time

from pyaya.runtime import Column, RunOptions, Session, parse_options

#: What --help says first: the opening of this file's docstring.
DESCRIPTION = (__doc__ or "").partition("\n\n")[0].replace("\n", " ")


def parse_arguments() -> tuple[argparse.Namespace, RunOptions]:
    """This project's options and the ones every pyaya project has (--object, --json, -p PID, interval, ...), in
    one parser: --help lists them all."""
    parser = argparse.ArgumentParser(prog="main.py", description=DESCRIPTION, allow_abbrev=False)
    parser.add_argument("--min-ms", type=float, default=10.0, help="print calls that take at least this long")
    options = parse_options(parser=parser)
    return options.args, options


def main() -> None:
    columns = [
        Column("time", 8),
        Column("pid", 7),
        Column("tid", 7),
        Column("comm", 16),
        Column("latency_ms", 10, "LAT(ms)", ">"),
    ]
    options, run_options = parse_arguments()
    with Session("{{name}}", options=run_options, columns=columns) as session:
        bpf = session.load(
            globals={
                "TARGET_TGID": ctypes.c_uint32(session.options.pid or 0),
                "MIN_LATENCY_NS": ctypes.c_uint64(int(options.min_ms * 1e6)),
            }
        )
        # Both programs name their function in their ELF section (fentry/{{function|text}}, fexit/{{function|text}}): loading
        # finds it in the kernel's BTF, attaching builds the trampoline.
        for program in ("{{crate_name}}_entry", "{{crate_name}}_return"):
            bpf.programs[program].load()
            bpf.programs[program].attach()
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
        # EVENTS is a #[btf_map] ring buffer of SlowCall: each record arrives decoded by the object's BTF.
        for call in session.stream(bpf.maps["EVENTS"]):
            session.event(
                "EVENTS",
                {
                    "time": time.strftime("%H:%M:%S"),
                    "pid": call.pid,
                    "tid": call.tid,
                    "comm": call.comm,
                    "latency_ms": round(call.latency_ns / 1e6, 3),
                },
            )


if __name__ == "__main__":
    main()
