"""What the benchmark scripts share: the root check, the fixture objects, medians and the result table."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pyaya.errors import PyayaError

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "crates" / "pyaya-fixtures"


class BenchError(Exception):
    """Something the benchmark needs is missing: its message is the one line printed before exiting 1."""


def require_root(script: str) -> None:
    if os.geteuid() != 0:
        raise BenchError(f"loads BPF objects: run it as root (sudo .venv/bin/python benchmarks/{script})")


def fixture_object(name: str) -> Path:
    """The fixture object ``name``, built first with ``pyaya build`` (incremental; not timed)."""
    result = subprocess.run(
        [sys.executable, "-m", "pyaya", "build", str(FIXTURES)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BenchError(f"building the fixture objects failed: {last}")
    path = FIXTURES / "target" / "bpfel-unknown-none" / "release" / name
    if not path.is_file():
        raise BenchError(f"pyaya build did not produce {path}")
    return path


def median_seconds(function: Callable[[], object], runs: int, setup: Callable[[], object] | None = None) -> float:
    """The median wall time of ``function()`` over ``runs`` calls; ``setup()`` runs untimed before each."""
    samples = []
    for _ in range(runs):
        if setup is not None:
            setup()
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def print_table(headings: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Left-aligned first column, right-aligned figures."""
    widths = [max(len(str(row[i])) for row in [headings, *rows]) for i in range(len(headings))]
    for row in [headings, *rows]:
        cells = [str(row[0]).ljust(widths[0])] + [
            str(cell).rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        print("  ".join(cells).rstrip())


def run(main: Callable[[], int]) -> None:
    """Run ``main``, turning a :class:`BenchError` or a :class:`PyayaError` (this kernel lacks something the
    benchmark loads or attaches) into one line and exit status 1."""
    try:
        status = main()
    except (BenchError, PyayaError) as error:
        print(f"{Path(sys.argv[0]).name}: {error}", file=sys.stderr)
        status = 1
    raise SystemExit(status)
