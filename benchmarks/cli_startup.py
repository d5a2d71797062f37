"""How fast the CLI answers: `pyaya --help`, `pyaya --version` and `pyaya doctor` against `python -c pass`.

Each command runs as a subprocess (the installed console script, .venv/bin/pyaya, beside this interpreter), N times;
the figure is the median wall time, next to the goal and to the bare interpreter's start measured in the same run
(ratio = command / `python -c pass`). No privilege needed; doctor's exit status (1 when something is missing) is
not a failure here. The commands run with bytecode caching on (PYTHONDONTWRITEBYTECODE removed) after one untimed
warm-up run, as an installed wheel runs: without .pyc files every start compiles pyaya's sources again.

    .venv/bin/python benchmarks/cli_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _bench import BenchError, print_table, run

#: Goals from issue 10: the help and the version in 150 ms, the whole doctor report in half a second.
GOALS_MS = {"--help": 150.0, "--version": 150.0, "doctor": 500.0}


def _median_ms(argv: list[str], runs: int) -> float:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)  # warm-up
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
        samples.append(time.perf_counter() - start)
        if result.returncode not in (0, 1):
            raise BenchError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.decode()[-200:]}")
    return statistics.median(samples) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each command (the median is shown)")
    args = parser.parse_args()
    if args.runs < 1:
        raise BenchError("--runs must be at least 1")
    pyaya = Path(sys.executable).with_name("pyaya")
    if not pyaya.is_file():
        raise BenchError(f"no console script at {pyaya}: run `make setup` (it installs pyaya into .venv)")
    baseline = _median_ms([sys.executable, "-c", "pass"], args.runs)
    rows = [["python -c pass", f"{baseline:.1f}", "-", "1.00", "-"]]
    for command, goal in GOALS_MS.items():
        figure = _median_ms([str(pyaya), command], args.runs)
        verdict = "met" if figure <= goal else "MISSED"
        rows.append([f"pyaya {command}", f"{figure:.1f}", f"{goal:.0f}", f"{figure / baseline:.2f}", verdict])
    print(f"median of {args.runs} runs each, wall time in ms")
    print_table(["command", "ms", "goal ms", "x python", "goal"], rows)
    return 0


if __name__ == "__main__":
    run(main)
