"""Project names, template rendering, --force and the nothing-half-written guarantee."""

from __future__ import annotations

import os
from importlib.resources.abc import Traversable
from pathlib import Path

import pytest
from pyaya import scaffold
from pyaya.errors import ScaffoldError

REPO_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@pytest.mark.parametrize("name", ["execwatch", "exec-watch", "exec_watch", "a", "x1-2_3", "a" * 64, "self-test"])
def test_valid_names(name: str) -> None:
    assert scaffold.validate_name(name) == name.replace("-", "_")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("exec watch", "contains ' '"),
        ("ExecWatch", "contains 'E', 'W'"),
        ("../x", "path separator"),
        ("a/b", "path separator"),
        ("..", "path separator"),
        ("1watch", "must start with a letter"),
        ("-watch", "must start with a letter"),
        ("_watch", "must start with a letter"),
        ("a" * 65, "at most 64"),
        ("fn", "Rust keyword"),
        ("async", "Rust keyword"),
        ("gen", "Rust keyword"),
        ("self", "Rust keyword"),
        ("std", "built-in crate"),
        ("proc-macro", "built-in crate"),
        ("test", "built-in crate"),
        ("café", "contains 'é'"),
    ],
)
def test_invalid_names(name: str, reason: str) -> None:
    with pytest.raises(ScaffoldError, match="project name") as info:
        scaffold.validate_name(name)
    assert reason in str(info.value)


@pytest.fixture
def fake_templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "templates"
    demo = root / "demo"
    (demo / "{{name}}-ebpf" / "src").mkdir(parents=True)
    (demo / "template.toml").write_text('description = "A demo"\n')
    (demo / "Cargo.toml.tmpl").write_text('[workspace]\nmembers = ["{{name}}-ebpf"]\n')
    (demo / "{{name}}-ebpf" / "src" / "main.rs").write_text("use {{crate_name}}_common::Event; // {{ name }}\n")
    (demo / "main.py").write_text('"""{{name}} for pyaya {{pyaya_version}}."""\n')
    (demo / "logo.bin").write_bytes(b"\xff\xfe{{name}}\x00")
    (demo / ".gitignore").write_text("/target\n")
    for skipped in ("target", "__pycache__"):
        (demo / skipped).mkdir()
        (demo / skipped / "junk").write_text("junk")
    (demo / "Cargo.lock").write_text("lock")
    other = root / "zeta"
    other.mkdir()
    (other / "template.toml").write_text('description = "Last one"\n')
    (root / "not-a-template").mkdir()

    def files() -> Traversable:
        return root

    monkeypatch.setattr(scaffold, "templates_root", files)
    return root


def test_list_templates(fake_templates: Path) -> None:
    assert [(t.kind, t.description) for t in scaffold.list_templates()] == [("demo", "A demo"), ("zeta", "Last one")]


def test_render(fake_templates: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out" / "exec-watch"
    written = scaffold.render("demo", "exec-watch", dest)
    rel = sorted(str(p.relative_to(dest)) for p in written)
    assert rel == [".gitignore", "Cargo.toml", "exec-watch-ebpf/src/main.rs", "logo.bin", "main.py"]
    assert (dest / "Cargo.toml").read_text() == '[workspace]\nmembers = ["exec-watch-ebpf"]\n'
    assert (dest / "exec-watch-ebpf/src/main.rs").read_text() == "use exec_watch_common::Event; // exec-watch\n"
    main = (dest / "main.py").read_text()
    assert main.startswith('"""exec-watch for pyaya ')
    assert "{{pyaya_version}}" not in main
    assert (dest / "logo.bin").read_bytes() == b"\xff\xfe{{name}}\x00"
    assert not (dest / "template.toml").exists()
    assert not (dest / "target").exists()
    assert not (dest / "Cargo.lock").exists()
    assert not (dest / "__pycache__").exists()
    assert [p.name for p in dest.parent.iterdir()] == ["exec-watch"]  # no staging folder left


def test_render_into_empty_folder(fake_templates: Path, tmp_path: Path) -> None:
    dest = tmp_path / "empty"
    dest.mkdir()
    scaffold.render("demo", "demo", dest)
    assert (dest / "Cargo.toml").is_file()


def test_unknown_template_lists_valid_ones(fake_templates: Path, tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match=r"unknown template 'nope': valid templates are demo, zeta"):
        scaffold.render("nope", "x", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_existing_folder_needs_force(fake_templates: Path, tmp_path: Path) -> None:
    dest = tmp_path / "proj"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    (dest / "main.py").write_text("old")
    with pytest.raises(ScaffoldError, match="--force"):
        scaffold.render("demo", "proj", dest)
    assert sorted(p.name for p in dest.iterdir()) == ["main.py", "notes.txt"]
    assert (dest / "main.py").read_text() == "old"

    scaffold.render("demo", "proj", dest, force=True)
    assert (dest / "notes.txt").read_text() == "mine"  # other files are kept
    assert (dest / "main.py").read_text().startswith('"""proj for pyaya')
    assert (dest / "proj-ebpf" / "src" / "main.rs").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj", "templates"]


def test_failure_writes_nothing(fake_templates: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real = Path.write_bytes

    def flaky(self: Path, data: bytes) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OSError(28, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", flaky)
    with pytest.raises(ScaffoldError, match="No space left on device"):
        scaffold.render("demo", "proj", tmp_path / "proj")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["templates"]


def test_force_clash_writes_nothing(fake_templates: Path, tmp_path: Path) -> None:
    dest = tmp_path / "proj"
    (dest / "main.py").mkdir(parents=True)  # a folder where the template puts a file
    with pytest.raises(ScaffoldError, match="needs a file"):
        scaffold.render("demo", "proj", dest, force=True)
    assert [p.name for p in dest.iterdir()] == ["main.py"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj", "templates"]


def test_existing_file_is_an_error(fake_templates: Path, tmp_path: Path) -> None:
    (tmp_path / "proj").write_text("x")
    with pytest.raises(ScaffoldError, match="not a folder"):
        scaffold.render("demo", "proj", tmp_path / "proj", force=True)


def test_create_project_defaults_to_cwd(fake_templates: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    root, _ = scaffold.create_project("hello", template="demo")
    assert root == tmp_path / "hello"
    with pytest.raises(ScaffoldError, match="path separator"):
        scaffold.create_project("../escape", template="demo")
    assert not (tmp_path.parent / "escape").exists()


@pytest.mark.skipif(not (REPO_TEMPLATES / "tracepoint").is_dir(), reason="templates/tracepoint is not written yet")
def test_real_tracepoint_template(tmp_path: Path) -> None:
    kinds = {t.kind: t.description for t in scaffold.list_templates()}
    assert "tracepoint" in kinds
    assert kinds["tracepoint"]
    assert "\n" not in kinds["tracepoint"]
    dest = tmp_path / "exec-watch"
    written = scaffold.render("tracepoint", "exec-watch", dest)
    assert written
    for path in written:
        assert "{{" not in str(path)
        assert not path.name.endswith(".tmpl")
        text = path.read_text(errors="replace")
        for placeholder in ("{{name}}", "{{crate_name}}", "{{pyaya_version}}"):
            assert placeholder not in text, f"{path} still holds {placeholder}"
    config = (dest / "pyaya.toml").read_text()
    assert 'name = "exec-watch"' in config
    assert (dest / "Cargo.toml").is_file()
    assert (dest / "exec-watch-ebpf" / "Cargo.toml").is_file()


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "main.rs").write_text("precious")
    return outside


def test_force_refuses_a_symlinked_subfolder(fake_templates: Path, tmp_path: Path) -> None:
    outside = _outside(tmp_path)
    dest = tmp_path / "proj"
    dest.mkdir()
    (dest / "proj-ebpf").symlink_to(outside)  # the template writes proj-ebpf/src/main.rs
    (outside / "src").mkdir()
    (outside / "src" / "main.rs").write_text("precious")
    with pytest.raises(ScaffoldError, match=r"will not write through the symbolic link .*proj-ebpf"):
        scaffold.render("demo", "proj", dest, force=True)
    assert (outside / "src" / "main.rs").read_text() == "precious"
    assert sorted(p.name for p in dest.iterdir()) == ["proj-ebpf"]  # nothing else written either


def test_force_refuses_a_symlinked_file(fake_templates: Path, tmp_path: Path) -> None:
    outside = _outside(tmp_path)
    dest = tmp_path / "proj"
    dest.mkdir()
    (dest / "main.py").symlink_to(outside / "main.rs")
    with pytest.raises(ScaffoldError, match=r"symbolic link .*main\.py"):
        scaffold.render("demo", "proj", dest, force=True)
    assert (outside / "main.rs").read_text() == "precious"
    assert (dest / "main.py").is_symlink()


@pytest.mark.parametrize("force", [False, True])
def test_destination_that_is_a_symlink_is_refused(fake_templates: Path, tmp_path: Path, force: bool) -> None:
    outside = _outside(tmp_path)
    (tmp_path / "proj").symlink_to(outside)
    with pytest.raises(ScaffoldError, match=r"is a symbolic link .*pass that folder with --path"):
        scaffold.render("demo", "proj", tmp_path / "proj", force=force)
    assert sorted(p.name for p in outside.iterdir()) == ["main.rs"]


def test_a_link_appearing_while_writing_is_not_followed(tmp_path: Path) -> None:
    """The writes open each folder O_NOFOLLOW: a subfolder swapped for a link after the checks fails the write."""
    outside = _outside(tmp_path)
    dest = tmp_path / "proj"
    dest.mkdir()
    (dest / "sub").symlink_to(outside)
    source = tmp_path / "staged.rs"
    source.write_text("new")
    root = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(ScaffoldError, match="no longer a folder"):
            scaffold._move_into(source, root, Path("sub/main.rs"), dest)
    finally:
        os.close(root)
    assert (outside / "main.rs").read_text() == "precious"
    assert source.read_text() == "new"


def test_force_still_writes_through_real_folders(fake_templates: Path, tmp_path: Path) -> None:
    dest = tmp_path / "proj"
    (dest / "proj-ebpf" / "src").mkdir(parents=True)
    (dest / "proj-ebpf" / "src" / "main.rs").write_text("old")
    (dest / "notes").symlink_to(tmp_path)  # a link the template does not write through is left alone
    scaffold.render("demo", "proj", dest, force=True)
    assert (dest / "proj-ebpf" / "src" / "main.rs").read_text().startswith("use proj_common")
    assert (dest / "notes").is_symlink()


def test_new_project_folder_gets_the_mode_of_any_new_folder(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        scaffold.create_project("modes", path=tmp_path / "modes")
    finally:
        os.umask(previous)
    assert (tmp_path / "modes").stat().st_mode & 0o777 == 0o755
