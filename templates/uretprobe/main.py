"""User space of {{name}}: prints each string `{{uprobe_function|py}}`
in `{{uprobe_target|py}}` returns (for bash's readline: every command line typed into an interactive
bash), then the lines per process when it stops.

    sudo pyaya run                          # until Ctrl-C
    sudo pyaya run --json --duration 5
    sudo pyaya run -p 1234                  # only the bash with pid 1234

It also runs on its own:

    sudo python main.py --object target/bpfel-unknown-none/release/{{name}}
"""

from __future__ import annotations

import time

from pyaya.runtime import Column, Session

TARGET = "{{uprobe_target|py}}"
FUNCTION = "{{uprobe_function|py}}"


def main() -> None:
    columns = [Column("time", 8), Column("pid", 7), Column("uid", 6), Column("comm", 16), Column("line")]
    with Session("{{name}}", columns=columns) as session:
        bpf = session.load()
        # -p PID: the kernel only fires the probe in that process.
        bpf.programs["{{crate_name}}"].attach(TARGET, FUNCTION, pid=session.options.pid)
        session.show_map_at_exit(bpf.maps["LINES"], key="pid", value="lines")
        # EVENTS is a #[btf_map] ring buffer of LineEvent: each record arrives decoded by the object's BTF (byte
        # arrays holding text as str).
        for event in session.stream(bpf.maps["EVENTS"]):
            session.event(
                "EVENTS",
                {
                    "time": time.strftime("%H:%M:%S"),
                    "pid": event.pid,
                    "uid": event.uid,
                    "comm": event.comm,
                    "line": event.line,
                },
            )


if __name__ == "__main__":
    main()
