"""What a new project's first `pyaya build` costs: with an empty cache folder, then for a second new project once the
first filled the toolchain's shared build folder, then a rebuild with nothing to do.

All three in one run, in a cache folder of the run's own (PYAYA_CACHE in a temporary folder, removed at the end):
`pyaya new` (not timed) then `pyaya build` as a subprocess, piped. Ratios are against the cold build. Crates are
downloaded once into cargo's own cache (~/.cargo/registry), which this does not empty: a machine's very first
build also downloads them. Each new project's first build resolves its Cargo.lock (cargo asks the crates.io index),
which the second figure includes. No privilege needed.

    .venv/bin/python benchmarks/first_build.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench import BenchError, print_table, run

#: Issue 13's goal for a no-op `pyaya build`.
NOOP_GOAL_S = 0.3


def _pyaya(*args: str, cwd: Path, env: dict[str, str]) -> float:
    """Seconds ``pyaya ARGS`` took; BenchError with its last line when it fails."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pyaya", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BenchError(f"pyaya {' '.join(args)} failed in {cwd}: {last}")
    return elapsed


def _raw_cargo(root: Path, env: dict[str, str]) -> float:
    """Seconds of the cargo command ``pyaya build`` runs (same argv, env and build folder), run by itself: what a
    no-op build costs without pyaya's toolchain probe, staleness check and start-up. The command is resolved
    before the clock starts."""
    from pyaya import build_cache  # noqa: PLC0415 - the benchmark's own interpreter, not timed
    from pyaya.project import find_project  # noqa: PLC0415
    from pyaya.toolchain import resolve  # noqa: PLC0415

    project = find_project(root)
    chosen = resolve(None, project_kind=project.toolchain, env=env)
    argv, cargo_env = chosen.build_command(project.package, release=True, base_env=env)
    cargo_env = build_cache.plan(chosen, project.root, cargo_env).apply(cargo_env)
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=root, env=cargo_env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise BenchError(f"cargo failed in {root}: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of the no-op rebuild (the median is shown)")
    args = parser.parse_args()
    if args.runs < 1:
        raise BenchError("--runs must be at least 1")
    scratch = Path(tempfile.mkdtemp(prefix="pyaya-first-build-"))
    try:
        # Bytecode caching on (an installed wheel has its .pyc files), the cargo overrides of the calling shell off.
        dropped = ("CARGO_TARGET_DIR", "CARGO_BUILD_BUILD_DIR", "PYTHONDONTWRITEBYTECODE")
        env = {k: v for k, v in os.environ.items() if k not in dropped}
        env["PYAYA_CACHE"] = str(scratch / "cache")
        os.environ["PYAYA_CACHE"] = env["PYAYA_CACHE"]  # for the raw cargo baseline's build folder, resolved here
        for name in ("benchfirst", "benchsecond"):
            _pyaya("new", name, cwd=scratch, env=env)
        cold = _pyaya("build", cwd=scratch / "benchfirst", env=env)
        second = _pyaya("build", cwd=scratch / "benchsecond", env=env)
        noop = sorted(_pyaya("build", cwd=scratch / "benchsecond", env=env) for _ in range(args.runs))[args.runs // 2]
        raw = sorted(_raw_cargo(scratch / "benchsecond", env) for _ in range(args.runs))[args.runs // 2]
        shared = list((scratch / "cache" / "build").glob("*"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rows = [
        ["first build, empty cache", f"{cold:.1f}", "1.00"],
        ["second new project's first build", f"{second:.1f}", f"{second / cold:.2f}"],
        [f"no-op rebuild (median of {args.runs})", f"{noop:.2f}", f"{noop / cold:.3f}"],
        [f"raw cargo's no-op, same command (median of {args.runs})", f"{raw:.2f}", f"{raw / cold:.3f}"],
    ]
    print_table(["pyaya build", "seconds", "ratio"], rows)
    verdict = "met" if noop <= NOOP_GOAL_S else "MISSED"
    print(f"no-op pyaya build: {noop:.2f} s, x{noop / raw:.1f} raw cargo's; goal <= {NOOP_GOAL_S} s: {verdict}")
    if not shared:
        print("(no shared build folder was used: see `pyaya doctor`'s build cache line)")
    return 0


if __name__ == "__main__":
    run(main)
