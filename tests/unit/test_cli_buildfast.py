"""`pyaya build`'s parser without Typer: the same options as Click reads them, or a fallback to Click; and the
no-op build it serves never imports Typer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from pyaya.cli import app
from pyaya.cli._buildfast import parse

TAKEN = [
    [],
    ["proj"],
    ["--debug"],
    ["proj", "--debug", "--toolchain", "prebuilt"],
    ["--toolchain=NIGHTLY", "proj"],
    ["--toolchain", "auto", "--toolchain", "bootstrap"],
    ["--", "-proj"],
]

REFUSED = [
    ["--help"],
    ["-h"],
    ["--toolchain"],
    ["--toolchain", "gcc"],
    ["--debug=1"],
    ["-d"],
    ["a", "b"],
    ["--unknown"],
    [""],
]


def _click(arguments: list[str]) -> dict[str, object]:
    command = typer.main.get_command(app).commands["build"]  # type: ignore[attr-defined]
    with command.make_context("build", list(arguments)) as context:
        params = dict(context.params)
    if params["path"] is not None:
        params["path"] = Path(params["path"])
    toolchain = params["toolchain"]
    params["toolchain"] = getattr(toolchain, "value", toolchain)  # Typer makes its Enum of Click's choice
    return params


@pytest.mark.parametrize("arguments", TAKEN, ids=" ".join)
def test_fast_parse_matches_click(arguments: list[str]) -> None:
    parsed = parse(arguments)
    assert parsed is not None
    assert vars(parsed) == _click(arguments)


@pytest.mark.parametrize("arguments", REFUSED, ids=" ".join)
def test_fast_parse_leaves_help_and_errors_to_click(arguments: list[str]) -> None:
    assert parse(arguments) is None


def test_build_runs_without_importing_typer_and_fails_as_typer_does(tmp_path: Path) -> None:
    (tmp_path / "pyaya.toml").write_text('[project]\nname = "proj"\n[build]\nc_sources = ["gone.bpf.c"]\n')
    probe = (
        "import sys\n"
        f"sys.argv = ['pyaya', 'build', {str(tmp_path)!r}]\n"
        "from pyaya.cli import main\n"
        "try:\n    main()\nfinally:\n    print('typer' in sys.modules)\n"
    )
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert shown.returncode == 1
    assert shown.stdout.strip() == "False"
    assert "[build] c_sources names" in shown.stderr
    assert "Traceback" not in shown.stderr
    typer_said = subprocess.run(
        [sys.executable, "-m", "pyaya", "build", str(tmp_path), "--toolchain", "auto", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert typer_said.returncode == 0
    assert "--toolchain" in typer_said.stdout
