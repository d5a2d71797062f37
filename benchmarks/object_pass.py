"""Cost of ``Ebpf.load`` for objects pyaya's object pass has nothing to rewrite, and for ones it rewrites: the
median and minimum wall time of loading (maps created, programs prepared) and closing each object given. Prints
figures, asserts nothing (timing never goes into a test). Needs root.

    sudo .venv/bin/python benchmarks/object_pass.py [--runs N] OBJECT...

Without objects, the C test objects built by ``tests/kernel/test_c_objects.py`` (pyaya's cache) are used.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from _bench import BenchError, require_root
from pyaya import Ebpf
from pyaya._cache import cache_home
from pyaya.errors import PyayaError


def _default_objects() -> list[Path]:
    folder = cache_home() / "test-c-objects"
    return sorted(folder.glob("*.o")) if folder.is_dir() else []


def _times_ms(data: bytes, runs: int) -> tuple[float, float]:
    """(median, minimum) of ``runs`` loads: the minimum is the least disturbed by other work on the machine."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        Ebpf.load(data).close()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, min(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("objects", nargs="*", type=Path)
    args = parser.parse_args()
    try:
        require_root("object_pass.py")
        objects = args.objects or _default_objects()
        if not objects:
            raise BenchError("no objects given and none built: run tests/kernel/test_c_objects.py first")
    except BenchError as error:
        print(f"object_pass: {error}", file=sys.stderr)
        return 1
    for path in objects:
        data = path.read_bytes()
        try:
            _times_ms(data, 2)  # warm: page cache, the kernel's BTF parsed once per process
            median, least = _times_ms(data, args.runs)
            print(f"{path.name:40} {len(data):>7} bytes  Ebpf.load median {median:7.3f} ms, min {least:7.3f} ms")
        except PyayaError as error:  # an object this kernel refuses (a missing extern): reported, the others run
            print(f"{path.name:45} failed: {str(error).splitlines()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
