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
from pyaya.maps import HashMap
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


# -- --watch hands over: the running main.py traces until the new one has loaded ---------------------------------


class _Watching:
    """`pyaya run PROJECT --watch --json` in a session of its own, its stdout and stderr read all along (a full
    pipe would stall it) into lines the test waits on."""

    def __init__(self, project: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pyaya", "run", str(project), "--watch", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: object, lines: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.append(line)

    def records(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in list(self.out) if line.startswith("{")]

    def until(self, what: str, done: object, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not done():  # type: ignore[operator]
            assert self.process.poll() is None, f"pyaya run --watch exited while waiting for {what}:\n{self.errors}"
            assert time.monotonic() < deadline, f"no {what} in {timeout:g}s:\n{self.errors}"
            time.sleep(0.1)

    @property
    def errors(self) -> str:
        return "".join(self.err)

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)  # as a terminal's Ctrl-C
        self.process.wait(timeout=120)
        for reader in self._readers:
            reader.join(timeout=30)


def _events_of(records: list[dict[str, object]], probe: Path) -> int:
    return sum(1 for r in records if r["kind"] == "event" and r["data"]["filename"] == str(probe))  # type: ignore[index]


def _split_at_handoff(records: list[dict[str, object]]) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """The old run's records (up to the maps it printed when it stopped) and the new run's."""
    at = next(i for i, r in enumerate(records) if r["kind"] == "map" and r["map"] == "EXEC_COUNTS")
    return records[: at + 1], records[at + 1 :]


class _ExecLoop:
    """Execs ``probe`` over and over until stopped; counts them."""

    def __init__(self, probe: Path, scratch: Path) -> None:
        self.stop_file = scratch / f"stop-{probe.name}"
        script = 'i=0; while [ ! -e "$1" ]; do "$0"; i=$((i + 1)); done; echo "$i"'
        self.process = subprocess.Popen(
            ["/bin/sh", "-c", script, str(probe), str(self.stop_file)], stdout=subprocess.PIPE, text=True
        )

    def stop(self) -> int:
        self.stop_file.touch()
        out, _ = self.process.communicate(timeout=60)
        return int(out)


@pytest.fixture
def watched(execwatch: Path, tmp_path: Path) -> Path:
    """A copy of the execwatch project (its build included) whose sources a test may change."""
    copy = tmp_path / execwatch.name
    shutil.copytree(execwatch, copy, symlinks=True)
    return copy


def _probe(tmp_path: Path, name: str) -> Path:
    probe = tmp_path / f"pyaya-{name}-{os.getpid()}"
    shutil.copy("/bin/true", probe)
    return probe


def _kernel_source(project: Path) -> Path:
    return project / f"{project.name}-ebpf" / "src" / "main.rs"


def test_watch_keeps_tracing_through_a_rebuild_until_the_new_one_has_loaded(watched: Path, tmp_path: Path) -> None:
    before, during = _probe(tmp_path, "before"), _probe(tmp_path, "during")
    run = _Watching(watched)
    try:
        run.until("first run", lambda: "is running" in run.errors)
        loop = _ExecLoop(before, tmp_path)
        run.until("event before the change", lambda: _events_of(run.records(), before) > 0)
        loop.stop()
        loop = _ExecLoop(during, tmp_path)  # execs all through the rebuild and the handoff
        source = _kernel_source(watched)
        source.write_text(source.read_text() + "\n// changed by the test: a rebuild\n")
        run.until("rebuild", lambda: "changed: rebuilding" in run.errors)

        def new_one_traces() -> bool:
            records = run.records()
            maps = [r for r in records if r["kind"] == "map"]
            return bool(maps) and _events_of(_split_at_handoff(records)[1], during) > 0

        run.until("events from the new run", new_one_traces)
        execs = loop.stop()
    finally:
        run.stop()
    assert run.process.returncode == 0, run.errors
    assert "Traceback" not in run.errors
    assert "did not report" not in run.errors  # the template's main.py took part in the handoff
    assert run.errors.count("is running") == 2
    old, new = _split_at_handoff(run.records())
    # The old run kept tracing while cargo rebuilt the object and the new run loaded it...
    assert _events_of(old, during) > 0
    # ...and the new one traced after it: the old one's maps come before every event of the new one.
    assert _events_of(new, during) > 0
    assert [r["map"] for r in new if r["kind"] == "map"] == ["EXEC_COUNTS"]  # printed once more, at the stop
    seen = _events_of(old, during) + _events_of(new, during)
    lost = sum(int(r["count"]) for r in run.records() if r["kind"] == "lost")  # type: ignore[call-overload]
    assert seen + lost <= execs
    # How many execs fell between the old run's detach and the new one's attach: shown, not asserted (timing).
    print(f"handoff: {execs} execs, {seen} seen, {lost} lost, {execs - seen - lost} in the gap")


def test_watch_keeps_the_old_run_through_a_broken_build(watched: Path, tmp_path: Path) -> None:
    after = _probe(tmp_path, "after-failure")
    source = _kernel_source(watched)
    good = source.read_text()
    run = _Watching(watched)
    try:
        run.until("first run", lambda: "is running" in run.errors)
        source.write_text(good + "\nthis is not rust\n")
        run.until("the build's failure", lambda: "the build failed" in run.errors)
        assert "the running main.py keeps tracing" in run.errors
        assert "error" in run.errors.split("changed: rebuilding")[1]  # the compiler's message, shown
        subprocess.run([str(after)], check=True)
        run.until("event after the failure", lambda: _events_of(run.records(), after) > 0)
        assert not [r for r in run.records() if r["kind"] == "map"]  # the old run never stopped
        source.write_text(good + "\n// fixed\n")
        run.until("the new run", lambda: run.errors.count("is running") == 2)
    finally:
        run.stop()
    assert run.process.returncode == 0, run.errors
    assert "Traceback" not in run.errors
    old, _ = _split_at_handoff(run.records())
    assert _events_of(old, after) == 1  # traced by the old run, the one running through the broken build


REJECTED_MAIN = """\
from pathlib import Path
from pyaya.runtime import RunOptions, Session, parse_options
options = parse_options()
with Session("rejected", options=RunOptions(object_path=Path({object!r}))) as session:
    session.load()
    session.wait()
"""


def test_watch_keeps_the_old_run_when_the_verifier_rejects_the_new_one(
    watched: Path, tmp_path: Path, fixtures_dir: Path
) -> None:
    after = _probe(tmp_path, "after-rejection")
    run = _Watching(watched)
    try:
        run.until("first run", lambda: "is running" in run.errors)
        (watched / "main.py").write_text(REJECTED_MAIN.format(object=str(fixtures_dir / "rejected")))
        run.until("the new run's failure", lambda: "failed to load" in run.errors)
        assert "the running one keeps tracing" in run.errors
        assert "verifier" in run.errors.lower()  # the new run's own error, shown
        subprocess.run([str(after)], check=True)
        run.until("event after the rejection", lambda: _events_of(run.records(), after) > 0)
        assert not [r for r in run.records() if r["kind"] == "map"]  # the old run never stopped
    finally:
        run.stop()
    assert run.process.returncode == 0, run.errors
    assert "Traceback" not in run.errors
    assert "rejected" not in {program for _, program, _ in loaded_programs()}
    assert watched.name not in {program for _, program, _ in loaded_programs()}


def test_programs_loaded_ahead_take_main_py_s_own_load_and_attach(execwatch: Path) -> None:
    """What a handoff's Session.load does before saying "loaded": the argless programs are verified and loaded; the
    load() main.py may call itself then has nothing left to do, and attach works as usual."""
    from pyaya.loader import Ebpf  # noqa: PLC0415
    from pyaya.runtime import _load_ahead  # noqa: PLC0415

    object_path = execwatch / "target" / "bpfel-unknown-none" / "release" / execwatch.name
    with Ebpf.load_file(object_path) as bpf:
        _load_ahead(bpf)
        program = bpf.programs[execwatch.name]
        assert program.loaded
        assert program.loaded_ahead
        program.load()  # main.py's own load: no "already loaded" error
        program.attach("syscalls", "sys_enter_execve")
        subprocess.run(["/bin/true"], check=True)
        counts = bpf.maps["EXEC_COUNTS"]
        assert isinstance(counts, HashMap)
        assert sum(int(execs) for _, execs in counts.items()) >= 1
