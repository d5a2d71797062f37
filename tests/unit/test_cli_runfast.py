"""`pyaya run`'s parser without Typer: the same options as Click reads them, or a fallback to Click; and the run it
starts: main.py in the CLI's own interpreter, as `python main.py --object OBJ ...` would run it (real processes)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from pyaya.cli import app
from pyaya.cli._runfast import parse

TAKEN = [
    [],
    ["proj"],
    ["--no-build", "--json"],
    ["proj", "--duration", "1.5", "-v"],
    ["--duration=0", "proj", "--debug", "--rebuild"],
    ["-p", "42", "--interval", "2", "--count", "3"],
    ["-p42", "-vp", "7"],
    ["--pid=9", "--metrics", "127.0.0.1:9000", "--args", "--top 5"],
    ["--args", "-x", "--json", "--json"],
    ["--duration", "1", "--duration", "2"],
    ["--interval", "-1"],
    ["--", "--json", "-p", "7"],
    ["proj", "--no-build", "--", "proj2", "--", "x"],
    ["--duration", "inf"],
]

REFUSED = [
    ["--help"],
    ["-h"],
    ["proj", "-vh"],
    ["--watch"],
    ["-w"],
    ["-vw"],
    ["--unknown"],
    ["-x"],
    ["a", "b"],
    ["--json=1"],
    ["--duration"],
    ["--duration", "-1"],
    ["--duration", "soon"],
    ["-p", "0"],
    ["-p", "1.5"],
    ["--count", "0"],
    ["-p"],
    ["--version"],
    [""],
]


def _click(arguments: list[str]) -> dict[str, object]:
    command = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    with command.make_context("run", list(arguments)) as context:
        params = dict(context.params)
        params["project_args"] = context.meta.get("project_args", [])
    params.pop("watch")
    if params["path"] is not None:
        params["path"] = str(params["path"])  # the fast path keeps it as text
    return params


@pytest.mark.parametrize("arguments", TAKEN, ids=" ".join)
def test_fast_parse_matches_click(arguments: list[str]) -> None:
    parsed = parse(arguments)
    assert parsed is not None
    assert parsed.as_dict() == _click(arguments)


@pytest.mark.parametrize("arguments", REFUSED, ids=" ".join)
def test_fast_parse_leaves_help_watch_and_errors_to_click(arguments: list[str]) -> None:
    assert parse(arguments) is None


#: A main.py that reports what it sees of its process, as JSON on stdout.
REPORT = """\
import builtins, json, os, signal, sys
def handler(signum):
    found = signal.getsignal(signum)
    names = {signal.SIG_DFL: "SIG_DFL", signal.SIG_IGN: "SIG_IGN", signal.default_int_handler: "default_int_handler"}
    return names.get(found, repr(found))
main = sys.modules["__main__"]
print(json.dumps({
    "argv": sys.argv,
    "orig_argv_tail": sys.orig_argv[1:],
    "name": __name__,
    "file": __file__,
    "main_is_this": main.__dict__ is globals(),
    "builtins": __builtins__ is builtins,
    "loader": type(__loader__).__name__,
    "spec": __spec__,
    "path0": sys.path[0],
    "cwd": os.getcwd(),
    "pid": os.getpid(),
    "sigint": handler(signal.SIGINT),
    "sigterm": handler(signal.SIGTERM),
    "blocked": sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])),
    "future_annotations": bool(compile("x: int", "<probe>", "exec").co_flags & 0x1000000),
}))
"""


def _script(tmp_path: Path, main: str) -> tuple[Path, Path]:
    """A project with a fake object (nothing is loaded: main.py is whatever the test needs); its root and object."""
    root = tmp_path / "proj"
    obj = root / "target" / "bpfel-unknown-none" / "release" / "proj"
    obj.parent.mkdir(parents=True)
    obj.write_bytes(b"")
    if sys.byteorder != "little":
        obj = root / "target" / "bpfeb-unknown-none" / "release" / "proj"
        obj.parent.mkdir(parents=True)
        obj.write_bytes(b"")
    (root / "pyaya.toml").write_text('[project]\nname = "proj"\n')
    (root / "main.py").write_text(main)
    return root.resolve(), obj.resolve()


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell starts a background job


def _both(
    root: Path, obj: Path, *options: str, ignore_sigint: bool = False
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """``pyaya run ROOT --no-build OPTIONS`` from elsewhere, and ``python main.py --object OBJ OPTIONS`` in ROOT."""
    preexec = _ignore_sigint if ignore_sigint else None
    run = subprocess.run(
        [sys.executable, "-m", "pyaya", "run", str(root), "--no-build", *options],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=root.parent,
        preexec_fn=preexec,
    )
    direct = subprocess.run(
        [sys.executable, str(root / "main.py"), "--object", str(obj), *options],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=root,
        preexec_fn=preexec,
    )
    return run, direct


CONSOLE_SCRIPT = Path(sys.executable).parent / "pyaya"


@pytest.mark.parametrize("how", ["python -m pyaya", "console script"])
def test_main_py_runs_in_the_clis_interpreter_as_python_main_py_would(tmp_path: Path, how: str) -> None:
    root, obj = _script(tmp_path, REPORT)
    if how == "console script":
        if not CONSOLE_SCRIPT.is_file():
            pytest.skip(f"no console script at {CONSOLE_SCRIPT}")
        command = [str(CONSOLE_SCRIPT), "run", str(root), "--no-build", "--json"]
    else:
        command = [sys.executable, "-m", "pyaya", "run", str(root), "--no-build", "--json"]
    shown = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    seen = json.loads(shown.stdout)
    direct = subprocess.run(
        [sys.executable, str(root / "main.py"), "--object", str(obj), "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=root,
    )
    expected = json.loads(direct.stdout)
    assert seen.pop("pid") != expected.pop("pid")
    assert seen == expected
    assert seen["argv"] == [str(root / "main.py"), "--object", str(obj), "--json"]
    assert seen["name"] == "__main__"
    assert seen["main_is_this"]
    assert seen["path0"] == str(root)
    assert seen["cwd"] == str(root)
    assert (seen["sigint"], seen["sigterm"], seen["blocked"]) == ("default_int_handler", "SIG_DFL", [])
    assert not seen["future_annotations"]  # main.py does not inherit the CLI's __future__ imports


def test_main_py_keeps_sigint_ignored_as_an_exec_would(tmp_path: Path) -> None:
    root, obj = _script(tmp_path, REPORT)
    run, direct = _both(root, obj, ignore_sigint=True)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["sigint"] == json.loads(direct.stdout)["sigint"] == "SIG_IGN"


def test_run_imports_neither_typer_nor_the_second_interpreter(tmp_path: Path) -> None:
    main = (
        "import os, sys\nprint('typer' in sys.modules, 'click' in sys.modules, 'pyaya.cli._runfast' in sys.modules)\n"
    )
    root, _ = _script(tmp_path, main)
    shown = subprocess.run(
        [sys.executable, "-m", "pyaya", "run", str(root), "--no-build"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == ["False", "False", "True"]  # the CLI's own interpreter, without Typer


#: main.py bodies whose end the CLI must pass on as `python main.py` ends: output, traceback, exit status.
ENDINGS = {
    "normal end": "print('done')\n",
    "uncaught exception": (
        "def inner():\n    raise ValueError('bad value')\n"
        "def outer():\n    try:\n        inner()\n    except ValueError as error:\n"
        "        raise RuntimeError('wrapped') from error\n"
        "print('before', flush=True)\nouter()\n"
    ),
    "exception while handling another": "try:\n    {}['x']\nexcept KeyError:\n    1 / 0\n",
    "sys.exit(3)": "import sys\nsys.exit(3)\n",
    "sys.exit(message)": "import sys\nsys.exit('main.py gives up')\n",
    "KeyboardInterrupt": "def stop():\n    raise KeyboardInterrupt\nstop()\n",
    "SIGTERM": "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\nimport time\ntime.sleep(5)\n",
    "SIGINT": "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(5)\n",
    "syntax error": "print('never')\ndef broken(:\n",
    "own excepthook": "import sys\nsys.excepthook = lambda *a: print('hooked', a[0].__name__)\nraise OSError(5, 'x')\n",
    "pyaya error": "from pyaya.errors import PyayaError\nraise PyayaError('from main.py')\n",
    "atexit": "import atexit\natexit.register(print, 'at exit')\nraise SystemExit(4)\n",
}


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_main_py_ends_as_python_main_py_ends(tmp_path: Path, ending: str) -> None:
    root, obj = _script(tmp_path, ENDINGS[ending])
    run, direct = _both(root, obj)
    assert (run.returncode, run.stdout, run.stderr) == (direct.returncode, direct.stdout, direct.stderr)
    assert "pyaya/cli" not in run.stderr  # no frame of the CLI's
    assert "_launch" not in run.stderr


def test_uncaught_exception_traceback_starts_at_main_py(tmp_path: Path) -> None:
    root, _ = _script(tmp_path, ENDINGS["uncaught exception"])
    run = subprocess.run(
        [sys.executable, "-m", "pyaya", "run", str(root), "--no-build"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert run.returncode == 1
    frames = [line.strip() for line in run.stderr.splitlines() if line.strip().startswith("File ")]
    assert frames, run.stderr
    assert all(frame.startswith(f'File "{root / "main.py"}"') for frame in frames), run.stderr
    assert run.stderr.rstrip().endswith("RuntimeError: wrapped")


def test_keyboard_interrupt_ends_the_run_as_sigint_would(tmp_path: Path) -> None:
    root, _ = _script(tmp_path, ENDINGS["KeyboardInterrupt"])
    run, _ = _both(root, root)
    assert run.returncode == -signal.SIGINT
    assert run.stderr.rstrip().endswith("KeyboardInterrupt")


_PATCHED_RUN = """\
import os, signal, sys
import pyaya.project, pyaya._launch
def patch(owner, name, then):
    original = getattr(owner, name)
    def patched(*args, **kwargs):
        result = original(*args, **kwargs)
        then()
        return result
    setattr(owner, name, patched)
kill = lambda: os.kill(os.getpid(), signal.SIGTERM)
patch({owner}, {name!r}, kill)
sys.argv = ['pyaya', 'run', {root!r}, '--no-build']
from pyaya.cli import main
main()
"""


@pytest.mark.parametrize(
    ("owner", "name", "status", "said"),
    [
        # While the objects are looked for (as during a build): the CLI's own stop, as before.
        ("pyaya.project.Project", "object_files", 130, "interrupted"),
        # After main.py was read, before its first line (signals blocked then): SIGTERM's default, as during an
        # exec(), and main.py never starts.
        ("pyaya._launch.MainScript", "__init__", -signal.SIGTERM, ""),
    ],
)
def test_sigterm_before_main_py_starts_stops_the_run(
    tmp_path: Path, owner: str, name: str, status: int, said: str
) -> None:
    root, _ = _script(tmp_path, "print('main.py ran')\n")
    probe = _PATCHED_RUN.format(owner=owner, name=name, root=str(root))
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=60)
    assert "main.py ran" not in shown.stdout
    assert shown.returncode == status, shown.stderr
    assert shown.stderr.strip() == said
