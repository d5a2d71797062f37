"""Reading kernel struct offsets at start-up: the native BTF walk against the full Python BTF decode.

Every template that reads kernel structs (no CO-RE for Rust eBPF) does this at each start, so it is part of the
time to first event. Prints the median of several runs of each and their ratio. Needs /sys/kernel/btf/vmlinux.

    .venv/bin/python benchmarks/kernel_offsets.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from pyaya.btf import Btf
from pyaya.kernel import member_offsets

MEMBERS = ("real_parent", "tgid")


def native() -> dict[str, int]:
    return member_offsets("task_struct", *MEMBERS)


def full_decode() -> dict[str, int]:
    btf = Btf.vmlinux()
    return {member: btf.member_offset("task_struct", member) for member in MEMBERS}


def timed(function: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    assert native() == full_decode(), "the two lookups disagree"
    fast = timed(native, args.runs)
    slow = timed(full_decode, args.runs)
    print(f"native BTF walk (pyaya.kernel)   {fast * 1000:8.2f} ms")
    print(f"full Python decode (pyaya.btf)   {slow * 1000:8.2f} ms   x{slow / fast:.1f} slower")


if __name__ == "__main__":
    main()
