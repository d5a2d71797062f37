"""User space of {{name}}: a sampling CPU profiler. It samples the kernel and user
stacks of whatever runs on every CPU, 49 times a second, and when it stops prints the most frequent stacks, resolved to
function names, as folded lines (`comm;outer;...;inner count`: flamegraph.pl reads them).

    sudo pyaya run                          # until Ctrl-C, then the top stacks
    sudo pyaya run --json --duration 5
    sudo python main.py -p 1234 -F 99 --top 5 --duration 10

It also runs on its own:

    sudo python main.py --object target/bpfel-unknown-none/release/{{name}}
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from pyaya.errors import ObjectError, PermissionDeniedError
from pyaya.runtime import Column, RunOptions, Session, parse_options
from pyaya.symbols import Symbol, UserSymbols, kernel_symbols

#: What --help says first: the opening of this file's docstring.
DESCRIPTION = (__doc__ or "").partition("\n\n")[0].replace("\n", " ")


def parse_arguments() -> tuple[argparse.Namespace, RunOptions]:
    """This project's options and the ones every pyaya project has (--object, --json, -p PID, interval, ...), in
    one parser: --help lists them all."""
    parser = argparse.ArgumentParser(prog="main.py", description=DESCRIPTION, allow_abbrev=False)
    parser.add_argument("-F", "--frequency", type=int, default=49, help="samples per second on each CPU")
    parser.add_argument("--top", type=int, default=20, help="stacks to print")
    options = parse_options(parser=parser)
    return options.args, options


def stack_addresses(stacks: Any, stack_id: int) -> list[int]:
    """The return addresses of stack `stack_id`, innermost first (none for a negative id: no stack was taken)."""
    if stack_id < 0:
        return []
    try:
        return list(stacks[stack_id])
    except KeyError:  # the stack map was full
        return []


def frame_name(symbol: Symbol) -> str:
    """A frame as flame graphs show it: the function, else the file it is in, else [unknown]."""
    if symbol.name is not None:
        return symbol.name
    return f"[{Path(symbol.module).name}]" if symbol.module else "[unknown]"


def kernel_frames(addresses: list[int]) -> list[str]:
    try:
        return [frame_name(kernel_symbols().resolve(address)) for address in addresses]
    except PermissionDeniedError:  # /proc/kallsyms hides addresses from this user
        return ["[unknown]" for _ in addresses]


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    columns = [Column("count", 7, "COUNT", ">"), Column("pid", 7), Column("comm", 16), Column("stack")]
    options, run_options = parse_arguments()
    with Session("{{name}}", options=run_options, columns=columns) as session:
        bpf = session.load(globals={"TARGET_TGID": ctypes.c_uint32(session.options.pid or 0)})
        bpf.programs["{{crate_name}}"].attach("cpu-clock", sample_frequency=options.frequency)
        counts = bpf.maps["COUNTS"]  # a #[btf_map]: keys come back as SampleKey records
        stacks = bpf.maps["STACKS"]
        processes: dict[int, UserSymbols | None] = {}
        user_stacks: dict[tuple[int, int], list[str]] = {}

        def user_frames(pid: int, stack_id: int) -> list[str]:
            """User frames are named through the process's memory map and files, so while it lives: each new
            stack once a second (see below), the rest at the end."""
            if (pid, stack_id) not in user_stacks:
                if pid not in processes:
                    try:
                        processes[pid] = UserSymbols(pid)
                    except (OSError, ObjectError):  # it has exited already
                        processes[pid] = None
                symbols = processes[pid]
                addresses = stack_addresses(stacks, stack_id)
                if symbols is None:
                    user_stacks[pid, stack_id] = ["[unknown]" for _ in addresses]
                else:
                    user_stacks[pid, stack_id] = [frame_name(symbols.resolve(address)) for address in addresses]
            return user_stacks[pid, stack_id]

        def name_new_stacks() -> None:
            for key in counts:
                user_frames(key.pid, key.user_stack_id)

        # The profile is the output: print it on Ctrl-C and on SIGTERM too, not only when --duration ends.
        signal.signal(signal.SIGTERM, stop_on_sigterm)
        with contextlib.suppress(KeyboardInterrupt):
            session.wait(poll=name_new_stacks, interval=1.0)
        # Stacks that differ only in return addresses within the same functions fold into one line.
        folded: dict[tuple[int, str, str], int] = {}
        frames: dict[tuple[int, str, str], tuple[list[str], list[str]]] = {}
        samples = counts.items()
        for key, count in samples:
            user = user_frames(key.pid, key.user_stack_id)
            kernel = kernel_frames(stack_addresses(stacks, key.kernel_stack_id))
            comm = key.comm
            line = ";".join([comm, *reversed(user), *(f"{name}_[k]" for name in reversed(kernel))])
            folded[key.pid, comm, line] = folded.get((key.pid, comm, line), 0) + count
            frames[key.pid, comm, line] = (user, kernel)
        for (pid, comm, line), count in sorted(folded.items(), key=lambda item: item[1], reverse=True)[: options.top]:
            user, kernel = frames[pid, comm, line]
            session.event(
                "COUNTS",
                {"count": count, "pid": pid, "comm": comm, "stack": line, "user_stack": user, "kernel_stack": kernel},
            )
        total = sum(count for _, count in samples)
        shown = min(options.top, len(folded))
        summary = f"{total} samples, {len(folded)} distinct stacks, {shown} shown"
        session.log("info", "{{name}}", summary)


if __name__ == "__main__":
    main()
