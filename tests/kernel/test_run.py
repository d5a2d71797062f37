"""`pyaya run` end to end: the default template's project sees execs this test makes, and cleans up."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pyaya.loader import loaded_programs
from pyaya.testing import PyayaProject


def _start_run(project: Path, *args: str) -> subprocess.Popen[str]:
    runner = subprocess.Popen(
        [sys.executable, "-m", "pyaya", "run", str(project), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert runner.stderr is not None
    # The runtime says it is running once the program is attached; before that, execs would be missed.
    deadline = time.monotonic() + 120
    for line in runner.stderr:
        if "is running" in line:
            return runner
        assert time.monotonic() < deadline, "pyaya run did not start in time"
    runner.wait()
    raise AssertionError(f"pyaya run exited with {runner.returncode} before running")


@pytest.mark.smoke
def test_run_json_reports_each_exec_with_pid_and_name(execwatch: Path, tmp_path: Path) -> None:
    probe = tmp_path / f"pyaya-probe-{os.getpid()}"
    shutil.copy("/bin/true", probe)
    runner = _start_run(execwatch, "--json", "--duration", "4", "--no-build")
    pids = []
    for _ in range(3):
        child = subprocess.Popen([str(probe)])
        pids.append(child.pid)
        child.wait()
    output, errors = runner.communicate(timeout=60)
    assert runner.returncode == 0, errors

    records = [json.loads(line) for line in output.splitlines()]
    assert {record["kind"] for record in records} <= {"event", "log", "map", "lost"}
    ours = [r["data"] for r in records if r["kind"] == "event" and r["data"]["filename"] == str(probe)]
    assert sorted(event["pid"] for event in ours) == sorted(pids)
    for event in ours:
        assert event["ppid"] == os.getpid()  # read through task_struct offsets taken from the kernel's BTF
        assert event["uid"] == 0
        assert event["comm"]  # the name before the exec: this interpreter's
    assert all(r["map"] == "EVENTS" for r in records if r["kind"] == "event")

    counts = [r for r in records if r["kind"] == "map" and r["map"] == "EXEC_COUNTS"]
    assert len(counts) == 1
    root_execs = {entry["uid"]: entry["execs"] for entry in counts[0]["entries"]}[0]
    assert root_execs >= 3


def test_pid_filter_in_the_kernel_through_pyaya_project(execwatch: Path, tmp_path: Path) -> None:
    """`pyaya run -p PID` on the tracepoint template: the TARGET_TGID global drops other processes' execs before
    they are counted; and pyaya.testing's PyayaProject drives the run (start, stop as Ctrl-C does, records)."""
    probe = tmp_path / f"pyaya-probe-{os.getpid()}"
    shutil.copy("/bin/true", probe)
    exec_when_told = "import os, sys\nsys.stdin.readline()\nos.execv(sys.argv[1], [sys.argv[1]])\n"
    with (
        subprocess.Popen(
            [sys.executable, "-c", exec_when_told, str(probe)], stdin=subprocess.PIPE, text=True
        ) as watched,
        subprocess.Popen([sys.executable, "-c", exec_when_told, str(probe)], stdin=subprocess.PIPE, text=True) as other,
        PyayaProject(execwatch).run("-p", str(watched.pid), "--no-build", duration=3) as run,
    ):
        assert run.process is not None
        assert execwatch.name in {program for _, program, _ in loaded_programs()}
        watched.communicate("go\n", timeout=30)
        other.communicate("go\n", timeout=30)
        result = run.result()
    assert result.returncode == 0
    assert [event["pid"] for event in result.events_where(filename=str(probe))] == [watched.pid]
    assert result.events_where(pid=other.pid) == []
    assert result.entries("EXEC_COUNTS") == [{"uid": 0, "execs": 1}]
    assert {record["kind"] for record in result.records} <= {"event", "log", "map", "lost"}
    assert "is running" in result.stderr


def test_pyaya_project_stops_a_run_and_reports_one_that_never_started(execwatch: Path) -> None:
    project = PyayaProject(execwatch)
    with project.run("--no-build") as run:
        subprocess.run(["/bin/true"], check=True)
        result = run.stop()
    assert result.returncode == 0
    assert "EXEC_COUNTS" in result.maps  # printed at exit, as on Ctrl-C
    assert execwatch.name not in {program for _, program, _ in loaded_programs()}
    with project.run("--no-build", json=False) as run:
        table = run.stop()
    assert table.records == []
    assert "EXEC_COUNTS:" in table.stdout
    # main.py refuses a bad option before anything is loaded: the test fails with its stderr.
    with (
        pytest.raises(AssertionError, match=r"exited with 2 before running:\n(.|\n)*must be a process id"),
        project.run("--no-build", "--", "-p", "0"),
    ):
        pytest.fail("main.py ran with -p 0")
    # A run still going when its block ends (a failing test) is killed, not left behind.
    with pytest.raises(RuntimeError, match="the test failed"), project.run("--no-build") as killed:
        raise RuntimeError("the test failed")
    assert killed.process is not None
    assert killed.process.returncode == -signal.SIGKILL


def test_run_leaves_no_program_loaded(execwatch: Path) -> None:
    name = execwatch.name
    runner = _start_run(execwatch, "--duration", "1", "--no-build")
    assert name in {program for _, program, _ in loaded_programs()}
    runner.communicate(timeout=60)
    assert runner.returncode == 0
    assert name not in {program for _, program, _ in loaded_programs()}


def test_run_table_output(execwatch: Path) -> None:
    runner = _start_run(execwatch, "--duration", "2", "--no-build", "--verbose")
    subprocess.run(["/bin/true"], check=True)
    output, errors = runner.communicate(timeout=60)
    assert runner.returncode == 0
    assert "[debug] " in errors  # the kernel side's aya-log debug! record, shown because of --verbose
    lines = output.splitlines()
    assert lines[0].split() == ["PID", "PPID", "UID", "COMM", "FILENAME"]
    assert any(line.rstrip().endswith("/bin/true") for line in lines[1:])
    assert "EXEC_COUNTS:" in output


def test_ctrl_c_detaches_and_prints_maps(execwatch: Path) -> None:
    runner = _start_run(execwatch, "--no-build")
    subprocess.run(["/bin/true"], check=True)
    time.sleep(0.5)
    # As the terminal would: SIGINT to the runner and its child (the same process group here would be the test's,
    # so signal both explicitly).
    children = subprocess.run(
        ["pgrep", "-P", str(runner.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    for pid in [runner.pid, *map(int, children)]:
        os.kill(pid, 2)
    output, _ = runner.communicate(timeout=60)
    assert runner.returncode == 0
    assert "EXEC_COUNTS:" in output
    assert execwatch.name not in {program for _, program, _ in loaded_programs()}


def _start_watch(project: Path) -> subprocess.Popen[str]:
    """`pyaya run --watch` in a process group of its own (as a terminal would make one)."""
    runner = subprocess.Popen(
        [sys.executable, "-m", "pyaya", "run", str(project), "--no-build", "--watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert runner.stderr is not None
    deadline = time.monotonic() + 120
    for line in runner.stderr:
        if "is running" in line:
            return runner
        assert time.monotonic() < deadline, "pyaya run --watch did not start in time"
    runner.wait()
    raise AssertionError(f"pyaya run --watch exited with {runner.returncode} before running")


def test_sigterm_to_pyaya_run_detaches_and_prints_maps(execwatch: Path) -> None:
    runner = _start_run(execwatch, "--no-build")
    subprocess.run(["/bin/true"], check=True)
    runner.terminate()  # the one process: pyaya run became main.py
    output, _ = runner.communicate(timeout=60)
    assert runner.returncode == 0
    assert "EXEC_COUNTS:" in output
    assert execwatch.name not in {program for _, program, _ in loaded_programs()}


@pytest.mark.parametrize("how", ["SIGINT to the parent", "SIGTERM to the parent", "Ctrl-C to both"])
def test_watch_stops_main_cleanly_whoever_gets_the_signal(execwatch: Path, how: str) -> None:
    runner = _start_watch(execwatch)
    subprocess.run(["/bin/true"], check=True)
    if how == "Ctrl-C to both":
        os.killpg(runner.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the parent and main.py at once
    else:
        runner.send_signal(signal.SIGINT if how.startswith("SIGINT") else signal.SIGTERM)
    output, errors = runner.communicate(timeout=60)
    assert runner.returncode == 0, errors
    assert output.count("EXEC_COUNTS:") == 1  # the maps, printed once: repeated stop signals were ignored
    assert "stopped watching" in errors
    assert "Traceback" not in errors
    assert execwatch.name not in {program for _, program, _ in loaded_programs()}


EXEC_LOOPS = 4
EXECS_PER_LOOP = 1000


def test_run_under_exec_load_loses_at_most_one_percent_and_reports_it_exactly(execwatch: Path, tmp_path: Path) -> None:
    probe = tmp_path / f"pyaya-load-{os.getpid()}"
    shutil.copy("/bin/true", probe)
    runner = _start_run(execwatch, "--json", "--no-build")
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.append(runner.stdout.read() if runner.stdout else ""))
    reader.start()  # read all along: a full pipe would stall the run and look like a slow reader
    script = f'i=0; while [ "$i" -lt {EXECS_PER_LOOP} ]; do "$0"; i=$((i + 1)); done'
    loops = [subprocess.Popen(["/bin/sh", "-c", script, str(probe)]) for _ in range(EXEC_LOOPS)]
    for loop in loops:
        assert loop.wait(timeout=600) == 0
    runner.send_signal(signal.SIGTERM)  # as `kill` would: the run ends, detaches and reports what is left
    runner.wait(timeout=120)
    reader.join()
    errors = runner.stderr.read() if runner.stderr else ""
    assert runner.returncode == 0, errors

    records = [json.loads(line) for line in output[0].splitlines()]
    events = [r["data"] for r in records if r["kind"] == "event"]
    lost = sum(r["count"] for r in records if r["kind"] == "lost" and r["map"] == "EVENTS")
    counts = [r for r in records if r["kind"] == "map" and r["map"] == "EXEC_COUNTS"]
    assert len(counts) == 1
    # EXEC_COUNTS counts every exec before its record is reserved, whoever made it: each one was shown or
    # reported lost, none vanished.
    produced = sum(entry["execs"] for entry in counts[0]["entries"])
    assert produced == len(events) + lost
    ours = sum(1 for event in events if event["filename"] == str(probe))
    assert produced >= EXEC_LOOPS * EXECS_PER_LOOP
    assert ours <= EXEC_LOOPS * EXECS_PER_LOOP
    assert lost <= produced / 100
    assert ours + lost >= EXEC_LOOPS * EXECS_PER_LOOP
