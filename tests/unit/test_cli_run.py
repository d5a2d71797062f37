"""`pyaya run`: options passed to main.py, and --watch restarting it on changes (real processes, no kernel)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _fake_rust import fake_linker, fake_rustc, write_script
from pyaya.toolchain import bpf_target

MAIN = """\
import json, os, signal, sys, time
stopping = False
def stop(signum, frame):  # as pyaya.runtime.Session does: the first SIGINT or SIGTERM stops, repeats are ignored
    global stopping
    if not stopping:
        stopping = True
        raise KeyboardInterrupt
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
try:
    print(json.dumps({{"version": {version}, "argv": sys.argv[1:], "pid": os.getpid()}}), flush=True)
    time.sleep(60)
except KeyboardInterrupt:
    print(json.dumps({{"version": {version}, "stopped": "cleanly"}}), flush=True)
"""


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "proj-ebpf" / "src").mkdir(parents=True)
    (root / "proj-ebpf" / "src" / "main.rs").write_text("// kernel side\n")
    (root / "pyaya.toml").write_text('[project]\nname = "proj"\n')
    (root / "main.py").write_text(MAIN.format(version=1))
    return root


def _object(root: Path) -> Path:
    return root / "target" / bpf_target() / "release" / "proj"


def _touch_later(path: Path, text: str) -> None:
    path.write_text(text)
    stamp = time.time() + 2  # past any mtime granularity
    os.utime(path, (stamp, stamp))


class Run:
    """`python -m pyaya run ...` in its own session, so Ctrl-C can be sent to it and its main.py at once."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pyaya", "run", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env=env,
        )
        self.stderr: list[str] = []

    def line(self, timeout: float = 30) -> dict[str, object]:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        assert ready, f"no output in {timeout}s"
        line = self.process.stdout.readline()
        assert line, "pyaya run ended early"
        return dict(json.loads(line))

    def interrupt(self) -> tuple[str, str]:
        os.killpg(self.process.pid, signal.SIGINT)
        out, err = self.process.communicate(timeout=30)
        return out, err


def test_run_passes_bcc_options_to_main(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _object(root).parent.mkdir(parents=True)
    _object(root).write_bytes(b"\x7fELF")
    run = Run(str(root), "--no-build", "--json", "--pid", "42", "--interval", "2", "--count", "3")
    assert run.line()["argv"] == ["--object", str(_object(root)), "--json", "--pid", "42", "2", "3"]
    run.interrupt()
    assert run.process.returncode == 0


def test_run_passes_project_options_before_interval(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _object(root).parent.mkdir(parents=True)
    _object(root).write_bytes(b"\x7fELF")
    run = Run(str(root), "--no-build", "--args", "--top 5 --label 'a b'", "--interval", "2")
    assert run.line()["argv"] == ["--object", str(_object(root)), "--top", "5", "--label", "a b", "2"]
    run.interrupt()


def test_run_passes_everything_after_double_dash_to_main(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _object(root).parent.mkdir(parents=True)
    _object(root).write_bytes(b"\x7fELF")
    # After `--`, even what looks like pyaya run's own options (--json, -p) is main.py's.
    run = Run(str(root), "--no-build", "--interval", "2", "--", "--top", "5", "--json", "-p", "7")
    assert run.line()["argv"] == ["--object", str(_object(root)), "--top", "5", "--json", "-p", "7", "2"]
    run.interrupt()


def _declare_options(root: Path, options: str) -> None:
    (root / "pyaya.toml").write_text(f'[project]\nname = "proj"\ntemplate = "tracepoint"\n[run]\noptions = {options}\n')


@pytest.mark.parametrize(
    ("declared", "args", "lacking"),
    [
        ("[]", ["-p", "42"], "-p/--pid"),
        ('["interval"]', ["--pid", "42"], "-p/--pid"),
        ('["pid"]', ["--interval", "2"], "interval [count]"),
        ('["pid"]', ["--interval", "2", "--count", "3"], "interval [count]"),
    ],
)
def test_run_refuses_options_the_project_does_not_honour(
    tmp_path: Path, declared: str, args: list[str], lacking: str
) -> None:
    root = _project(tmp_path)
    _declare_options(root, declared)
    # No object and no toolchain: the refusal comes before any build.
    result = subprocess.run(
        [sys.executable, "-m", "pyaya", "run", str(root), *args], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: proj (template tracepoint) does not support {lacking}")
    assert "[run] options" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_run_refuses_an_unsupported_option_with_the_projects_reason(tmp_path: Path) -> None:
    root = _project(tmp_path)
    why = "XDP programs run in softirq context, not in a process: filter by interface instead"
    (root / "pyaya.toml").write_text(
        f'[project]\nname = "proj"\ntemplate = "xdp"\n[run]\noptions = []\nunsupported.pid = "{why}"\n'
    )
    (root / "main.py").write_text(HELPFUL_MAIN)
    refused = subprocess.run(
        [sys.executable, "-m", "pyaya", "run", str(root), "-p", "42"], capture_output=True, text=True, check=False
    )
    assert refused.returncode == 2
    assert refused.stderr == f"error: proj (template xdp) does not support -p/--pid: {why}\n"
    # main.py run by hand refuses it the same way (an argparse usage error), before anything is loaded.
    by_hand = subprocess.run(
        [sys.executable, str(root / "main.py"), "--object", "x", "-p", "42"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert by_hand.returncode == 2
    assert why in by_hand.stderr
    shown = subprocess.run(
        [sys.executable, "-m", "pyaya", "run", str(root), "--help"], capture_output=True, text=True, check=False
    )
    assert f"-p/--pid makes no sense here: {why} ([run] unsupported)." in shown.stdout


def test_run_passes_options_the_project_honours(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _declare_options(root, '["pid", "interval"]')
    _object(root).parent.mkdir(parents=True)
    _object(root).write_bytes(b"\x7fELF")
    run = Run(str(root), "--no-build", "-p", "42", "--interval", "2", "--count", "3")
    assert run.line()["argv"] == ["--object", str(_object(root)), "--pid", "42", "2", "3"]
    run.interrupt()


HELPFUL_MAIN = """\
import argparse
from pyaya.runtime import parse_options
parser = argparse.ArgumentParser(description="A project with options of its own.")
parser.add_argument("--top", type=int, help="show the TOP busiest")
parse_options(parser=parser)
"""


@pytest.mark.parametrize("where", ["cwd", "path"])
def test_run_help_shows_the_project_options(tmp_path: Path, where: str) -> None:
    root = _project(tmp_path)
    _declare_options(root, '["pid"]')
    (root / "main.py").write_text(HELPFUL_MAIN)
    argv = [sys.executable, "-m", "pyaya", "run", "--help"] + ([str(root)] if where == "path" else [])
    result = subprocess.run(argv, cwd=root if where == "cwd" else tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "--no-build" in result.stdout  # pyaya run's own help first
    assert "arguments after `--` go to main.py" in result.stdout
    assert "its main.py honours: -p/--pid ([run] options)." in result.stdout
    assert "show the TOP busiest" in result.stdout  # then main.py's


def test_run_help_outside_a_project_is_only_pyaya_run(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pyaya", "run", "-h"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "--no-build" in result.stdout
    assert "go to main.py" not in result.stdout


def test_main_py_refuses_options_its_project_does_not_honour(tmp_path: Path) -> None:
    """`python main.py -p PID` run by hand meets the same refusal (pyaya.runtime.parse_options)."""
    root = _project(tmp_path)
    _declare_options(root, '["interval"]')
    (root / "main.py").write_text(HELPFUL_MAIN)
    result = subprocess.run(
        [sys.executable, str(root / "main.py"), "--object", "obj", "-p", "42"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "proj (template tracepoint) does not support -p/--pid" in result.stderr
    accepted = subprocess.run(
        [sys.executable, str(root / "main.py"), "--object", "obj", "--top", "3", "2"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert accepted.returncode == 0, accepted.stderr


def test_unbalanced_args_are_a_usage_error(tmp_path: Path) -> None:
    root = _project(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "pyaya", "run", str(root), "--args", "'open"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "cannot split" in result.stderr


def test_count_needs_interval(tmp_path: Path) -> None:
    root = _project(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "pyaya", "run", str(root), "--count", "2"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "--count needs --interval" in result.stderr


def test_watch_restarts_on_change_and_stops_cleanly(tmp_path: Path) -> None:
    """A main.py that loads nothing through a Session never reports a load: after HANDOFF_TIMEOUT the old one is
    stopped anyway, as Ctrl-C stops it, and the new one goes on."""
    root = _project(tmp_path)
    _object(root).parent.mkdir(parents=True)
    _object(root).write_bytes(b"\x7fELF")
    run = Run(str(root), "--watch", "--no-build")
    assert run.line()["version"] == 1
    _touch_later(root / "main.py", MAIN.format(version=2))
    assert run.line()["version"] == 2  # started beside the old one
    assert run.line() == {"version": 1, "stopped": "cleanly"}  # stopped as Ctrl-C stops it: maps printed
    out, err = run.interrupt()
    assert json.loads(out.splitlines()[-1]) == {"version": 2, "stopped": "cleanly"}
    assert "main.py changed: rebuilding and restarting" in err
    assert "did not report its load within 10s" in err
    assert "stopped watching" in err
    assert "Traceback" not in err


#: A main.py that takes part in the handoff as pyaya.runtime.Session does, without a kernel: it reports "loaded"
#: (or "failed" while main.py says FAIL) and attaches, here prints, only after "go".
HANDOFF_MAIN = """\
import json, os, signal, sys, time
from pyaya import _handoff
from pyaya.runtime import watch_parent
stopping = False
def stop(signum, frame):
    global stopping
    if not stopping:
        stopping = True
        raise KeyboardInterrupt
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
watch_parent()
try:
    end = _handoff.claimed()
    if {fail}:
        end.failed("the verifier rejected program 'x'")
        sys.exit(1)
    if end is not None:
        end.loaded()
    print(json.dumps({{"version": {version}, "attached": True}}), flush=True)
    time.sleep(60)
except KeyboardInterrupt:
    print(json.dumps({{"version": {version}, "stopped": "cleanly"}}), flush=True)
"""


def test_watch_hands_over_once_the_new_one_has_loaded(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "main.py").write_text(HANDOFF_MAIN.format(version=1, fail=False))
    _object(root).parent.mkdir(parents=True)
    _object(root).write_bytes(b"\x7fELF")
    run = Run(str(root), "--watch", "--no-build")
    assert run.line() == {"version": 1, "attached": True}
    _touch_later(root / "main.py", HANDOFF_MAIN.format(version=2, fail=False))
    assert run.line() == {"version": 1, "stopped": "cleanly"}  # the new one waited for this before attaching
    assert run.line() == {"version": 2, "attached": True}
    out, err = run.interrupt()
    assert json.loads(out.splitlines()[-1]) == {"version": 2, "stopped": "cleanly"}
    assert "did not report" not in err
    assert "Traceback" not in err


def test_watch_keeps_the_old_one_when_the_new_one_fails_to_load(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "main.py").write_text(HANDOFF_MAIN.format(version=1, fail=False))
    _object(root).parent.mkdir(parents=True)
    _object(root).write_bytes(b"\x7fELF")
    run = Run(str(root), "--watch", "--no-build")
    assert run.line() == {"version": 1, "attached": True}
    assert run.process.stderr is not None
    _touch_later(root / "main.py", HANDOFF_MAIN.format(version=2, fail=True))
    deadline = time.monotonic() + 30
    while "failed to load" not in "".join(run.stderr):
        assert time.monotonic() < deadline, "".join(run.stderr)
        run.stderr.append(run.process.stderr.readline())
    assert "the verifier rejected program 'x'" in "".join(run.stderr)
    assert "the running one keeps tracing" in "".join(run.stderr)
    _touch_later(root / "main.py", HANDOFF_MAIN.format(version=3, fail=False))  # fixed: it takes over
    assert run.line() == {"version": 1, "stopped": "cleanly"}  # the first stop of version 1: it ran all along
    assert run.line() == {"version": 3, "attached": True}
    out, _ = run.interrupt()
    assert json.loads(out.splitlines()[-1]) == {"version": 3, "stopped": "cleanly"}


def test_sigterm_stops_main_too(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _object(root).parent.mkdir(parents=True)
    _object(root).write_bytes(b"\x7fELF")
    run = Run(str(root), "--no-build")
    run.line()
    run.process.terminate()  # pyaya run alone, not its process group
    out, _ = run.process.communicate(timeout=30)
    assert json.loads(out.splitlines()[-1]) == {"version": 1, "stopped": "cleanly"}
    assert run.process.returncode == 0


def _fake_toolchain(tmp_path: Path, root: Path) -> dict[str, str]:
    """rustc/cargo/bpf-linker stand-ins: cargo fails with a compiler error while src/main.rs says BROKEN, and takes a
    minute while it says SLOW."""
    bin_dir = tmp_path / "bin"
    rustc = fake_rustc(bin_dir, tmp_path / "sysroot", release="1.96.0", llvm="22.1.0", bpf_target=True)
    fake_linker(bin_dir, 22)
    obj = _object(root)
    error = {
        "reason": "compiler-message",
        "message": {"level": "error", "rendered": "error: expected `;`\n --> proj-ebpf/src/main.rs:1:9\n"},
    }
    artifact = {"reason": "compiler-artifact", "target": {"kind": ["bin"]}, "executable": str(obj)}
    cargo = write_script(
        bin_dir / "cargo",
        f"""if /bin/grep -q BROKEN {root}/proj-ebpf/src/main.rs; then
  printf '%s\\n' '{json.dumps(error)}'; echo '{{"reason":"build-finished","success":false}}'; exit 101
fi
if /bin/grep -q SLOW {root}/proj-ebpf/src/main.rs; then exec /bin/sleep 60; fi
/bin/mkdir -p {obj.parent} && echo built > {obj}
echo '{json.dumps(artifact)}'; echo '{{"reason":"build-finished","success":true}}'
""",
    )
    return {**os.environ, "PYAYA_RUSTC": str(rustc), "PYAYA_CARGO": str(cargo), "PATH": f"{bin_dir}:/usr/bin:/bin"}


def test_watch_keeps_watching_through_a_failed_build(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "proj-ebpf" / "src" / "main.rs").write_text("BROKEN\n")
    run = Run(str(root), "--watch", env=_fake_toolchain(tmp_path, root))
    assert run.process.stderr is not None
    deadline = time.monotonic() + 30
    while "watching for changes" not in "".join(run.stderr):
        assert time.monotonic() < deadline, "".join(run.stderr)
        run.stderr.append(run.process.stderr.readline())
    assert "main.rs:1:9" in "".join(run.stderr)
    _touch_later(root / "proj-ebpf" / "src" / "main.rs", "// fixed\n")
    assert run.line()["version"] == 1  # rebuilt, then started
    assert _object(root).read_text() == "built\n"
    _, err = run.interrupt()
    assert "stopped watching" in err


@pytest.mark.parametrize("flag", ["--watch", "--no-build"])
def test_run_outside_a_project_fails_with_one_line(tmp_path: Path, flag: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pyaya", "run", str(tmp_path), flag], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: no pyaya.toml")
    assert len(result.stderr.strip().splitlines()) == 1


def test_sigterm_during_popen_still_stops_main(monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGTERM handled inside Popen(), after the fork but before the pid is known, is forwarded once it is."""
    from pyaya._launch import Supervised  # noqa: PLC0415 - the class under test, with its per-process state

    real_popen = subprocess.Popen

    def popen_then_sigterm(argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        child = real_popen(argv, **kwargs)  # type: ignore[call-overload]
        os.kill(os.getpid(), signal.SIGTERM)  # handled before this returns, as if it came during Popen()
        return child  # type: ignore[no-any-return]

    for name, value in (("children", []), ("stop_requested", False), ("_signalled", [])):
        monkeypatch.setattr(Supervised, name, value)
    previous = signal.signal(signal.SIGTERM, Supervised.on_signal)
    try:
        monkeypatch.setattr(subprocess, "Popen", popen_then_sigterm)
        child = Supervised.start(["sleep", "30"], Path.cwd())
        monkeypatch.undo()
        assert child.wait(timeout=10) == -signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_with_nothing_running_stops_like_ctrl_c(monkeypatch: pytest.MonkeyPatch, signum: int) -> None:
    from pyaya._launch import Supervised  # noqa: PLC0415

    for name, value in (("children", []), ("stop_requested", False), ("starting", False)):
        monkeypatch.setattr(Supervised, name, value)
    with pytest.raises(KeyboardInterrupt):
        Supervised.on_signal(signum, None)


# -- one process without --watch; stop signals sent to `pyaya run` alone -----------------------------------------


def _built_project(tmp_path: Path, main: str | None = None) -> Path:
    root = _project(tmp_path)
    if main is not None:
        (root / "main.py").write_text(main)
    _object(root).parent.mkdir(parents=True)
    _object(root).write_bytes(b"\x7fELF")
    return root


def test_plain_run_becomes_main_py(tmp_path: Path) -> None:
    """Without --watch, main.py runs in `pyaya run`'s own process (its interpreter): no second process is left to be
    killed alone."""
    run = Run(str(_built_project(tmp_path)), "--no-build")
    assert run.line()["pid"] == run.process.pid
    run.interrupt()
    assert run.process.returncode == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stop_signal_to_pyaya_run_alone_stops_main_cleanly(tmp_path: Path, signum: int) -> None:
    run = Run(str(_built_project(tmp_path)), "--no-build")
    run.line()
    os.kill(run.process.pid, signum)  # the process only, not its group
    out, err = run.process.communicate(timeout=30)
    assert json.loads(out.splitlines()[-1]) == {"version": 1, "stopped": "cleanly"}
    assert run.process.returncode == 0, err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_watch_forwards_stop_signals_sent_to_the_parent_alone(tmp_path: Path, signum: int) -> None:
    run = Run(str(_built_project(tmp_path)), "--watch", "--no-build")
    child = run.line()["pid"]
    assert child != run.process.pid
    os.kill(run.process.pid, signum)
    out, err = run.process.communicate(timeout=30)
    assert json.loads(out.splitlines()[-1]) == {"version": 1, "stopped": "cleanly"}
    assert "stopped watching" in err
    assert run.process.returncode == 0, err


SUPERVISED_MAIN = """\
import json, os, signal, sys, time
from pyaya import _native
from pyaya.runtime import watch_parent
watch_parent()  # what parse_options and Session do first
def stop(signum, frame):
    raise KeyboardInterrupt
signal.signal(signal.SIGTERM, stop)
try:
    print(json.dumps({"pid": os.getpid(), "parent_death_signal": _native.parent_death_signal(),
                      "env": os.environ.get("PYAYA_PARENT_PID")}), flush=True)
    time.sleep(60)
except KeyboardInterrupt:
    print(json.dumps({"stopped": "cleanly", "signal": "SIGTERM"}), flush=True)
"""


def _gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def test_watch_child_stops_when_its_parent_is_killed(tmp_path: Path) -> None:
    """The child of --watch asked the kernel for SIGTERM on its parent's death: SIGKILL of `pyaya run` alone stops
    main.py the way Ctrl-C would."""
    run = Run(str(_built_project(tmp_path, SUPERVISED_MAIN)), "--watch", "--no-build")
    started = run.line()
    assert started["parent_death_signal"] == signal.SIGTERM
    assert started["env"] is None  # removed, so that main.py's own children do not check a parent not theirs
    os.kill(run.process.pid, signal.SIGKILL)
    assert run.line() == {"stopped": "cleanly", "signal": "SIGTERM"}
    assert _gone(int(started["pid"]))  # type: ignore[call-overload]


def test_stop_signal_during_a_rebuild_stops_the_running_one_and_the_build(tmp_path: Path) -> None:
    """The old main.py traces while cargo rebuilds: a SIGTERM to `pyaya run` then stops both, without waiting for
    the build."""
    root = _project(tmp_path)
    (root / "main.py").write_text(HANDOFF_MAIN.format(version=1, fail=False))
    run = Run(str(root), "--watch", env=_fake_toolchain(tmp_path, root))
    assert run.line() == {"version": 1, "attached": True}
    assert run.process.stderr is not None
    _touch_later(root / "proj-ebpf" / "src" / "main.rs", "// SLOW\n")
    deadline = time.monotonic() + 30
    while "rebuilding" not in "".join(run.stderr):
        assert time.monotonic() < deadline, "".join(run.stderr)
        run.stderr.append(run.process.stderr.readline())
    assert "keeps tracing meanwhile" in "".join(run.stderr)
    os.kill(run.process.pid, signal.SIGTERM)  # the parent alone, while cargo sleeps
    out, err = run.process.communicate(timeout=30)  # well before the build's minute
    assert json.loads(out.splitlines()[-1]) == {"version": 1, "stopped": "cleanly"}
    assert "stopped watching" in err
    assert "Traceback" not in err
    assert run.process.returncode == 0, err
