"""Decoding an exec tracer's record: pyaya's BTF record type against ctypes and ``struct``, in the same process.

The record is the fixture's ``BenchExecEvent`` (``bench_stream``): four ``u32`` fields, a ``[u8; 16]`` comm and a
``[u8; 256]`` filename, 288 bytes. Each decoder runs ``--records`` times (default 100 000) on the same bytes:

- pyaya: ``bpf.types["BenchExecEvent"].decode(data)``, the codec streams and maps use (text arrays become ``str``);
- ctypes: a hand-written ``Structure``'s ``from_buffer_copy(data)`` (baseline for a declared layout);
- struct: ``struct.unpack_from("<4I16s256s", data)`` (the floor: one C call).

Two figures per decoder: decoding alone, and decoding plus reading every field as Python values with the text
fields as ``str`` (what pyaya's records already hold), ratios against pyaya. Needs root (the object is loaded to
reach ``bpf.types``).

    sudo .venv/bin/python benchmarks/decode.py [--records N] [--runs N]
"""

from __future__ import annotations

import argparse
import ctypes
import struct
from collections.abc import Callable
from typing import Any

import pyaya
from _bench import BenchError, fixture_object, median_seconds, print_table, require_root, run

LAYOUT = struct.Struct("<4I16s256s")


class CtypesExecEvent(ctypes.Structure):
    _fields_ = (
        ("pid", ctypes.c_uint32),
        ("ppid", ctypes.c_uint32),
        ("uid", ctypes.c_uint32),
        ("gid", ctypes.c_uint32),
        ("comm", ctypes.c_char * 16),
        ("filename", ctypes.c_char * 256),
    )


def text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode()


def decoders(pyaya_type: Any) -> dict[str, tuple[Callable[[bytes], Any], Callable[[bytes], Any]]]:
    """Per decoder: (decode only, decode and read every field as Python values)."""
    decode = pyaya_type.decode
    from_buffer_copy = CtypesExecEvent.from_buffer_copy
    unpack_from = LAYOUT.unpack_from

    def pyaya_fields(data: bytes) -> tuple[Any, ...]:
        event = decode(data)
        return (event.pid, event.ppid, event.uid, event.gid, event.comm, event.filename)

    def ctypes_fields(data: bytes) -> tuple[Any, ...]:
        event = from_buffer_copy(data)
        return (event.pid, event.ppid, event.uid, event.gid, event.comm.decode(), event.filename.decode())

    def struct_fields(data: bytes) -> tuple[Any, ...]:
        pid, ppid, uid, gid, comm, filename = unpack_from(data)
        return (pid, ppid, uid, gid, text(comm), text(filename))

    return {
        'pyaya bpf.types["BenchExecEvent"]': (decode, pyaya_fields),
        "ctypes Structure.from_buffer_copy": (from_buffer_copy, ctypes_fields),
        "struct.unpack_from": (unpack_from, struct_fields),
    }


def loop(function: Callable[[bytes], Any], data: bytes, records: int) -> Callable[[], None]:
    def body() -> None:
        for _ in range(records):
            function(data)

    return body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000, help="decodes per run (default 100 000)")
    parser.add_argument("--runs", type=int, default=5, help="runs per decoder (median reported)")
    args = parser.parse_args()
    require_root("decode.py")
    if args.records < 1 or args.runs < 1:
        raise BenchError("--records and --runs must be at least 1")
    obj = fixture_object("bench_stream")
    with pyaya.Ebpf.load_file(obj, globals={"BENCH_TGID": b"\0\0\0\0"}) as bpf:
        if "BenchExecEvent" not in bpf.types:
            raise BenchError(f"the object's BTF has no BenchExecEvent (types: {', '.join(sorted(bpf.types))[:120]})")
        pyaya_type = bpf.types["BenchExecEvent"]
    if pyaya_type.size != ctypes.sizeof(CtypesExecEvent) or pyaya_type.size != LAYOUT.size:
        raise BenchError(f"BenchExecEvent is {pyaya_type.size} bytes in BTF, {LAYOUT.size} in the hand layouts")
    data = LAYOUT.pack(4242, 4100, 1000, 1000, b"bash", b"/usr/lib/x86_64-linux-gnu/coreutils/uname")
    table = decoders(pyaya_type)
    expected = (4242, 4100, 1000, 1000, "bash", "/usr/lib/x86_64-linux-gnu/coreutils/uname")
    for name, (_, fields) in table.items():
        if fields(data) != expected:
            raise BenchError(f"{name} decoded {fields(data)!r}, expected {expected!r}")
    timings = {
        name: (
            median_seconds(loop(decode, data, args.records), args.runs),
            median_seconds(loop(fields, data, args.records), args.runs),
        )
        for name, (decode, fields) in table.items()
    }
    base_decode, base_fields = next(iter(timings.values()))
    rows = [
        [
            name,
            f"{decode / args.records * 1e9:.0f}",
            f"x{base_decode / decode:.2f}",
            f"{fields / args.records * 1e9:.0f}",
            f"x{base_fields / fields:.2f}",
        ]
        for name, (decode, fields) in timings.items()
    ]
    print(f"{LAYOUT.size}-byte record decoded {args.records} times per run, median of {args.runs} runs")
    print("(ns per record include the Python loop; 'speed vs pyaya' above 1 means faster than pyaya)")
    print_table(["decoder", "decode ns", "speed vs pyaya", "+ every field ns", "speed vs pyaya"], rows)
    return 0


if __name__ == "__main__":
    run(main)
