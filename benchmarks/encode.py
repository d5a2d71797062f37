"""Encoding a struct map key: pyaya's BTF record type against the per-field path and ``struct``, in one process.

The key is the fixture's ``SampleKey`` (``types_records``): a ``u32`` pid and a ``u8`` slot, then 3 bytes of padding,
the shape of most struct keys (flows, pid and CPU pairs). Every lookup or update by such a key encodes it. Each
encoder runs ``--keys`` times (default 200 000) on the same value:

- pyaya: ``SampleKey.encode(record)`` and ``.encode(dict)``, what maps call (one ``struct`` pack for structs of
  plain integers);
- per-field: the generic path that writes one field at a time, which every struct took before (the baseline);
- struct: ``struct.Struct("<IB3x").pack(pid, slot)`` (the floor: one C call).

Needs root (the object is loaded to reach ``bpf.types``).

    sudo .venv/bin/python benchmarks/encode.py [--keys N] [--runs N]
"""

from __future__ import annotations

import argparse
import struct
from collections.abc import Callable
from typing import Any

import pyaya
from _bench import BenchError, fixture_object, median_seconds, print_table, require_root, run
from pyaya.types import _Node

LAYOUT = struct.Struct("<IB3x")


def loop(function: Callable[[], bytes], keys: int) -> Callable[[], None]:
    def body() -> None:
        for _ in range(keys):
            function()

    return body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=200_000, help="encodes per run (default 200 000)")
    parser.add_argument("--runs", type=int, default=5, help="runs per encoder (median reported)")
    args = parser.parse_args()
    require_root("encode.py")
    if args.keys < 1 or args.runs < 1:
        raise BenchError("--keys and --runs must be at least 1")
    with pyaya.Ebpf.load_file(fixture_object("types_records"), globals={"TARGET_PID": b"\0\0\0\0"}) as bpf:
        if "SampleKey" not in bpf.types:
            raise BenchError("the object's BTF has no SampleKey")
        key_type: Any = bpf.types["SampleKey"]
    if key_type.size != LAYOUT.size:
        raise BenchError(f"SampleKey is {key_type.size} bytes in BTF, {LAYOUT.size} in the hand layout")
    record = key_type(pid=4242, slot=7)
    fields = {"pid": 4242, "slot": 7}
    expected = LAYOUT.pack(4242, 7)
    encoders: dict[str, Callable[[], bytes]] = {
        "per-field path (baseline)": lambda: _Node.encode(key_type, record),
        "pyaya encode(record)": lambda: key_type.encode(record),
        "pyaya encode(dict)": lambda: key_type.encode(fields),
        "struct.Struct.pack": lambda: LAYOUT.pack(4242, 7),
    }
    for name, encode in encoders.items():
        if encode() != expected:
            raise BenchError(f"{name} encoded {encode()!r}, expected {expected!r}")
    timings = {name: median_seconds(loop(encode, args.keys), args.runs) for name, encode in encoders.items()}
    baseline = timings["per-field path (baseline)"]
    rows = [
        [name, f"{seconds / args.keys * 1e9:.0f}", f"x{baseline / seconds:.2f}"] for name, seconds in timings.items()
    ]
    print(f"{LAYOUT.size}-byte struct key encoded {args.keys} times per run, median of {args.runs} runs")
    print("(ns per key include the Python loop; 'speed' above 1 means faster than the per-field path)")
    print_table(["encoder", "ns per key", "speed"], rows)
    return 0


if __name__ == "__main__":
    run(main)
