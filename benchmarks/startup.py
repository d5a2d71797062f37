"""Start-up cost of an exec tracer: pyaya against bpftrace and BCC's execsnoop, measured in the same run.

For each tool: wall time from launch until it prints the first exec event of a marker binary, CPU time (user +
system) and peak RSS of the tool's process tree until then. pyaya runs the default template's prebuilt object
three ways: `pyaya run --no-build --json` (the CLI, then the template's main.py), that main.py started directly,
and a plain script using the API (imports, Ebpf.load_file, attach, RingBuf.drain; no Session); no compiler runs
at start, while bpftrace and BCC compile at every start. The plain script stamps each phase (CLOCK_MONOTONIC is
the same clock in every process), so the breakdown shows where a regression is: the CLI (pyaya run less main.py
run directly), the imports, the load, the attach and the wait for the first event. The goals (issue 13) are
ratios to bpftrace in the same run: pyaya run <= 0.5x its time, the plain script <= 0.3x, peak RSS <= 0.3x.
Tools that are not installed are reported as such, with the command that installs them (bpftrace: `apt-get
install bpftrace` on Debian). Each tool runs once untimed first, with bytecode caching on (PYTHONDONTWRITEBYTECODE
removed), as an installed wheel runs: without .pyc files every start compiles pyaya's sources again. Needs root.

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
#: How often the marker runs while a tool starts. Each tool's first event comes up to this long after it is ready
#: (half of it on average): short, so that the figure is the start-up, not the wait for the next exec.
TRIGGER_PERIOD = 0.005
#: Where the plain API script reads its launch time (time.monotonic() in this process, just before the launch).
LAUNCH_ENV = "PYAYA_BENCH_LAUNCH"
GOALS = {"pyaya run (prebuilt object)": 0.5, "plain API script": 0.3}
RSS_GOAL = 0.3

#: The plain script: what the template's main.py does with the API alone, its phases stamped on stderr.
API_SCRIPT = """\
import os, sys, time
launch = float(os.environ["{env}"])
def stamp(phase):
    print(f"phase {{phase}} {{time.monotonic() - launch:.6f}}", file=sys.stderr, flush=True)
stamp("interpreter")
from pyaya import Ebpf
stamp("imports")
# The template's kernel_field! declarations are filled in the load: from this boot's cache of their resolutions
# after the first start of the boot (the untimed warm-up run), else from the kernel's BTF.
bpf = Ebpf.load_file(sys.argv[1])
stamp("load")
bpf.programs[sys.argv[2]].attach("syscalls", "sys_enter_execve")
stamp("attach")
ring = bpf.maps["EVENTS"]
while True:
    for event in ring.drain(timeout=1.0):
        print(event.filename, flush=True)
"""


@dataclass
class Sample:
    first_event_s: float
    cpu_s: float
    peak_rss_mib: float
    phases: dict[str, float] | None = None


@dataclass
class Tool:
    name: str
    argv: list[str]
    install_hint: str = ""


def _exec_marker_until(stop: threading.Event, marker: Path) -> None:
    while not stop.is_set():
        subprocess.run([str(marker)], check=False)
        time.sleep(TRIGGER_PERIOD)


def measure(tool: Tool, marker: Path) -> Sample:
    """Launch ``tool``, exec the marker until the tool reports it, stop the tool, and read its rusage."""
    start = time.monotonic()
    errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed below, after the tool has stopped
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    environment[LAUNCH_ENV] = repr(time.monotonic())
    process = subprocess.Popen(
        tool.argv, stdout=subprocess.PIPE, stderr=errors, text=True, start_new_session=True, env=environment
    )
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
    phases = {
        fields[1]: float(fields[2])
        for fields in (line.split() for line in stderr_lines)
        if len(fields) == 3 and fields[0] == "phase"
    }
    return Sample(first, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, phases or None)


def build_pyaya_project(workdir: Path) -> Path:
    """Scaffold and build the default template once; returns the project folder."""
    pyaya = [sys.executable, "-m", "pyaya"]
    subprocess.run([*pyaya, "new", "benchexec"], cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    project = workdir / "benchexec"
    subprocess.run([*pyaya, "build", str(project)], check=True, stdout=subprocess.DEVNULL)
    return project


def report(results: dict[str, Sample | str]) -> None:
    """The table (each tool against bpftrace, with the goals), then the breakdown of pyaya's start-up."""
    reference = results.get("bpftrace")
    print(f"{'tool':30} {'first event':>12} {'CPU':>8} {'peak RSS':>10}   vs bpftrace (time, RSS; goal)")
    for name, result in results.items():
        if isinstance(result, str):
            print(f"{name:30} {result}")
            continue
        ratio = ""
        if isinstance(reference, Sample) and result is not reference:
            time_ratio = result.first_event_s / reference.first_event_s
            rss_ratio = result.peak_rss_mib / reference.peak_rss_mib
            ratio = f"   x{time_ratio:.2f}, x{rss_ratio:.2f}"
            if name in GOALS:
                met = time_ratio <= GOALS[name] and rss_ratio <= RSS_GOAL
                ratio += f"   (<= x{GOALS[name]}, <= x{RSS_GOAL}: {'met' if met else 'MISSED'})"
        print(
            f"{name:30} {result.first_event_s:>10.3f} s {result.cpu_s:>6.2f} s {result.peak_rss_mib:>7.1f} MiB{ratio}"
        )
    run, direct, api = (
        results.get(name) for name in ("pyaya run (prebuilt object)", "main.py run directly", "plain API script")
    )
    if isinstance(api, Sample) and api.phases:
        print("\nbreakdown, from launch (medians, ms):")
        if isinstance(run, Sample) and isinstance(direct, Sample):
            print(
                f"  pyaya run's CLI, before main.py starts   {1000 * (run.first_event_s - direct.first_event_s):7.1f}"
            )
        before = 0.0
        for phase, at in [*api.phases.items(), ("first event", api.first_event_s)]:
            print(f"  plain script: {phase:26} {1000 * (at - before):7.1f}   (at {1000 * at:.1f})")
            before = at


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
        obj = project / "target" / "bpfel-unknown-none" / "release" / "benchexec"
        script = workdir / "api_script.py"
        script.write_text(API_SCRIPT.format(env=LAUNCH_ENV))
        tools = [
            Tool("python -c pass (floor)", [sys.executable, "-c", f"print('{MARKER}')"]),
            Tool(
                "pyaya run (prebuilt object)",
                [sys.executable, "-m", "pyaya", "run", str(project), "--no-build", "--json"],
            ),
            Tool("main.py run directly", [sys.executable, str(project / "main.py"), "--object", str(obj), "--json"]),
            Tool("plain API script", [sys.executable, str(script), str(obj), "benchexec"]),
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
                measure(tool, marker)  # warm-up: .pyc files written, page cache filled
                samples = [measure(tool, marker) for _ in range(args.runs)]
            except RuntimeError as error:
                results[tool.name] = f"failed: {error}"
                continue
            phases = [s.phases for s in samples if s.phases is not None]
            results[tool.name] = Sample(
                statistics.median(s.first_event_s for s in samples),
                statistics.median(s.cpu_s for s in samples),
                statistics.median(s.peak_rss_mib for s in samples),
                {name: statistics.median(p[name] for p in phases) for name in phases[0]} if phases else None,
            )
    report(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
