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
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _bench import BenchError, print_table, run

#: Goals from issue 10: the help and the version in 150 ms, the whole doctor report in half a second.
GOALS_MS = {"--help": 150.0, "--version": 150.0, "doctor": 500.0}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _median_ms(argv: list[str], runs: int) -> tuple[float, float]:
    """Median wall time and median CPU time (user + system, the command and what it runs) in ms."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)  # warm-up
    walls, cpus = [], []
    for _ in range(runs):
        cpu = _children_cpu()
        start = time.perf_counter()
        result = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
        walls.append(time.perf_counter() - start)
        cpus.append(_children_cpu() - cpu)
        if result.returncode not in (0, 1):
            raise BenchError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.decode()[-200:]}")
    return statistics.median(walls) * 1000, statistics.median(cpus) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each command (the median is shown)")
    args = parser.parse_args()
    if args.runs < 1:
        raise BenchError("--runs must be at least 1")
    pyaya = Path(sys.executable).with_name("pyaya")
    if not pyaya.is_file():
        raise BenchError(f"no console script at {pyaya}: run `make setup` (it installs pyaya into .venv)")
    baseline, baseline_cpu = _median_ms([sys.executable, "-c", "pass"], args.runs)
    rows = [["python -c pass", f"{baseline:.1f}", f"{baseline_cpu:.1f}", "-", "1.00", "-"]]
    for command, goal in GOALS_MS.items():
        figure, cpu = _median_ms([str(pyaya), command], args.runs)
        verdict = "met" if figure <= goal else "MISSED"
        rows.append(
            [f"pyaya {command}", f"{figure:.1f}", f"{cpu:.1f}", f"{goal:.0f}", f"{figure / baseline:.2f}", verdict]
        )
    print(f"median of {args.runs} runs each, in ms: wall time (the goal's measure) and CPU time (user + system of")
    print("the command and the programs it runs: what a busy machine's load does not inflate as much)")
    print_table(["command", "wall ms", "cpu ms", "goal ms", "x python", "goal"], rows)
    return 0


if __name__ == "__main__":
    run(main)
