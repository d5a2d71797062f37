"""Each template's `[run] options` (which of `-p PID` and `interval [count]` its main.py honours) is true to its
main.py, and `pyaya run` on a project rendered from it refuses the others before building."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pyaya.cli import app
from pyaya.project import load_project
from pyaya.scaffold import list_templates
from typer.testing import CliRunner

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
KINDS = sorted(t.kind for t in list_templates())
runner = CliRunner()

#: What in a main.py shows that it uses an option: `-p` reaches a global or an attach (`options.pid`), `interval`
#: drives `session.every()` (whose count ends the run).
USES = {"pid": re.compile(r"options\.pid\b"), "interval": re.compile(r"options\.interval\b|\.every\(")}
FLAGS = {"pid": ["-p", "1"], "interval": ["--interval", "1", "--count", "2"]}


def _declared(kind: str) -> set[str]:
    text = (TEMPLATES / kind / "pyaya.toml.tmpl").read_text()
    match = re.search(r"^options = \[(.*)\]$", text, re.MULTILINE)
    assert match is not None, f"templates/{kind}/pyaya.toml.tmpl has no [run] options"
    return set(re.findall(r'"(\w+)"', match.group(1)))


@pytest.mark.parametrize("kind", KINDS)
def test_declared_options_are_the_ones_main_py_uses(kind: str) -> None:
    main = (TEMPLATES / kind / "main.py").read_text()
    used = {name for name, pattern in USES.items() if pattern.search(main)}
    assert _declared(kind) == used


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("rendered")
    roots = {}
    for kind in KINDS:
        root = folder / kind
        result = runner.invoke(app, ["new", f"{kind}_app", "-t", kind, "--path", str(root), "--no-check"])
        assert result.exit_code == 0, result.output
        roots[kind] = root
    return roots


@pytest.mark.parametrize("option", sorted(FLAGS))
@pytest.mark.parametrize("kind", KINDS)
def test_run_refuses_what_the_template_lacks(rendered: dict[str, Path], kind: str, option: str) -> None:
    root = rendered[kind]
    assert load_project(root / "pyaya.toml").run_options == _declared(kind)
    result = runner.invoke(app, ["run", str(root), "--no-build", *FLAGS[option]])
    if option in _declared(kind):
        # Past the check: what stops it is the missing object (nothing was built here).
        assert result.exit_code == 1, result.output
        assert "no built object" in result.stderr
    else:
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1
        assert f"(template {kind}) does not support" in lines[0]
        why = load_project(root / "pyaya.toml").unsupported_run_options.get(option)
        assert why is None or lines[0].endswith(why)


@pytest.mark.parametrize("kind", KINDS)
def test_every_template_honours_pid_or_says_why_not(rendered: dict[str, Path], kind: str) -> None:
    project = load_project(rendered[kind] / "pyaya.toml")
    assert ("pid" in _declared(kind)) != ("pid" in project.unsupported_run_options)


@pytest.mark.parametrize("kind", KINDS)
def test_run_metrics_needs_the_template_metrics_tables(rendered: dict[str, Path], kind: str) -> None:
    root = rendered[kind]
    has_tables = bool(load_project(root / "pyaya.toml").fleet.metrics)
    result = runner.invoke(app, ["run", str(root), "--no-build", "--metrics", "127.0.0.1:0"])
    if has_tables:
        assert result.exit_code == 1, result.output
        assert "no built object" in result.stderr
    else:
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("error: --metrics: ")
        assert "has no [metrics.MAP] table" in result.stderr
