"""User space of {{name}}: traces every hit of the USDT probe
`{{usdt_probe|py}}` in `{{uprobe_target|py}}` and prints one line per hit
with the probe's arguments (those that point at text shown as strings).

    sudo pyaya run                          # until Ctrl-C
    sudo pyaya run --json --duration 5
    sudo python main.py -p 1234             # only process 1234 (only its semaphore is raised)

It also runs on its own:

    sudo python main.py --object target/bpfel-unknown-none/release/{{name}}
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from pyaya.runtime import Column, RunOptions, Session, parse_options

TARGET = "{{uprobe_target|py}}"
PROVIDER, _, PROBE = "{{usdt_probe|py}}".partition(":")

#: What --help says first: the opening of this file's docstring.
DESCRIPTION = (__doc__ or "").partition("\n\n")[0].replace("\n", " ")


def parse_arguments() -> RunOptions:
    """The options every pyaya project has (--object, --json, -p PID, --duration, ...), in one parser."""
    parser = argparse.ArgumentParser(prog="main.py", description=DESCRIPTION, allow_abbrev=False)
    return parse_options(parser=parser)


def arguments(hit: Any) -> list[int | str]:
    """The hit's arguments: the text an argument points at (one of the first three) when it is text, else its value."""
    shown: list[int | str] = []
    texts = (hit.text0, hit.text1, hit.text2)
    for n in range(min(hit.count, len(hit.args))):
        if not hit.read >> n & 1:
            break
        text = texts[n] if n < len(texts) else ""
        shown.append(text if isinstance(text, str) and text else hit.args[n])
    return shown


def main() -> None:
    columns = [
        Column("time", 8),
        Column("pid", 7),
        Column("comm", 16),
        Column("shown", 0, "ARGS"),
    ]
    options = parse_arguments()
    with Session("{{name}}", options=options, columns=columns) as session:
        bpf = session.load()
        # With -p PID the probe fires (and its semaphore is raised) only in that process.
        bpf.programs["{{crate_name}}"].attach_usdt(TARGET, PROVIDER, PROBE, pid=session.options.pid)
        try:
            # EVENTS is a #[btf_map] ring buffer of ProbeHit: each record arrives decoded by the object's BTF
            # (byte arrays holding text as str).
            for hit in session.stream(bpf.maps["EVENTS"]):
                shown = arguments(hit)
                session.event(
                    "EVENTS",
                    {
                        "time": time.strftime("%H:%M:%S"),
                        "pid": hit.pid,
                        "tid": hit.tid,
                        "comm": hit.comm,
                        "probe": f"{PROVIDER}:{PROBE}",
                        "args": shown,
                        "shown": " ".join(repr(a) if isinstance(a, str) else str(a) for a in shown),
                    },
                )
        finally:
            lost = bpf.maps["EVENTS_LOST"][0].sum()
            if lost:  # hits that found the ring buffer full
                session.lost("EVENTS", lost)


if __name__ == "__main__":
    main()
