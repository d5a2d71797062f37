"""Exec events produced, received and lost by the default template under exec load, through ``pyaya run --json``.

The default template (tracepoint on ``sys_enter_execve``) is scaffolded and built once (cargo's target folder is
``target/bench-loss``), then, for each load, ``pyaya run --json --no-build`` runs while ``LOOPS`` shell loops each
exec a uniquely named copy of ``/bin/true`` as fast as they can; once they are done (and half a second later) the
run gets SIGTERM, as from ``kill``. Figures per load:

- produced: the sum of ``EXEC_COUNTS`` printed at exit (the program counts every exec before reserving its record,
  so this includes the machine's other execs meanwhile);
- received: event lines; lost: the sum of ``lost`` lines; missing: produced - received - lost, which must be 0
  (a record neither shown nor reported lost);
- execs/s: the loops' own execs over the time they took.

"one CPU" pins the run and the loops to one CPU, so user space gets a share of a CPU that the loops keep busy:
the case a ring buffer must absorb (the default 20 000 execs are more than its 4 MiB hold). ``-v`` also sends a
kernel-side debug record per exec (what ``--json`` did before it stopped switching them on). Needs root and tracefs.

    sudo .venv/bin/python benchmarks/loss.py [--execs N] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from _bench import REPO, BenchError, print_table, require_root, run

PROJECT_NAME = "benchloss"
QUIET_S = 0.5  # after the loops are done, before SIGTERM: the reader catches up meanwhile


@dataclass(frozen=True)
class Load:
    label: str
    loops: int
    one_cpu: bool = False
    verbose: bool = False


LOADS = (
    Load("1 loop", 1),
    Load("4 loops", 4),
    Load("16 loops", 16),
    Load("16 loops, -v", 16, verbose=True),
    Load("4 loops, one CPU", 4, one_cpu=True),
    Load("16 loops, one CPU", 16, one_cpu=True),
    Load("16 loops, one CPU, -v", 16, one_cpu=True, verbose=True),
)


@dataclass
class Outcome:
    produced: int
    received: int
    lost: int
    rate: float

    @property
    def missing(self) -> int:
        return self.produced - self.received - self.lost


def pyaya(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyaya", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def build_project(root: Path, env: dict[str, str]) -> Path:
    created = pyaya("new", PROJECT_NAME, cwd=root, env=env)
    if created.returncode != 0:
        raise BenchError(f"pyaya new failed: {created.stderr.strip()}")
    project = root / PROJECT_NAME
    built = pyaya("build", str(project), env=env)
    if built.returncode != 0:
        last = (built.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BenchError(f"building the default template failed: {last}")
    return project


def measure(project: Path, probe: Path, load: Load, execs: int, env: dict[str, str]) -> Outcome:
    pin = ["taskset", "-c", str(min(os.sched_getaffinity(0)))] if load.one_cpu else []
    flags = ["-v"] if load.verbose else []
    runner = subprocess.Popen(
        [*pin, sys.executable, "-m", "pyaya", "run", str(project), "--json", "--no-build", *flags],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert runner.stdout is not None
    assert runner.stderr is not None
    errors = []
    for line in runner.stderr:  # attached once it says so
        errors.append(line)
        if "is running" in line:
            break
    else:
        runner.wait()
        raise BenchError(f"pyaya run exited with {runner.returncode}: {''.join(errors).strip()}")
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.append(runner.stdout.read() if runner.stdout else ""))
    reader.start()  # stdout is read all along, or a full pipe would stall the run
    drain_stderr = threading.Thread(target=lambda: errors.append(runner.stderr.read() if runner.stderr else ""))
    drain_stderr.start()
    per_loop = max(1, execs // load.loops)
    script = f'i=0; while [ "$i" -lt {per_loop} ]; do "$0"; i=$((i + 1)); done'
    start = time.perf_counter()
    loops = [subprocess.Popen([*pin, "/bin/sh", "-c", script, str(probe)]) for _ in range(load.loops)]
    for loop in loops:
        loop.wait()
    seconds = time.perf_counter() - start
    time.sleep(QUIET_S)
    runner.send_signal(signal.SIGTERM)
    runner.wait(timeout=120)
    reader.join()
    drain_stderr.join()
    if runner.returncode != 0:
        raise BenchError(f"pyaya run failed ({runner.returncode}): {''.join(errors).strip()[-300:]}")
    records = [json.loads(line) for line in output[0].splitlines()]
    counts = [record for record in records if record["kind"] == "map" and record["map"] == "EXEC_COUNTS"]
    if len(counts) != 1:
        raise BenchError("pyaya run printed no EXEC_COUNTS at exit")
    return Outcome(
        produced=sum(entry["execs"] for entry in counts[0]["entries"]),
        received=sum(1 for record in records if record["kind"] == "event"),
        lost=sum(record["count"] for record in records if record["kind"] == "lost"),
        rate=per_loop * load.loops / seconds,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--execs",
        type=int,
        default=20_000,
        help="execs made by the loops per run (default 20 000: more than the ring holds)",
    )
    parser.add_argument("--runs", type=int, default=1, help="runs per load (the worst loss is shown)")
    args = parser.parse_args()
    require_root("loss.py")
    if shutil.which("taskset") is None:
        raise BenchError("taskset (util-linux) is needed for the one-CPU loads: apt-get install util-linux")
    env = {**os.environ, "CARGO_TARGET_DIR": str(REPO / "target" / "bench-loss")}
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="pyaya-bench-loss-") as scratch:
        root = Path(scratch)
        project = build_project(root, env)
        probe = root / f"pyaya-loss-true-{os.getpid()}"
        shutil.copy("/bin/true", probe)
        for load in LOADS:
            outcomes = [measure(project, probe, load, args.execs, env) for _ in range(args.runs)]
            worst = max(outcomes, key=lambda o: (o.lost + abs(o.missing)) / max(1, o.produced))
            rows.append(
                [
                    load.label,
                    f"{statistics.median(o.rate for o in outcomes):.0f}",
                    str(worst.produced),
                    str(worst.received),
                    str(worst.lost),
                    str(worst.missing),
                    f"{100 * worst.lost / max(1, worst.produced):.2f} %",
                ]
            )
    print(f"default template, pyaya run --json, {args.execs} execs of a /bin/true copy per run; worst of {args.runs}")
    print_table(["load", "execs/s", "produced", "received", "lost", "missing", "lost share"], rows)
    return 0


if __name__ == "__main__":
    run(main)
