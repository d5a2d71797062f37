"""Whole-map operations with the kernel's batch commands against key by key, on the same map and data.

For a hash map, a per-CPU hash map and an array of N ``u64`` entries (default 10 000), times ``items()``,
``values()``, ``clear()`` and a bulk write (``update_many()`` on hash maps, ``update()`` on arrays) with
``batch=True`` (one ``BPF_MAP_*_BATCH`` command per call) and ``batch=False`` (one syscall per key), alternately
in this process, and prints the median milliseconds of each and the speed-up. The "raw" columns time the same
kernel commands on bytes through ``pyaya._native`` (no codecs), so the share of Python encoding and decoding
shows. ``bpftool map dump id ID -j``
(a process reading the whole map key by key and printing JSON) is timed on the same full map as an external
baseline when bpftool is installed.

Then issue 13's large map: a hash map of ``--big-entries`` (default 1 000 000) ``u32 -> u64`` entries read into a
dict (``m.to_dict()``, and ``dict(m.items())``) and into numpy (``items_array()``), and written from a dict
(``update_many``) and from
numpy arrays (``update_array``), each against the kernel's batch command alone on the same entries in the same
run (one native call, bytes in one buffer: ``lookup_batch_packed``, ``update_batch``), next to its goal (1.4x
for dicts, 1.1x for numpy). Needs root and the fixture object ``bench_maps`` (built by this script with ``pyaya
build``).

    sudo .venv/bin/python benchmarks/map_batch.py [--entries N] [--runs N] [--big-entries N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import pyaya
from _bench import BenchError, fixture_object, median_seconds, print_table, require_root, run
from pyaya.errors import UnsupportedError
from pyaya.maps import Array, HashMap, PerCpuValues

MAPS = {"hash": "BENCH_HASH", "per-CPU hash": "BENCH_PERCPU_HASH", "array": "BENCH_ARRAY"}
BPFTOOL_PATHS = ("bpftool", "/usr/sbin/bpftool")


def bpftool() -> str | None:
    """bpftool's path (``/usr/sbin`` is not on every root's PATH), or None."""
    for candidate in BPFTOOL_PATHS:
        found = shutil.which(candidate)
        if found:
            return found
    return None


@dataclass
class Operation:
    """One whole-map operation: ``run(batch)`` through pyaya's containers, ``raw(batch)`` the same kernel commands
    on bytes without codecs (None when they are the same), ``setup`` (untimed) leaves the map full or empty."""

    run: Callable[[bool], object]
    raw: Callable[[bool], object] | None
    setup: Callable[[], object] | None


def operations(bench_map: Any, pairs: list[tuple[int, int]]) -> dict[str, Operation]:
    native = bench_map._native
    encoded = [(bench_map.key_codec.encode(key), bench_map.value_codec.encode(value)) for key, value in pairs]
    keys, values = b"".join(k for k, _ in encoded), b"".join(v for _, v in encoded)

    def fill() -> None:
        write(bench_map, pairs, True)

    def raw_write(batch: bool) -> object:
        if batch:
            return native.update_batch(keys, values, 0)
        for key, value in encoded:
            native.update(key, value, 0)
        return len(encoded)

    def raw_read(batch: bool) -> object:
        return native.lookup_batch() if batch else native.items()

    ops = {
        "update": Operation(
            lambda batch: write(bench_map, pairs, batch),
            raw_write,
            (lambda: bench_map.clear(batch=True)) if isinstance(bench_map, HashMap) else None,
        ),
        "items": Operation(lambda batch: bench_map.items(batch=batch), raw_read, fill),
        "values": Operation(lambda batch: bench_map.values(batch=batch), None, fill),
    }
    if isinstance(bench_map, HashMap):
        ops["clear"] = Operation(lambda batch: bench_map.clear(batch=batch), None, fill)
    return ops


def write(bench_map: Any, pairs: list[tuple[int, int]], batch: bool) -> object:
    """The bulk write: ``update_many`` on hash maps (``update`` goes the same way), ``update`` on arrays."""
    if isinstance(bench_map, HashMap):
        return bench_map.update_many(pairs, batch=batch)
    return bench_map.update(pairs, batch=batch)


def plain(value: Any) -> Any:
    """A per-CPU value written as one number holds it on every CPU: that number (else a marker that won't match)."""
    if isinstance(value, PerCpuValues):
        return value[0] if len(set(value)) == 1 else tuple(value)
    return value


def check_contents(label: str, bench_map: Any, pairs: list[tuple[int, int]]) -> None:
    """Each write path read back by each read path must give exactly what was written, or timing means nothing."""
    expected = sorted(pairs)
    for write_batch in (True, False):
        if isinstance(bench_map, HashMap):
            bench_map.clear(batch=True)
        write(bench_map, pairs, write_batch)
        for read_batch in (True, False):
            got = sorted((key, plain(value)) for key, value in bench_map.items(batch=read_batch))
            if got != expected:
                raise BenchError(
                    f"{label}: items(batch={read_batch}) after a write with batch={write_batch} did not read back "
                    f"the {len(pairs)} entries written"
                )


def figures(batched: float, per_key: float) -> list[str]:
    return [f"{batched * 1000:.2f}", f"{per_key * 1000:.2f}", f"x{per_key / batched:.1f}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=10_000, help="entries per map (default 10 000)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per operation (median reported)")
    parser.add_argument(
        "--big-entries", type=int, default=1_000_000, help="entries of the large-map rows (default 1 000 000; 0: none)"
    )
    args = parser.parse_args()
    require_root("map_batch.py")
    if args.entries < 1 or args.runs < 1:
        raise BenchError("--entries and --runs must be at least 1")
    obj = fixture_object("bench_maps")
    tool = bpftool()
    rows: list[list[str]] = []
    with pyaya.Ebpf.load_file(obj, max_entries={name: args.entries for name in MAPS.values()}) as bpf:
        for label, name in MAPS.items():
            bench_map = bpf.maps[name]
            if not isinstance(bench_map, (HashMap, Array)):
                raise BenchError(f"{name} came back as {type(bench_map).__name__}, not a hash map or array")
            pairs = [(key, key * 3 + 1) for key in range(args.entries)]
            check_contents(label, bench_map, pairs)
            for op, operation in operations(bench_map, pairs).items():
                try:
                    batched = median_seconds(partial(operation.run, True), args.runs, operation.setup)
                except UnsupportedError as error:
                    rows.append([f"{label} {op}", "unsupported", "", "", "", "", "", str(error)[:60]])
                    continue
                per_key = median_seconds(partial(operation.run, False), args.runs, operation.setup)
                row = [f"{label} {op}", *figures(batched, per_key)]
                if operation.raw is not None:
                    raw_batched = median_seconds(partial(operation.raw, True), args.runs, operation.setup)
                    raw_per_key = median_seconds(partial(operation.raw, False), args.runs, operation.setup)
                    row += figures(raw_batched, raw_per_key)
                else:
                    row += ["", "", ""]
                rows.append([*row, ""])
                if op == "items":
                    rows.append(bpftool_row(tool, label, bench_map, batched, args))
    print(f"{args.entries} entries per map, u32 keys, u64 values; median of {args.runs} runs")
    print("raw: the same kernel commands on bytes (pyaya._native, no codecs): what the codecs cost beside them")
    print_table(
        [
            "map operation",
            "batch ms",
            "per-key ms",
            "speed-up",
            "raw batch ms",
            "raw per-key ms",
            "raw speed-up",
            "note",
        ],
        rows,
    )
    if args.big_entries:
        large_map(obj, args.big_entries, max(5, args.runs))
    return 0


#: Issue 13's goals: each pyaya path's time over the kernel's batch command alone on the same entries.
LARGE_GOALS = {"dict": 1.4, "numpy": 1.1}


def large_map(obj: Any, entries: int, runs: int) -> None:
    """A hash map of ``entries`` u32 -> u64 entries: pyaya's whole-map reads and writes against the batch commands."""
    try:
        import numpy as np  # noqa: PLC0415 - optional, as for pyaya
    except ImportError:
        print("large map: numpy is not installed (pip install 'pyaya[numpy]')")
        return
    keys = np.arange(entries, dtype=np.uint32)
    values = keys.astype(np.uint64) * 3 + 1
    key_bytes, value_bytes = keys.tobytes(), values.tobytes()
    as_dict = dict(zip(keys.tolist(), values.tolist(), strict=True))
    with pyaya.Ebpf.load_file(obj, max_entries={"BENCH_HASH": entries}) as bpf:
        table = bpf.maps["BENCH_HASH"]
        if not isinstance(table, HashMap):
            raise BenchError(f"BENCH_HASH came back as {type(table).__name__}, not a hash map")
        native = table._native

        def fill() -> None:
            native.update_batch(key_bytes, value_bytes, 0)

        def empty() -> None:
            table.clear(batch=True)

        read_base = median_seconds(native.lookup_batch_packed, runs, fill)
        write_base = median_seconds(fill, runs, empty)
        got = dict(table.items())
        if got != as_dict or table.to_dict() != as_dict:
            raise BenchError(f"the {entries}-entry map did not read back what was written")
        measured = [
            ("read into a dict: m.to_dict()", "dict", read_base, median_seconds(table.to_dict, runs, fill)),
            (
                "read into a list, then a dict: dict(m.items())",
                "dict",
                read_base,
                median_seconds(lambda: dict(table.items()), runs, fill),
            ),
            ("read into numpy: m.items_array()", "numpy", read_base, median_seconds(table.items_array, runs, fill)),
            (
                "write from a dict: m.update_many(d)",
                "dict",
                write_base,
                median_seconds(lambda: table.update_many(as_dict), runs, empty),
            ),
            (
                "write from numpy: m.update_array(k, v)",
                "numpy",
                write_base,
                median_seconds(lambda: table.update_array(keys, values), runs, empty),
            ),
        ]
    rows = [["kernel batch lookup (baseline)", f"{read_base * 1000:.0f}", "x1.00", "", ""]]
    rows.append(["kernel batch update (baseline)", f"{write_base * 1000:.0f}", "x1.00", "", ""])
    for label, kind, base, seconds in measured:
        ratio, goal = seconds / base, LARGE_GOALS[kind]
        rows.append(
            [label, f"{seconds * 1000:.0f}", f"x{ratio:.2f}", f"<= x{goal}", "met" if ratio <= goal else "MISSED"]
        )
    print()
    print(f"{entries} entries, hash map u32 -> u64; median of {runs} runs; against the kernel's batch command alone")
    print_table(["large map", "ms", "vs kernel", "goal", ""], rows)


def bpftool_row(
    tool: str | None, label: str, bench_map: Any, batched_items: float, args: argparse.Namespace
) -> list[str]:
    """``bpftool map dump`` of the same full map, against pyaya's batched ``items()``."""
    name = f"{label} bpftool dump"
    if tool is None:
        return [name, "", "", "", "bpftool not installed (apt install bpftool)"]
    argv = [tool, "map", "dump", "id", str(bench_map.id), "-j"]

    def dump() -> str:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BenchError(f"{' '.join(argv)} failed: {result.stderr.strip()[:100]}")
        return result.stdout

    entries = len(json.loads(dump()))
    if entries != args.entries:
        raise BenchError(f"bpftool dumped {entries} entries of {label}, expected {args.entries}")
    seconds = median_seconds(dump, args.runs)
    return [
        name,
        "",
        f"{seconds * 1000:.2f}",
        f"x{seconds / batched_items:.1f}",
        "",
        "",
        "",
        "a process, JSON text; speed-up: vs batch items()",
    ]


if __name__ == "__main__":
    run(main)
