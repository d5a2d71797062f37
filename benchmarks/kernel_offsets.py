"""Reading kernel struct offsets at start-up: the first lookup of a process (reads and parses the kernel's BTF
natively) against the later ones (the parsed BTF is kept for the process), and a fresh process that looks offsets
up against one that only imports pyaya.kernel.

Every template that reads kernel structs (no CO-RE for Rust eBPF) does this at each start, so it is part of the
time to first event. Prints the median of several runs of each. Needs /sys/kernel/btf/vmlinux.

    .venv/bin/python benchmarks/kernel_offsets.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from pyaya.kernel import member_offsets

MEMBERS = ("real_parent", "tgid")
LOOKUP = f"from pyaya.kernel import member_offsets; member_offsets('task_struct', *{MEMBERS!r})"
IMPORT_ONLY = "import pyaya.kernel"


def timed(function: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def process(code: str) -> Callable[[], object]:
    return lambda: subprocess.run([sys.executable, "-c", code], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    start = time.perf_counter()
    member_offsets("task_struct", *MEMBERS)
    first = time.perf_counter() - start
    cached = timed(lambda: member_offsets("task_struct", *MEMBERS), args.runs)
    with_lookup = timed(process(LOOKUP), args.runs)
    baseline = timed(process(IMPORT_ONLY), args.runs)
    print(f"first lookup (parses vmlinux)         {first * 1000:8.2f} ms")
    print(f"later lookups (parsed BTF kept)       {cached * 1000:8.2f} ms")
    added = with_lookup - baseline
    print(f"process: import + lookup              {with_lookup * 1000:8.2f} ms")
    print(f"process: import only (baseline)       {baseline * 1000:8.2f} ms   (the lookup adds {added * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
