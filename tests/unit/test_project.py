"""Finding and reading pyaya.toml, and deciding when objects are stale."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pyaya.errors import ProjectError
from pyaya.project import find_project, load_project
from pyaya.toolchain import bpf_target

CONFIG = """\
[project]
name = "execwatch"
template = "tracepoint"
[build]
package = "execwatch-ebpf"
objects = ["execwatch", "second"]
[run]
main = "main.py"
"""


def make(tmp_path: Path, text: str = CONFIG) -> Path:
    root = tmp_path / "execwatch"
    (root / "execwatch-ebpf" / "src").mkdir(parents=True)
    (root / "execwatch-ebpf" / "src" / "main.rs").write_text("fn main() {}")
    (root / "Cargo.toml").write_text("[workspace]")
    (root / "pyaya.toml").write_text(text)
    return root


def test_find_upward(tmp_path: Path) -> None:
    root = make(tmp_path)
    project = find_project(root / "execwatch-ebpf" / "src")
    assert project.root == root.resolve()
    assert project.name == "execwatch"
    assert project.template == "tracepoint"
    assert project.package == "execwatch-ebpf"
    assert project.objects == ("execwatch", "second")
    assert project.main == root.resolve() / "main.py"
    assert find_project(root / "pyaya.toml").root == root.resolve()
    assert find_project(root / "Cargo.toml").root == root.resolve()


def test_find_from_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make(tmp_path)
    monkeypatch.chdir(root / "execwatch-ebpf")
    assert find_project().root == root.resolve()


def test_no_project(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match=r"no pyaya.toml in .* or any parent folder: run `pyaya new NAME`"):
        find_project(tmp_path)
    with pytest.raises(ProjectError, match="does not exist"):
        find_project(tmp_path / "missing")


def test_defaults(tmp_path: Path) -> None:
    root = make(tmp_path, '[project]\nname = "probe"\n')
    project = find_project(root)
    assert (project.package, project.objects, project.main.name, project.toolchain) == (
        "probe-ebpf",
        ("probe",),
        "main.py",
        None,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[project\n", "not valid TOML"),
        ("[build]\npackage = 'x'\n", "name is missing"),
        ("project = 3\n", "must be a table"),
        ('[project]\nname = "x"\n[build]\nobjects = "x"\n', "objects must be a non-empty list"),
        ('[project]\nname = "x"\n[build]\nobjects = []\n', "objects must be a non-empty list"),
        ('[project]\nname = "x"\n[build]\ntoolchain = "stable"\n', "is not one of auto, nightly"),
        ("[project]\nname = 5\n", "must be a non-empty string"),
    ],
)
def test_invalid_config(tmp_path: Path, text: str, message: str) -> None:
    root = make(tmp_path, text)
    with pytest.raises(ProjectError, match=message) as info:
        load_project(root / "pyaya.toml")
    assert str(root / "pyaya.toml") in str(info.value)


def test_object_paths_and_staleness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARGO_TARGET_DIR", raising=False)
    root = make(tmp_path)
    project = find_project(root)
    release = project.object_paths()
    assert release == [root.resolve() / "target" / bpf_target() / "release" / n for n in ("execwatch", "second")]
    assert project.object_paths("dev")[0].parent.name == "debug"
    assert project.is_stale()  # nothing built

    old = 1_000_000_000
    for source in project.source_files():
        os.utime(source, (old, old))
    for path in release:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x7fELF")
    assert not project.is_stale()
    assert project.is_stale("debug")

    # a file under target/ never counts, even when newer
    (root / "target" / "newer.rs").write_text("")
    assert not project.is_stale()

    (root / "execwatch-ebpf" / "src" / "main.rs").write_text("changed")
    assert project.is_stale()
    os.utime(root / "execwatch-ebpf" / "src" / "main.rs", (old, old))
    assert not project.is_stale()
    (root / "pyaya.toml").touch()
    assert project.is_stale()
    os.utime(root / "pyaya.toml", (old, old))
    release[1].unlink()
    assert project.is_stale()


def test_cargo_target_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make(tmp_path)
    monkeypatch.setenv("CARGO_TARGET_DIR", "/elsewhere/t")
    assert find_project(root).object_paths()[0] == Path("/elsewhere/t") / bpf_target() / "release" / "execwatch"
