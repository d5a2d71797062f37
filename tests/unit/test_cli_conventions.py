"""Conventions every `pyaya` command keeps: -h, one meaning per short flag, color only where wanted (NO_COLOR,
FORCE_COLOR, a terminal), and design.md's exit codes (0 ok, 1 a failure with one line on stderr, 2 bad usage).

The samples run `python -m pyaya` as a user would, under a pseudo-terminal where color is the question: CliRunner
never looks like a terminal, so it could not show that NO_COLOR is what keeps a terminal plain.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from pyaya import __version__, _version, attachments
from pyaya._native import AYA_VERSION
from pyaya.cli import app
from pyaya.cli._help import MIN_COLUMNS, TOP_HELP
from test_inspect import sample_object
from typer.core import TyperGroup
from typer.testing import CliRunner

ANSI = re.compile(r"\x1b\[")
COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined] # a TyperGroup


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("NO_COLOR", "FORCE_COLOR")}
    state = tmp_path / "state"
    state.mkdir(mode=0o755, exist_ok=True)
    state.chmod(0o755)
    env[attachments.STATE_DIR_ENV] = str(state)  # cleanup and doctor read this machine's records otherwise
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # --version caches its toolchain line there
    env["COLUMNS"] = "120"
    env.update(extra)
    return env


def _on_terminal(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    """Run ``argv`` with stdin, stdout and stderr on a pseudo-terminal; its exit status and everything shown."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    shown = b""
    while True:
        ready, _, _ = select.select([controller], [], [], timeout)
        assert ready, f"{argv} showed nothing for {timeout}s"
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the terminal's last writer is gone
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    return process.wait(timeout=timeout), shown.decode(errors="replace")


def _piped(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False)


def _pyaya(*args: str) -> list[str]:
    return [sys.executable, "-m", "pyaya", *args]


# -- -h and short flags ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_dash_h_is_help_everywhere(tmp_path: Path, command: str | None) -> None:
    args = [command, "-h"] if command else ["-h"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert "-h, --help" in result.output


def _short_flags() -> dict[str, set[tuple[str, str]]]:
    """Every short flag of every command (the app's own options too) -> {(long option, command)}."""
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    commands: list[tuple[str, Any]] = [("pyaya", group)]  # Click's types: typer vendors Click privately
    commands += [(name, command) for name, command in group.commands.items()]
    flags: dict[str, set[tuple[str, str]]] = {}
    for name, command in commands:
        params = [*command.params]
        help_option = command.get_help_option(typer.Context(command, info_name=name, **command.context_settings))
        if help_option is not None:
            params.append(help_option)
        for param in params:
            if param.param_type_name != "option":
                continue
            names = [*param.opts, *param.secondary_opts]
            longs = sorted(n for n in names if n.startswith("--"))
            for short in (n for n in names if not n.startswith("--")):
                flags.setdefault(short, set()).add((longs[0] if longs else short, name))
    return flags


def test_each_short_flag_means_one_long_option_across_commands() -> None:
    flags = _short_flags()
    assert flags, "no short flags found: the walk over the commands is broken"
    assert {long for long, _ in flags["-h"]} == {"--help"}
    assert len({command for _, command in flags["-h"]}) == len(COMMANDS) + 1  # every command and the app
    clashes = {short: sorted(uses) for short, uses in flags.items() if len({long for long, _ in uses}) > 1}
    assert not clashes, f"short flags with more than one meaning: {clashes}"


def test_new_has_no_short_path_flag() -> None:
    """`-p` is `--pid` (pyaya run, and every project's main.py, as in BCC): `new` spells `--path` out."""
    assert {long for long, _ in _short_flags()["-p"]} == {"--pid"}


# -- color and exit codes, one sample of each per command --------------------------------------------------------


def _tracepoint_project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir(exist_ok=True)
    (root / "pyaya.toml").write_text('[project]\nname = "proj"\ntemplate = "tracepoint"\n[run]\noptions = []\n')
    (root / "main.py").write_text("print('main')\n")
    return root


def _object_file(tmp_path: Path) -> Path:
    obj = tmp_path / "prog.o"
    obj.write_bytes(sample_object())
    return obj


#: command -> (sample arguments that succeed (None: none that do here without root or a toolchain), a failure's
#: arguments, a usage error's arguments). Each is built from tmp_path.
Samples = Callable[[Path], tuple[list[str] | None, list[str] | None, list[str]]]
SAMPLES: dict[str, Samples] = {
    "new": lambda t: (
        ["new", "fresh", "--path", str(t / "fresh")],
        ["new", "proj", "--path", str(_tracepoint_project(t))],  # not empty, no --force
        ["new", "fresh", "--template", "no_such_kind_of_template", "--bogus"],
    ),
    "templates": lambda t: (["templates"], None, ["templates", "--bogus"]),
    "build": lambda t: (None, ["build", str(t / "empty")], ["build", "--bogus"]),
    "run": lambda t: (None, ["run", str(t / "empty"), "--no-build"], ["run", str(_tracepoint_project(t)), "-p", "1"]),
    "inspect": lambda t: (
        ["inspect", str(_object_file(t))],
        ["inspect", str(t / "empty" / "missing.o")],
        ["inspect"],
    ),
    "doctor": lambda t: (None, None, ["doctor", "--bogus"]),
    "cleanup": lambda t: (["cleanup", "--dry-run"], None, ["cleanup", "--bogus"]),
    "test": lambda t: (None, ["test", str(t / "empty"), "--kernel", "2.4"], ["test", str(t / "empty")]),
    "package": lambda t: (None, ["package", str(t / "empty"), "--tag", "x:1"], ["package", "--bogus"]),
    "vmlinux-h": lambda t: (
        ["vmlinux-h", "-o", str(t)] if Path("/sys/kernel/btf/vmlinux").is_file() else None,  # no privilege needed
        ["vmlinux-h", "--btf", str(t / "empty" / "missing")],
        ["vmlinux-h", "--bogus"],
    ),
}


def test_every_command_has_samples() -> None:
    assert sorted(SAMPLES) == COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_exit_codes(tmp_path: Path, command: str) -> None:
    (tmp_path / "empty").mkdir()
    ok, failure, usage = SAMPLES[command](tmp_path)
    env = _env(tmp_path)
    if ok is not None:
        result = _piped(_pyaya(*ok), tmp_path, env)
        assert result.returncode == 0, result.stderr
    if failure is not None:
        result = _piped(_pyaya(*failure), tmp_path, env)
        assert result.returncode == 1, (result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error: "), result.stderr
        assert "Traceback" not in result.stderr
    result = _piped(_pyaya(*usage), tmp_path, env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr


def _samples(tmp_path: Path, command: str) -> list[list[str]]:
    (tmp_path / "empty").mkdir(exist_ok=True)
    return [[command, "--help"], *(args for args in SAMPLES[command](tmp_path) if args is not None)]


@pytest.mark.parametrize("command", COMMANDS)
def test_no_color_on_a_terminal_under_no_color(tmp_path: Path, command: str) -> None:
    env = _env(tmp_path, NO_COLOR="1", FORCE_COLOR="1")  # NO_COLOR wins
    for args in _samples(tmp_path, command):
        _, shown = _on_terminal(_pyaya(*args), tmp_path, env)
        assert not ANSI.search(shown), f"pyaya {' '.join(args)}: {shown!r}"


@pytest.mark.parametrize("command", COMMANDS)
def test_no_color_when_piped(tmp_path: Path, command: str) -> None:
    env = _env(tmp_path)
    for args in _samples(tmp_path, command):
        result = _piped(_pyaya(*args), tmp_path, env)
        assert not ANSI.search(result.stdout + result.stderr), f"pyaya {' '.join(args)}"


def test_color_on_a_terminal_and_with_force_color(tmp_path: Path) -> None:
    """The other side: the same helper does color a terminal, and a pipe under FORCE_COLOR."""
    failing = _pyaya("build", str(tmp_path))
    _, shown = _on_terminal(failing, tmp_path, _env(tmp_path))
    assert ANSI.search(shown), shown
    forced = _piped(failing, tmp_path, _env(tmp_path, FORCE_COLOR="1"))
    assert ANSI.search(forced.stderr), forced.stderr
    plain = _piped(failing, tmp_path, _env(tmp_path, FORCE_COLOR="0"))
    assert not ANSI.search(plain.stderr)


def test_version_names_pyaya_aya_toolchain_and_kernel(tmp_path: Path) -> None:
    result = _piped(_pyaya("--version"), tmp_path, _env(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"pyaya {__version__}"
    assert lines[1] == f"aya {AYA_VERSION}"
    assert lines[2].startswith("toolchain: ")
    assert lines[3] == f"kernel: {os.uname().sysname} {os.uname().release} {os.uname().machine}"


def test_aya_version_is_the_locked_one() -> None:
    """Not typed by hand: the native module's AYA_VERSION is Cargo.lock's aya."""
    lock = (Path(__file__).resolve().parents[2] / "Cargo.lock").read_text()
    assert f'name = "aya"\nversion = "{AYA_VERSION}"\n' in lock


def test_static_top_help_is_typers() -> None:
    """`pyaya --help` answers from pyaya.cli._help without Typer: that text must be what Typer renders (refresh it
    with `python -m pyaya.cli._help`, as its docstring says)."""
    rendered = CliRunner().invoke(app, ["--help"], prog_name="pyaya", env={"COLUMNS": str(MIN_COLUMNS)})
    assert rendered.exit_code == 0
    assert rendered.output == TOP_HELP


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_pyaya_help_answers_without_typer(tmp_path: Path, flag: str) -> None:
    probe = f"import sys; sys.argv = ['pyaya', {flag!r}]\nfrom pyaya.cli import main\nmain()\n"
    probe += "assert 'typer' not in sys.modules, 'Typer was imported'\n"
    result = _piped([sys.executable, "-c", probe], tmp_path, _env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == TOP_HELP


def test_pyaya_version_answers_without_typer(tmp_path: Path) -> None:
    probe = "import sys; sys.argv = ['pyaya', '--version']\nfrom pyaya.cli import main\nmain()\n"
    probe += "assert 'typer' not in sys.modules, 'Typer was imported'\n"
    result = _piped([sys.executable, "-c", probe], tmp_path, _env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"pyaya {__version__}\n")


def test_narrow_terminals_get_typers_help(tmp_path: Path) -> None:
    result = _piped(_pyaya("--help"), tmp_path, _env(tmp_path, COLUMNS="60"))
    assert result.returncode == 0
    assert result.stdout != TOP_HELP
    assert max(len(line) for line in result.stdout.splitlines()) <= 60


def test_version_toolchain_line_is_cached_until_what_it_depends_on_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    probes: list[int] = []

    def probe() -> str:
        probes.append(1)
        return f"probe {len(probes)}"

    monkeypatch.setattr(_version, "_probe", probe)
    assert _version.toolchain_line() == "probe 1"
    assert _version.toolchain_line() == "probe 1"  # from the cache
    monkeypatch.setenv("PYAYA_TOOLCHAIN", "bootstrap")
    assert _version.toolchain_line() == "probe 2"
    folder = tmp_path / "bin"
    folder.mkdir()
    rustc = folder / "rustc"
    rustc.write_text("#!/bin/sh\n")
    rustc.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    assert _version.toolchain_line() == "probe 3"
    assert _version.toolchain_line() == "probe 3"
    os.utime(rustc, (1, 1))  # the rustc on PATH changed (an upgrade)
    assert _version.toolchain_line() == "probe 4"
