"""`pyaya run`'s parser without Typer: the same options as Click reads them, or a fallback to Click."""

from __future__ import annotations

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
        params["path"] = Path(params["path"])  # Typer makes a Path of it when it calls the command
    return params


@pytest.mark.parametrize("arguments", TAKEN, ids=" ".join)
def test_fast_parse_matches_click(arguments: list[str]) -> None:
    parsed = parse(arguments)
    assert parsed is not None
    assert vars(parsed) == _click(arguments)


@pytest.mark.parametrize("arguments", REFUSED, ids=" ".join)
def test_fast_parse_leaves_help_watch_and_errors_to_click(arguments: list[str]) -> None:
    assert parse(arguments) is None


def test_run_starts_main_without_importing_typer(tmp_path: Path) -> None:
    (tmp_path / "pyaya.toml").write_text('[project]\nname = "proj"\n')
    (tmp_path / "main.py").write_text("")
    probe = (
        "import os, sys\n"
        "os.execv = lambda path, argv: (print('typer' in sys.modules, argv[2:]), sys.exit(0))\n"
        f"sys.argv = ['pyaya', 'run', {str(tmp_path)!r}, '--json', '--no-build']\n"
        "import pyaya.project\n"
        "pyaya.project.Project.object_paths = lambda self, profile: [pyaya.project.Path(sys.executable)]\n"
        "from pyaya.cli import main\n"
        "main(); sys.exit(3)\n"
    )
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == f"False ['--object', {sys.executable!r}, '--json']"
