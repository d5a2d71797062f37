"""`pyaya new`, `pyaya templates` and `pyaya build` through Typer's CliRunner (no native module, no real cargo)."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
from pyaya import scaffold
from pyaya import toolchain as toolchain_module
from pyaya.toolchain import Toolchain
from typer.testing import CliRunner

# Other commands are written in parallel; stand in for any that do not exist yet, so these tests run regardless.
for _command in ("run", "inspect", "doctor"):
    if importlib.util.find_spec(f"pyaya.cli.{_command}") is None:  # pragma: no cover
        _stub = types.ModuleType(f"pyaya.cli.{_command}")
        setattr(_stub, _command, lambda: None)
        sys.modules[_stub.__name__] = _stub

from pyaya.cli import app  # noqa: E402

runner = CliRunner()


@pytest.fixture
def demo_templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "templates"
    demo = root / "tracepoint"
    demo.mkdir(parents=True)
    (demo / "template.toml").write_text('description = "Trace execs"\n')
    (demo / "pyaya.toml.tmpl").write_text('[project]\nname = "{{name}}"\n')
    other = root / "kprobe"
    other.mkdir()
    (other / "template.toml").write_text('description = "Probe a kernel function"\n')
    (other / "pyaya.toml.tmpl").write_text('[project]\nname = "{{name}}"\n')
    monkeypatch.setattr(scaffold, "templates_root", lambda: root)
    return root


def test_templates_lists_kinds(demo_templates: Path) -> None:
    result = runner.invoke(app, ["templates"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["kprobe      Probe a kernel function", "tracepoint  Trace execs (default)"]


def test_new_creates_project(demo_templates: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["new", "exec-watch"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "exec-watch" / "pyaya.toml").read_text() == '[project]\nname = "exec-watch"\n'
    assert "Created exec-watch" in result.stdout
    assert "cd exec-watch" in result.stdout
    assert "pyaya build" in result.stdout

    again = runner.invoke(app, ["new", "exec-watch"])
    assert again.exit_code == 1
    assert again.stderr.startswith("error: ")
    assert "--force" in again.stderr
    assert "Traceback" not in again.output

    forced = runner.invoke(app, ["new", "exec-watch", "--force", "--template", "kprobe"])
    assert forced.exit_code == 0, forced.output


def test_new_with_path(demo_templates: Path, tmp_path: Path) -> None:
    dest = tmp_path / "somewhere" / "else"
    result = runner.invoke(app, ["new", "probe", "--path", str(dest)])
    assert result.exit_code == 0, result.output
    assert (dest / "pyaya.toml").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["new", "../x"], "path separator"),
        (["new", "Bad Name"], "contains"),
        (["new", "fn"], "Rust keyword"),
        (["new", "ok", "--template", "nope"], "valid templates are kprobe, tracepoint"),
    ],
)
def test_new_failures(
    demo_templates: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["templates"]


@pytest.mark.parametrize(
    "args",
    [["new"], ["new", "x", "--bogus"], ["build", "--toolchain", "stable"], ["build", "--nope"], ["templates", "x"]],
)
def test_bad_usage_exits_2(args: list[str]) -> None:
    assert runner.invoke(app, args).exit_code == 2


def test_build_outside_a_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["build"])
    assert result.exit_code == 1
    assert "no pyaya.toml in" in result.stderr
    assert "pyaya new NAME" in result.stderr


def test_build_prints_objects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyaya.toml").write_text('[project]\nname = "proj"\n[build]\ntoolchain = "prebuilt"\n')
    obj = tmp_path / "target" / "proj"
    obj.parent.mkdir()
    script = tmp_path / "cargo"
    script.write_text(
        "#!/bin/sh\n"
        f'echo \'{{"reason":"compiler-artifact","target":{{"kind":["bin"]}},"executable":"{obj}"}}\'\n'
        'echo \'{"reason":"build-finished","success":true}\'\n'
        'echo "   Compiling proj-ebpf v0.1.0" >&2\n'
    )
    script.chmod(0o755)
    seen: list[tuple[str | None, str | None]] = []

    def fake_resolve(kind: str | None = None, *, project_kind: str | None = None, env: object = None) -> Toolchain:
        seen.append((kind, project_kind))
        return Toolchain("prebuilt", script, tmp_path / "rustc", "1.96.0", 22, False, script, 22)

    monkeypatch.setattr("pyaya.build.resolve", fake_resolve)
    result = runner.invoke(app, ["build", str(root), "--toolchain", "bootstrap"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{obj}\n"
    assert "Compiling proj-ebpf" not in result.stderr  # progress only on a terminal
    assert seen == [("bootstrap", "prebuilt")]


def test_build_toolchain_error_is_one_line_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyaya.toml").write_text('[project]\nname = "proj"\n')
    monkeypatch.setattr(toolchain_module, "BPF_LINKER_DIRS", ())
    monkeypatch.setattr(toolchain_module, "SYSTEM_RUSTC", str(tmp_path / "none"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path))
    result = runner.invoke(app, ["build", str(root)])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no toolchain can build")
    assert "Traceback" not in result.output
