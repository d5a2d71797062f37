"""User space of {{name}}: prints every exec on the system with where it
runs (its parent and grandparent, its uid, its cgroup and the hostname of its UTS namespace), then the exec counts
per cgroup when it stops.

    sudo pyaya run                          # builds if needed, runs until Ctrl-C
    sudo pyaya run --json --duration 5
    sudo pyaya run -p 1234                  # only process 1234 and its children (a shell you exec from)
    sudo pyaya run -- --cgroup system.slice/docker-0123abcd.scope    # only the execs in that cgroup

It also runs on its own:

    sudo python main.py --object target/bpfel-unknown-none/release/{{name}} [--cgroup PATH]
"""

from __future__ import annotations

import argparse
import ctypes
import os
from pathlib import Path

from pyaya.errors import PyayaError
from pyaya.kernel import cgroup2_mount
from pyaya.runtime import Column, RunOptions, Session, parse_options

#: What --help says first: the opening of this file's docstring.
DESCRIPTION = (__doc__ or "").partition("\n\n")[0].replace("\n", " ")


def parse_arguments() -> tuple[argparse.Namespace, RunOptions]:
    """This project's options and the ones every pyaya project has (--object, --json, -p PID, ...), in one parser:
    --help lists them all."""
    parser = argparse.ArgumentParser(prog="main.py", description=DESCRIPTION, allow_abbrev=False)
    parser.add_argument(
        "--cgroup",
        metavar="PATH",
        help="only the execs of processes in this cgroup v2 folder (not its children): a path, or one under the "
        "cgroup v2 mount such as system.slice/ssh.service",
    )
    options = parse_options(parser=parser)
    if options.args.cgroup is not None:
        try:
            options.args.cgroup_id = cgroup_id(options.args.cgroup)
        except (OSError, ValueError, PyayaError) as error:  # PyayaError: no cgroup v2 hierarchy is mounted
            parser.error(f"--cgroup {options.args.cgroup}: {error}")
    return options.args, options


def cgroup_id(cgroup: str) -> int:
    """The id the kernel gives the cgroup ``cgroup`` (a folder of the cgroup v2 hierarchy, absolute or relative to
    its mount): the inode number of that folder, which is what ``bpf_get_current_cgroup_id`` returns."""
    mount = cgroup2_mount()
    folder = Path(cgroup) if os.path.isabs(cgroup) else mount / cgroup
    if not (folder / "cgroup.procs").is_file() or not folder.resolve().is_relative_to(mount):
        raise ValueError(f"not a cgroup of the cgroup v2 hierarchy mounted at {mount}")
    return folder.stat().st_ino


def main() -> None:
    columns = [
        Column("pid", 7),
        Column("comm", 16),
        Column("ppid", 7),
        Column("pcomm", 16, "PCOMM"),
        Column("gppid", 7, "GPPID"),
        Column("gpcomm", 16, "GPCOMM"),
        Column("uid", 6),
        Column("cgroup", 24),
        Column("nodename", 16, "HOST"),
        Column("filename"),
    ]
    options, run_options = parse_arguments()
    with Session("{{name}}", options=run_options, columns=columns) as session:
        # -p PID and --cgroup: the kernel side drops every other exec before it reaches the ring buffer.
        filters = {
            "TARGET_TGID": ctypes.c_uint32(session.options.pid or 0),
            "TARGET_CGROUP_ID": ctypes.c_uint64(getattr(options, "cgroup_id", 0)),
        }
        # The kernel side's kernel_field! declarations (the parents, the cgroup's name, the UTS hostname) are filled
        # from this kernel's BTF by the load itself: nothing here knows an offset.
        bpf = session.load(globals=filters)
        bpf.programs["{{crate_name}}"].attach("sched", "sched_process_exec")
        session.show_map_at_exit(bpf.maps["CGROUP_EXECS"], key="cgroup", value="execs")
        # EVENTS is a #[btf_map] ring buffer of ExecEvent: each record arrives decoded by the object's BTF, with
        # the fields of ExecEvent as attributes (byte arrays holding text as str).
        # ExecEvent is defined once, in {{name}}-common.
        for event in session.stream(bpf.maps["EVENTS"]):
            session.event("EVENTS", event)


if __name__ == "__main__":
    main()
