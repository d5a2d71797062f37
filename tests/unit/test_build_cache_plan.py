"""`pyaya.build_cache`: when builds share the toolchain's build folder (fake cargo/rustc/bpf-linker scripts), and
the bookkeeping that keeps two projects' packages of the same name apart (real files in a build folder's layout)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from _fake_rust import write_script
from pyaya import build, build_cache
from pyaya.project import find_project
from pyaya.toolchain import Toolchain, bpf_target


def fake_toolchain(tmp_path: Path, *, cargo: str = "1.96.0", linker: str = "0.13.0", sleep: float = 0) -> Toolchain:
    """cargo answering ``-V`` with ``cargo``'s version and building (``stream.json`` on stdout, after ``sleep``
    seconds); rustc and bpf-linker answering their version questions."""
    bin_dir = tmp_path / "bin"
    stream = tmp_path / "stream.json"
    if not stream.exists():
        tmp_path.mkdir(parents=True, exist_ok=True)
        stream.write_text("")
    cargo_path = write_script(
        bin_dir / "cargo",
        f'if [ "$1" = "-V" ]; then echo "cargo {cargo} (fake)"; exit 0; fi\n'
        f'echo "$@" > {tmp_path}/argv\n/usr/bin/env > {tmp_path}/env\nsleep {sleep}\n/bin/cat {stream}\n',
    )
    rustc = write_script(bin_dir / "rustc", "printf 'rustc 1.96.0 (fake)\\nrelease: 1.96.0\\nLLVM 22.1.8\\n'\n")
    linker_path = write_script(bin_dir / "bpf-linker", f'echo "bpf-linker {linker}"\n')
    return Toolchain(
        kind="prebuilt",
        cargo=cargo_path,
        rustc=rustc,
        rustc_version="1.96.0",
        llvm_major=22,
        needs_build_std=False,
        bpf_linker=linker_path,
        linker_llvm_major=22,
    )


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder and a CARGO_HOME of the test's own; no user choice of where cargo builds."""
    for name in ("CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR", "CARGO_BUILD_BUILD_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYAYA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CARGO_HOME", str(tmp_path / "cargo-home"))
    return tmp_path


def make_workspace(root: Path, name: str) -> Path:
    """What ``pyaya new NAME`` lays out, as far as cargo's manifests go."""
    (root / f"{name}-ebpf" / "src").mkdir(parents=True)
    (root / f"{name}-common" / "src").mkdir(parents=True)
    (root / "Cargo.toml").write_text(f'[workspace]\nmembers = ["{name}-ebpf", "{name}-common"]\n')
    (root / f"{name}-ebpf" / "Cargo.toml").write_text(
        f'[package]\nname = "{name}-ebpf"\nversion = "0.1.0"\n\n'
        f'[dependencies]\n{name}-common = {{ path = "../{name}-common" }}\n'
        f'usdt = {{ path = "../crates/usdt" }}\n\n[[bin]]\nname = "{name}"\npath = "src/main.rs"\n'
    )
    (root / f"{name}-common" / "Cargo.toml").write_text(f'[package]\nname = "{name}-common"\nversion = "0.1.0"\n')
    (root / "crates" / "usdt").mkdir(parents=True)
    (root / "crates" / "usdt" / "Cargo.toml").write_text('[package]\nname = "usdt"\nversion = "0.1.0"\n')
    (root / "pyaya.toml").write_text(f'[project]\nname = "{name}"\n')
    return root


# -- the decision ---------------------------------------------------------------------------------------------------


def test_shared_with_a_new_cargo(isolated: Path) -> None:
    tc = fake_toolchain(isolated)
    plan = build_cache.plan(tc, isolated)
    assert plan.cause == "shared"
    assert plan.build_dir is not None
    assert plan.build_dir.parent == isolated / "cache" / "build"
    assert plan.build_dir.name.startswith(f"{bpf_target()}-")
    assert str(plan.build_dir) in plan.reason
    assert plan.apply({})["CARGO_BUILD_BUILD_DIR"] == str(plan.build_dir)


def test_old_cargo_builds_as_before(isolated: Path) -> None:
    plan = build_cache.plan(fake_toolchain(isolated, cargo="1.90.0"), isolated)
    assert plan.build_dir is None
    assert plan.cause == "cargo"
    assert "cargo 1.90 is older than 1.91" in plan.reason
    assert plan.apply({}) == {}


@pytest.mark.parametrize("variable", ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR", "CARGO_BUILD_BUILD_DIR"])
def test_the_users_variables_are_respected(isolated: Path, monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, str(isolated / "mine"))
    plan = build_cache.plan(fake_toolchain(isolated), isolated)
    assert (plan.build_dir, plan.cause) == (None, "user")
    assert f"{variable} is set" in plan.reason


@pytest.mark.parametrize("key", ["build-dir", "target-dir"])
def test_the_projects_cargo_config_is_respected(isolated: Path, key: str) -> None:
    project = isolated / "proj"
    (project / ".cargo").mkdir(parents=True)
    (project / ".cargo" / "config.toml").write_text(f'[build]\n{key} = "elsewhere"\n')
    plan = build_cache.plan(fake_toolchain(isolated), project)
    assert (plan.build_dir, plan.cause) == (None, "user")
    assert f"build.{key} is set in {project / '.cargo' / 'config.toml'}" in plan.reason
    other = isolated / "other"
    other.mkdir()
    assert build_cache.plan(fake_toolchain(isolated), other).build_dir is not None  # only that project's


def test_the_folder_follows_the_toolchain(isolated: Path) -> None:
    tc = fake_toolchain(isolated)
    env = tc.env()
    first = build_cache.toolchain_key(tc, env)
    assert first == build_cache.toolchain_key(tc, env)
    assert build_cache.toolchain_key(tc, {**env, "CARGO_ENCODED_RUSTFLAGS": "-Copt-level=1"}) != first
    newer_linker = fake_toolchain(isolated / "newer", linker="0.14.0")
    assert build_cache.toolchain_key(newer_linker, env) != first


def test_build_sets_the_build_folder(isolated: Path) -> None:
    root = make_workspace(isolated / "proj", "proj")
    obj = root / "target" / bpf_target() / "release" / "proj"
    artifact = {"reason": "compiler-artifact", "target": {"kind": ["bin"], "name": "proj"}, "executable": str(obj)}
    (isolated / "stream.json").write_text(json.dumps(artifact) + "\n")
    tc = fake_toolchain(isolated)
    assert build.build(find_project(root), toolchain=tc, quiet=True) == [obj]
    env = dict(line.split("=", 1) for line in (isolated / "env").read_text().splitlines() if "=" in line)
    folder = Path(env["CARGO_BUILD_BUILD_DIR"])
    assert folder == build_cache.plan(tc, root).build_dir
    assert json.loads((folder / build_cache.RECORD_NAME).read_text())["packages"] == {
        "proj-ebpf": str(root / "proj-ebpf"),
        "proj-common": str(root / "proj-common"),
        "usdt": str(root / "crates" / "usdt"),
    }


def test_piped_builds_say_how_far_they_are(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "PROGRESS_INTERVAL", 0.2)
    root = make_workspace(isolated / "proj", "proj")
    (root / "Cargo.lock").write_text(
        'version = 4\n[[package]]\nname = "proj-ebpf"\nversion = "0.1.0"\ndependencies = ["proj-common", "dep"]\n'
        '[[package]]\nname = "proj-common"\nversion = "0.1.0"\n[[package]]\nname = "dep"\nversion = "1.0.0"\n'
        '[[package]]\nname = "unrelated"\nversion = "1.0.0"\n'
    )
    obj = root / "target" / bpf_target() / "release" / "proj"
    artifact = {"reason": "compiler-artifact", "target": {"kind": ["bin"], "name": "proj"}, "executable": str(obj)}
    (isolated / "stream.json").write_text(json.dumps({**artifact, "package_id": "path+file:///x#1"}) + "\n")
    tc = fake_toolchain(isolated, sleep=1.0)
    err = io.StringIO()
    build.build(find_project(root), toolchain=tc, stream=err)
    lines = err.getvalue().splitlines()
    assert lines
    assert all(line.startswith("building proj-ebpf: ") and line.endswith(" s") for line in lines), lines
    assert "0/3 crates compiled" in lines[0]
    quiet = io.StringIO()
    build.build(find_project(root), toolchain=tc, stream=quiet, progress=False)
    assert quiet.getvalue() == ""


# -- the projects' packages -----------------------------------------------------------------------------------------


def test_local_packages_follow_members_and_path_dependencies(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "foo", "foo")
    (root / "foo-ebpf" / "src" / "bin").mkdir()
    (root / "foo-ebpf" / "src" / "bin" / "extra-tool.rs").write_text("")
    found = build_cache.local_packages(root / "foo-ebpf")
    assert set(found) == {"foo-ebpf", "foo-common", "usdt"}
    assert found["foo-ebpf"].folder == root / "foo-ebpf"
    assert found["foo-ebpf"].crates == {"foo_ebpf", "foo", "extra_tool"}
    assert found["usdt"].folder == root / "crates" / "usdt"


def build_folder_with(folder: Path, *names: str) -> None:
    """Entries cargo leaves for each name in a build folder: host and target profiles."""
    for profile in (folder / "release", folder / bpf_target() / "release", folder / bpf_target() / "debug"):
        for name in names:
            crate = name.replace("-", "_")
            for sub in (".fingerprint", "build"):
                (profile / sub / f"{name}-0123456789abcdef").mkdir(parents=True)
            (profile / "deps").mkdir(parents=True, exist_ok=True)
            for file in (f"lib{crate}-0123456789abcdef.rlib", f"{crate}-0123456789abcdef.d"):
                (profile / "deps" / file).write_text("")
            (profile / "incremental" / f"{crate}-1x2y3z").mkdir(parents=True)


def test_forget_removes_only_that_package(tmp_path: Path) -> None:
    folder = tmp_path / "build"
    build_folder_with(folder, "foo-ebpf", "foo-ebpf-extra", "aya-ebpf")
    removed = build_cache.forget(folder, build_cache.LocalPackage("foo-ebpf", tmp_path, frozenset({"foo_ebpf"})))
    assert removed == 3 * 5
    left = sorted(p.name for p in folder.rglob("*") if "foo" in p.name)
    assert left
    assert all("extra" in name for name in left)
    assert len(list(folder.rglob("aya-ebpf-0123456789abcdef"))) == 6


def test_a_package_of_the_same_name_from_another_project_is_forgotten(tmp_path: Path) -> None:
    folder = tmp_path / "build"
    first = make_workspace(tmp_path / "a" / "foo", "foo")
    second = make_workspace(tmp_path / "b" / "foo", "foo")
    bar = make_workspace(tmp_path / "bar", "bar")
    with build_cache.SharedBuild(folder, first) as shared:
        assert shared.forgotten == []
    build_folder_with(folder, "foo-ebpf", "foo-common", "usdt", "aya-ebpf")
    with build_cache.SharedBuild(folder, first) as shared:  # the same project again: its entries stay
        assert shared.forgotten == []
    with build_cache.SharedBuild(folder, bar) as shared:  # other names: nothing to forget, usdt apart
        assert shared.forgotten == ["usdt"]
    with build_cache.SharedBuild(folder, second) as shared:
        assert sorted(shared.forgotten) == ["foo-common", "foo-ebpf", "usdt"]
    assert not list(folder.rglob("foo-ebpf-0123456789abcdef"))
    assert not list(folder.rglob("libfoo_common-*"))
    assert len(list(folder.rglob("aya-ebpf-0123456789abcdef"))) == 6
    record = json.loads((folder / build_cache.RECORD_NAME).read_text())["packages"]
    assert record["foo-ebpf"] == str(second / "foo-ebpf")
    assert record["bar-ebpf"] == str(bar / "bar-ebpf")


def test_finish_reports_a_reused_package_the_manifests_did_not_show(tmp_path: Path) -> None:
    folder = tmp_path / "build"
    first, second = tmp_path / "a", tmp_path / "b"
    for root in (first, second):
        root.mkdir()
        (root / "Cargo.toml").write_text('[package]\nname = "solo"\nversion = "0.1.0"\n')
    hidden = build_cache.LocalPackage("hidden", first / "hidden", frozenset({"hidden"}))
    with build_cache.SharedBuild(folder, first) as shared:
        assert shared.finish({"hidden": (hidden, False)}) == []
    moved = build_cache.LocalPackage("hidden", second / "hidden", frozenset({"hidden"}))
    with build_cache.SharedBuild(folder, second) as shared:
        assert shared.finish({"hidden": (moved, True)}) == ["hidden"]  # fresh, but the other project's: build again
        assert shared.finish({"hidden": (moved, True)}) == []


def test_a_damaged_record_starts_afresh(tmp_path: Path) -> None:
    folder = tmp_path / "build"
    folder.mkdir()
    root = make_workspace(tmp_path / "foo", "foo")
    for damaged in ("{not json", '{"packages": ["foo-ebpf"]}', "[]"):
        (folder / build_cache.RECORD_NAME).write_text(damaged)
        with build_cache.SharedBuild(folder, root) as shared:
            assert shared.forgotten == []
        assert json.loads((folder / build_cache.RECORD_NAME).read_text())["packages"]["foo-ebpf"] == str(
            root / "foo-ebpf"
        )
