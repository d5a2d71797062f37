"""The gap of a ``pyaya run --watch`` restart: execs no run saw, between the old run's detach and the new one's attach.

The default template (tracepoint on ``sys_enter_execve``) is scaffolded and built once (cargo's target folder is
``target/bench-loss``, shared with ``loss.py``). A shell loop execs a uniquely named copy of ``/bin/true`` as fast as
it can across restarts of the project; every exec the loop made that neither run showed (nor reported lost) fell
in a gap. Rows, in the same run:

- stop, then start (the baseline: what ``--watch`` did before its handoff): ``pyaya run --json --no-build`` gets
  SIGTERM, and once it has exited a new one starts;
- ``--watch`` handoff: ``pyaya run --watch --json --no-build``, its ``main.py`` touched (a comment appended) for each
  restart; the new run loads beside the old one, which is then stopped, and the new one attaches.

Figures per restart: execs missed, and the gap in milliseconds (missed execs over the loop's exec rate). Needs root
and tracefs.

    sudo .venv/bin/python benchmarks/watch_gap.py [--restarts N]
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
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from _bench import REPO, BenchError, print_table, require_root, run

PROJECT_NAME = "benchgap"
TIMEOUT_S = 120.0


class Running:
    """A ``pyaya run`` whose stdout and stderr are read all along (a full pipe would stall it)."""

    def __init__(self, project: Path, env: dict[str, str], *flags: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pyaya", "run", str(project), "--json", "--no-build", *flags],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.err), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream: object, lines: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.append(line)

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.out) if line.startswith("{")]

    def until(self, what: str, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while not done():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"no {what}: {''.join(self.err).strip()[-300:]}")
            time.sleep(0.02)

    def kill(self) -> None:
        """Ends the run's session (its main.py included) when a row failed part way."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=TIMEOUT_S)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=TIMEOUT_S)
        for reader in self.readers:
            reader.join(timeout=30)
        if self.process.returncode != 0:
            raise BenchError(f"pyaya run failed ({self.process.returncode}): {''.join(self.err).strip()[-300:]}")


class Loop:
    """Execs ``probe`` until stopped; its count and rate."""

    def __init__(self, probe: Path, scratch: Path) -> None:
        self.stop_file = scratch / "stop-loop"
        self.stop_file.unlink(missing_ok=True)
        # The loop also ends when the probe is gone (its folder removed): it never outlives the benchmark.
        script = 'i=0; while [ ! -e "$1" ] && [ -x "$0" ]; do "$0"; i=$((i + 1)); done; echo "$i"'
        self.start = time.perf_counter()
        self.process = subprocess.Popen(
            ["/bin/sh", "-c", script, str(probe), str(self.stop_file)], stdout=subprocess.PIPE, text=True
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=TIMEOUT_S)

    def stop(self) -> tuple[int, float]:
        self.stop_file.touch()
        out, _ = self.process.communicate(timeout=TIMEOUT_S)
        execs = int(out)
        return execs, execs / (time.perf_counter() - self.start)


def seen(records: list[dict[str, Any]], probe: Path) -> int:
    """Execs of ``probe`` shown, plus records reported lost."""
    shown = sum(1 for r in records if r["kind"] == "event" and r["data"]["filename"] == str(probe))
    lost = sum(int(r["count"]) for r in records if r["kind"] == "lost")
    return shown + lost


def has_events(runner: Running, probe: Path) -> bool:
    """The latest run (after the last maps printed, by the run before it) has shown an exec of ``probe``."""
    records = runner.records()
    last = max((i for i, r in enumerate(records) if r["kind"] == "map"), default=-1)
    return seen(records[last + 1 :], probe) > 0


def said_running(runner: Running, times: int) -> bool:
    return "".join(runner.err).count("is running") >= times


def maps_printed(runner: Running, times: int) -> bool:
    return sum(1 for r in runner.records() if r["kind"] == "map" and r["map"] == "EXEC_COUNTS") >= times


def stop_then_start(project: Path, probe: Path, scratch: Path, env: dict[str, str], restarts: int) -> tuple[int, float]:
    """Missed execs in all, and the loop's rate: ``restarts`` times a run stopped, then a new one started."""
    runner = Running(project, env)
    loop = None
    try:
        runner.until("first run", partial(said_running, runner, 1))
        loop = Loop(probe, scratch)
        shown = 0
        for _ in range(restarts):
            runner.until("events", partial(has_events, runner, probe))
            runner.stop()
            shown += seen(runner.records(), probe)
            runner = Running(project, env)
            runner.until("new run", partial(said_running, runner, 1))
        runner.until("events", partial(has_events, runner, probe))
        execs, rate = loop.stop()
        runner.stop()
    finally:
        runner.kill()
        if loop is not None:
            loop.kill()
    shown += seen(runner.records(), probe)
    return execs - shown, rate


def watch_handoff(project: Path, probe: Path, scratch: Path, env: dict[str, str], restarts: int) -> tuple[int, float]:
    """Missed execs in all, and the loop's rate: ``restarts`` handoffs of a ``--watch`` run, main.py touched."""
    runner = Running(project, env, "--watch")
    loop = None
    try:
        runner.until("first run", partial(said_running, runner, 1))
        loop = Loop(probe, scratch)
        main = project / "main.py"
        for restart in range(1, restarts + 1):
            runner.until("events", partial(has_events, runner, probe))
            main.write_text(main.read_text() + f"# restart {restart}\n")
            runner.until("handoff", partial(maps_printed, runner, restart))
            runner.until("new run", partial(said_running, runner, restart + 1))
        runner.until("events", partial(has_events, runner, probe))
        execs, rate = loop.stop()
        runner.stop()
    finally:
        runner.kill()
        if loop is not None:
            loop.kill()
    if "did not report" in "".join(runner.err):
        raise BenchError("the template's main.py did not take part in the handoff")
    return execs - seen(runner.records(), probe), rate


def build_project(root: Path, env: dict[str, str]) -> Path:
    for args in (["new", PROJECT_NAME], ["build", str(root / PROJECT_NAME)]):
        done = subprocess.run(
            [sys.executable, "-m", "pyaya", *args], cwd=root, env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise BenchError(f"pyaya {args[0]} failed: {last}")
    return root / PROJECT_NAME


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--restarts", type=int, default=5, help="restarts per row (default 5)")
    args = parser.parse_args()
    require_root("watch_gap.py")
    env = {**os.environ, "CARGO_TARGET_DIR": str(REPO / "target" / "bench-loss")}
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="pyaya-bench-gap-") as folder:
        scratch = Path(folder)
        project = build_project(scratch, env)
        probe = scratch / f"pyaya-gap-true-{os.getpid()}"
        shutil.copy("/bin/true", probe)
        results = {
            "stop, then start (baseline)": stop_then_start(project, probe, scratch, env, args.restarts),
            "--watch handoff": watch_handoff(project, probe, scratch, env, args.restarts),
        }
    base_gap = None
    for label, (missed, rate) in results.items():
        per_restart = missed / args.restarts
        gap_ms = 1000 * per_restart / rate
        base_gap = gap_ms if base_gap is None else base_gap
        rows.append(
            [label, f"{rate:.0f}", f"{per_restart:.0f}", f"{gap_ms:.0f} ms", f"{gap_ms / max(base_gap, 1e-9):.2f}"]
        )
    print(f"default template, {args.restarts} restarts per row, one exec loop of a /bin/true copy")
    print_table(["restart", "execs/s", "missed per restart", "gap", "vs baseline"], rows)
    print(f"(median exec rate {statistics.median(rate for _, rate in results.values()):.0f}/s)")
    return 0


if __name__ == "__main__":
    run(main)
