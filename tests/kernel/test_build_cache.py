"""The shared build folder with the real toolchain: new projects made by `pyaya new`, built by `pyaya build` into a
cache folder of the test's own (PYAYA_CACHE). The first build compiles aya-ebpf and the rest once; a second new
project's first build reuses them; two projects of the same package names each get their own object."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import pyaya_cli
from pyaya import build_cache, toolchain
from pyaya.build import build
from pyaya.errors import ToolchainError
from pyaya.project import find_project


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """PYAYA_CACHE for this module (in this process and the `pyaya` commands it runs); skips where cargo cannot
    share a build folder."""
    folder = tmp_path_factory.mktemp("pyaya-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYAYA_CACHE", str(folder))
        for name in ("CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR", "CARGO_BUILD_BUILD_DIR"):
            patch.delenv(name, raising=False)
        try:
            plan = build_cache.plan(toolchain.resolve(), folder)
        except ToolchainError as error:
            pytest.skip(f"no toolchain: {error}")
        if plan.build_dir is None:
            pytest.skip(plan.reason)
        yield folder


def new_project(parent: Path, name: str) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    result = pyaya_cli("new", name, cwd=parent, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    return parent / name


def program_names(obj: Path) -> list[str]:
    result = pyaya_cli("inspect", str(obj), "--json")
    assert result.returncode == 0, result.stderr
    return [program["name"] for program in json.loads(result.stdout)["programs"]]


def test_a_second_project_reuses_the_first_ones_dependencies(cache: Path, tmp_path: Path) -> None:
    first = new_project(tmp_path, "cachefirst")
    piped = pyaya_cli("build", str(first), env=dict(os.environ))
    assert piped.returncode == 0, piped.stderr
    obj = first / "target" / "bpfel-unknown-none" / "release" / "cachefirst"
    assert piped.stdout.split() == [str(obj)]
    # Piped, where cargo draws no bar: a line every few seconds (the cold build takes far longer than one interval).
    progress = [line for line in piped.stderr.splitlines() if line.startswith("building cachefirst-ebpf: ")]
    assert progress, piped.stderr
    assert "crates compiled" in progress[0]
    # The intermediates are in the shared folder, the object in the project's target/.
    assert not (first / "target" / "bpfel-unknown-none" / "release" / "deps").exists()
    (folder,) = (cache / "build").iterdir()
    assert list(folder.glob("*/release/.fingerprint/aya-ebpf-*"))

    second = new_project(tmp_path, "cachesecond")
    shown = io.StringIO()
    (built,) = build(find_project(second), stream=shown, progress=True)  # cargo's status lines, as on a terminal
    assert built == second / "target" / "bpfel-unknown-none" / "release" / "cachesecond"
    assert program_names(built) == ["cachesecond"]
    log = shown.getvalue()
    assert "Compiling cachesecond-ebpf" in log
    assert "Compiling aya-ebpf" not in log, log


def test_projects_with_the_same_package_names_keep_their_own_objects(cache: Path, tmp_path: Path) -> None:
    # Both made before either is built: the second's sources are older than the first's build, so cargo, which
    # names path packages' fingerprints without their folder, would find the first's `twin-ebpf` up to date.
    first = new_project(tmp_path / "a", "twin")
    second = new_project(tmp_path / "b", "twin")
    source = second / "twin-ebpf" / "src" / "main.rs"
    text = source.read_text()
    assert "pub fn twin(" in text
    stat = source.stat()
    source.write_text(text.replace("pub fn twin(", "pub fn twin_other("))
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    objects = {}
    for root in (first, second, first):
        result = pyaya_cli("build", str(root), env=dict(os.environ))
        assert result.returncode == 0, result.stderr
        objects[root] = Path(result.stdout.strip())
        assert program_names(objects[root]) == ["twin" if root == first else "twin_other"]
    assert program_names(objects[second]) == ["twin_other"]  # the first's rebuild left the second's object alone
    (folder,) = (cache / "build").iterdir()
    record = json.loads((folder / build_cache.RECORD_NAME).read_text())["packages"]
    assert record["twin-ebpf"] == str(first / "twin-ebpf")
