"""Start-up cost of an exec tracer: pyaya against bpftrace and BCC's execsnoop, measured in the same run.

For each tool: wall time from launch until it prints the first exec event of a marker binary, CPU time (user +
system) and peak RSS of the tool's process tree until then. pyaya runs the default template's prebuilt object
(`pyaya run --no-build --json`), so no compiler runs at start; bpftrace and BCC compile at every start. Tools
that are not installed are reported as such, with the command that installs them. Needs root.

    sudo .venv/bin/python benchmarks/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import resource
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

MARKER = "pbmark"  # the comm of the binary whose exec every tool must report (<= 15 characters)
TIMEOUT = 60.0


@dataclass
class Sample:
    first_event_s: float
    cpu_s: float
    peak_rss_mib: float


@dataclass
class Tool:
    name: str
    argv: list[str]
    install_hint: str = ""


def _exec_marker_until(stop: threading.Event, marker: Path) -> None:
    while not stop.is_set():
        subprocess.run([str(marker)], check=False)
        time.sleep(0.02)


def measure(tool: Tool, marker: Path) -> Sample:
    """Launch ``tool``, exec the marker until the tool reports it, stop the tool, and read its rusage."""
    start = time.monotonic()
    errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed below, after the tool has stopped
    process = subprocess.Popen(tool.argv, stdout=subprocess.PIPE, stderr=errors, text=True, start_new_session=True)
    stop = threading.Event()
    trigger = threading.Thread(target=_exec_marker_until, args=(stop, marker), daemon=True)
    trigger.start()
    first: float | None = None
    deadline = start + TIMEOUT
    assert process.stdout is not None
    try:
        for line in process.stdout:
            if MARKER in line:
                first = time.monotonic() - start
                break
            if time.monotonic() > deadline:
                break
    finally:
        stop.set()
        trigger.join()
        os.killpg(process.pid, signal.SIGINT)
        try:
            _, _, usage = os.wait4(process.pid, 0)
        except ChildProcessError:
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        process.stdout.close()
    errors.seek(0)
    stderr_lines = [line.strip() for line in errors.read().splitlines() if line.strip()]
    errors.close()
    if first is None:
        said = next(
            (line for line in stderr_lines if "kernel headers" in line), stderr_lines[-1] if stderr_lines else ""
        )
        raise RuntimeError(f"no event within {TIMEOUT:.0f} s; it said: {said[:120]}")
    return Sample(first, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def build_pyaya_project(workdir: Path) -> Path:
    """Scaffold and build the default template once; returns the project folder."""
    pyaya = [sys.executable, "-m", "pyaya"]
    subprocess.run([*pyaya, "new", "benchexec"], cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    project = workdir / "benchexec"
    subprocess.run([*pyaya, "build", str(project)], check=True, stdout=subprocess.DEVNULL)
    return project


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per tool (median reported)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("startup.py loads BPF programs: run it as root (sudo)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="pyaya-bench-") as tmp:
        workdir = Path(tmp)
        marker = workdir / MARKER
        shutil.copy("/bin/true", marker)
        print("building the default template once (not timed) ...", file=sys.stderr)
        project = build_pyaya_project(workdir)
        tools = [
            Tool("python -c pass (floor)", [sys.executable, "-c", f"print('{MARKER}')"]),
            Tool(
                "pyaya run (prebuilt object)",
                [sys.executable, "-m", "pyaya", "run", str(project), "--no-build", "--json"],
            ),
            Tool(
                "bpftrace",
                [
                    "bpftrace",
                    "-B",
                    "line",
                    "-e",
                    'tracepoint:syscalls:sys_enter_execve { printf("%d %s\\n", pid, str(args->filename)); }',
                ],
                "apt install bpftrace",
            ),
            Tool("BCC execsnoop", ["execsnoop-bpfcc"], "apt install bpfcc-tools"),
        ]
        results: dict[str, Sample | str] = {}
        for tool in tools:
            if shutil.which(tool.argv[0]) is None:
                results[tool.name] = f"not installed ({tool.install_hint})"
                continue
            try:
                samples = [measure(tool, marker) for _ in range(args.runs)]
            except RuntimeError as error:
                results[tool.name] = f"failed: {error}"
                continue
            results[tool.name] = Sample(
                statistics.median(s.first_event_s for s in samples),
                statistics.median(s.cpu_s for s in samples),
                statistics.median(s.peak_rss_mib for s in samples),
            )
    reference = results.get("pyaya run (prebuilt object)")
    print(f"{'tool':32} {'first event':>12} {'CPU':>8} {'peak RSS':>10}   vs pyaya (time, CPU, RSS)")
    for name, result in results.items():
        if isinstance(result, str):
            print(f"{name:32} {result}")
            continue
        ratio = ""
        if isinstance(reference, Sample) and result is not reference:
            time_ratio = result.first_event_s / reference.first_event_s
            cpu_ratio = result.cpu_s / max(reference.cpu_s, 1e-9)
            ratio = f"   x{time_ratio:.2f}, x{cpu_ratio:.2f}, x{result.peak_rss_mib / reference.peak_rss_mib:.2f}"
        print(
            f"{name:32} {result.first_event_s:>10.3f} s {result.cpu_s:>6.2f} s {result.peak_rss_mib:>7.1f} MiB{ratio}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
