"""Finding and reading pyaya.toml, and deciding when objects are stale."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from pyaya import project as project_module
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
        # Unknown tables and keys name the table and the key, with the nearest valid one.
        ('[project]\nname = "x"\n[run]\nmian = "main.py"\n', r'\[run\] has no key "mian" \(did you mean "main"\?\)'),
        ('[project]\nname = "x"\nnmae = "y"\n', r'\[project\] has no key "nmae" \(did you mean "name"\?\); its keys'),
        ('[project]\nname = "x"\n[buld]\npackage = "p"\n', r'unknown table \[buld\] \(did you mean "build"\?\)'),
        (
            '[project]\nname = "x"\n[biuld]\n',
            r'unknown table \[biuld\] \(did you mean "build"\?\); pyaya.toml has \[project\], \[build\]',
        ),
        ('[project]\nname = "x"\n[build]\nobject = ["x"]\n', r'has no key "object" \(did you mean "objects"\?\)'),
        # Wrong value types say what was found.
        (
            '[project]\nname = "x"\n[run]\nmain = 3\n',
            r'\[run\] main must be a non-empty string, e\.g\. main = "main\.py", not 3',
        ),
        ('[project]\nname = "x"\n[build]\nobjects = [1]\n', "objects must be a non-empty list of strings"),
        ('run = 3\n[project]\nname = "x"\n', r"`run` must be a table \(\[run\]\), not an integer"),
        (
            '[project]\nname = "x"\n[build]\ntoolchain = true\n',
            r"toolchain must be a non-empty string, not True \(a boolean\)",
        ),
        ('[project]\nname = "x"\n[build]\nobjects = [".."]\n', "is not a cargo name"),
        ('[project]\nname = "x"\n[build]\npackage = "../p"\n', "is not a cargo name"),
        # Paths stay inside the project.
        (
            '[project]\nname = "x"\n[run]\nmain = "../outside.py"\n',
            r"\[run\] main = '\.\./outside\.py' points outside the project",
        ),
        ('[project]\nname = "x"\n[run]\nmain = "/etc/passwd"\n', "points outside the project"),
        # [run] unsupported: option names only, each with its reason.
        (
            '[project]\nname = "x"\n[run]\nunsupported.pdi = "why"\n',
            r'\[run.unsupported\] has no key "pdi" \(did you mean "pid"\?\)',
        ),
        ('[project]\nname = "x"\n[run]\nunsupported.pid = ""\n', r"\[run.unsupported\] pid must be a non-empty string"),
        ('[project]\nname = "x"\n[run]\nunsupported = ["pid"]\n', r"`run.unsupported` must be a table"),
        (
            '[project]\nname = "x"\n[run]\noptions = ["pid"]\nunsupported.pid = "why"\n',
            r"\[run\] lists pid both in options .* and in unsupported",
        ),
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


def test_main_symlinked_outside_the_project_is_refused(tmp_path: Path) -> None:
    root = make(tmp_path)
    outside = tmp_path / "elsewhere.py"
    outside.write_text("print('not ours')")
    (root / "main.py").symlink_to(outside)
    with pytest.raises(ProjectError, match=r"\[run\] main = 'main.py' points outside the project .*elsewhere.py"):
        load_project(root / "pyaya.toml")
    (root / "main.py").unlink()
    (root / "scripts").mkdir()
    (root / "scripts" / "real.py").write_text("")
    (root / "main.py").symlink_to(root / "scripts" / "real.py")  # a link that stays inside is fine
    assert load_project(root / "pyaya.toml").main == (root / "scripts" / "real.py").resolve()


def test_schema_is_extended_in_one_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A table added to SCHEMA is accepted and checked like the others, and readable from Project.tables."""
    monkeypatch.setitem(
        project_module.SCHEMA,
        "report",
        project_module.Key(
            "table", keys={"port": project_module.Key("integer"), "dir": project_module.Key("string", path=True)}
        ),
    )
    root = make(tmp_path, CONFIG + "[report]\nport = 9000\ndir = 'out'\n")
    assert load_project(root / "pyaya.toml").tables["report"] == {"port": 9000, "dir": "out"}
    (root / "pyaya.toml").write_text(CONFIG + "[report]\nprot = 9000\n")
    with pytest.raises(ProjectError, match=r'\[report\] has no key "prot" \(did you mean "port"\?\)'):
        load_project(root / "pyaya.toml")
    (root / "pyaya.toml").write_text(CONFIG + "[report]\nport = '9000'\n")
    with pytest.raises(ProjectError, match=r"\[report\] port must be an integer, not '9000' \(a string\)"):
        load_project(root / "pyaya.toml")
    (root / "pyaya.toml").write_text(CONFIG + "[report]\ndir = '../../x'\n")
    with pytest.raises(ProjectError, match=r"\[report\] dir = '\.\./\.\./x' points outside"):
        load_project(root / "pyaya.toml")


def test_unsupported_run_options_give_their_reason(tmp_path: Path) -> None:
    why = "XDP programs run in softirq context, not in a process: filter by interface or address instead"
    text = f'[project]\nname = "x"\ntemplate = "xdp"\n[run]\noptions = []\nunsupported.pid = "{why}"\n'
    project = load_project(make(tmp_path, text) / "pyaya.toml")
    assert project.unsupported_run_options == {"pid": why}
    assert project.refused_run_options(["pid"]) == f"x (template xdp) does not support -p/--pid: {why}"
    # An option without a reason is refused as one main.py does not use.
    refused = project.refused_run_options(["interval"])
    assert refused is not None
    assert "does not support interval [count]" in refused
    assert "its main.py does not use it" in refused
    assert project.refused_run_options([]) is None


def test_unsupported_run_options_apply_without_an_options_list(tmp_path: Path) -> None:
    project = load_project(
        make(tmp_path, '[project]\nname = "x"\n[run]\nunsupported.interval = "no period"\n') / "pyaya.toml"
    )
    assert project.run_options is None
    assert project.refused_run_options(["pid"]) is None
    assert (
        project.refused_run_options(["pid", "interval"])
        == "x does not support interval [count] (pyaya run --interval/--count): no period"
    )


# -- the cache of a parsed pyaya.toml (target/.pyaya-toml.marshal): it saves tomllib's import on pyaya run --------


def _cached(tmp_path: Path, text: str = CONFIG) -> Path:
    """A project whose pyaya.toml is old enough to be cached, with the target folder a build leaves."""
    root = make(tmp_path, text)
    (root / "target").mkdir()
    os.utime(root / "pyaya.toml", (1_600_000_000, 1_600_000_000))
    return root


def _cache(root: Path) -> Path:
    return root / "target" / project_module.CONFIG_CACHE_NAME


def _without_tomllib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tomllib", None)  # an import of it now fails: only the cache can answer
    monkeypatch.setitem(sys.modules, "tomli", None)


def test_config_cache_hit_reads_no_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _cached(tmp_path)
    parsed = load_project(root / "pyaya.toml")
    assert _cache(root).is_file()
    _without_tomllib(monkeypatch)
    again = load_project(root / "pyaya.toml")
    assert again == parsed
    assert again.tables == parsed.tables


def test_config_cache_misses_when_the_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _cached(tmp_path)
    assert load_project(root / "pyaya.toml").objects == ("execwatch", "second")
    config = root / "pyaya.toml"
    config.write_text(CONFIG.replace('"second"', '"third"'))  # same size, and the mtime set back to the same
    os.utime(config, (1_600_000_000, 1_600_000_000))
    assert load_project(config).objects == ("execwatch", "third")
    _without_tomllib(monkeypatch)
    assert load_project(config).objects == ("execwatch", "third")  # the new parse was cached in its turn


@pytest.mark.parametrize("content", [b"", b"garbage\x00\xff", b"\xe3", "marshal of another key"])
def test_config_cache_that_does_not_match_is_ignored(tmp_path: Path, content: bytes | str) -> None:
    import marshal  # noqa: PLC0415

    root = _cached(tmp_path)
    load_project(root / "pyaya.toml")
    if isinstance(content, str):
        content = marshal.dumps(((0, "other"), {"project": {"name": "other"}}))
    _cache(root).write_bytes(content)
    assert load_project(root / "pyaya.toml").name == "execwatch"


def test_a_bad_pyaya_toml_reports_as_before_and_is_not_cached(tmp_path: Path) -> None:
    root = _cached(tmp_path, "[project\nname = 1\n")
    for _ in range(2):
        with pytest.raises(ProjectError, match=r"pyaya\.toml is not valid TOML: "):
            load_project(root / "pyaya.toml")
    assert not _cache(root).exists()
    # Valid TOML that breaks the schema: checked again on each load, never cached either.
    (root / "pyaya.toml").write_text('[project]\nname = "x"\n[unknown]\n')
    os.utime(root / "pyaya.toml", (1_600_000_000, 1_600_000_000))
    with pytest.raises(ProjectError, match=r"unknown table \[unknown\]"):
        load_project(root / "pyaya.toml")
    assert not _cache(root).exists()


def test_config_cache_is_written_only_into_an_existing_target_folder(tmp_path: Path) -> None:
    root = make(tmp_path)
    os.utime(root / "pyaya.toml", (1_600_000_000, 1_600_000_000))
    load_project(root / "pyaya.toml")
    assert not (root / "target").exists()


def test_a_just_written_pyaya_toml_is_not_cached(tmp_path: Path) -> None:
    root = make(tmp_path)
    (root / "target").mkdir()
    load_project(root / "pyaya.toml")  # modified now: a second edit in the same tick could keep its mtime
    assert not _cache(root).exists()
