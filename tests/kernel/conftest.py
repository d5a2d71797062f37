"""Kernel tests: real programs loaded into this kernel, real events, real assertions.

Every test here needs root and a working bpf(); when they are missing the whole folder skips with the reason
probed from this machine, never passing vacuously.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyaya import features

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "crates" / "pyaya-fixtures"
#: A folder where scaffolded and built template projects are kept between runs (``make test`` sets it), so that the
#: runs of the suite inside ``pyaya test``'s VMs find them built instead of compiling aya-ebpf under emulation.
BUILDS = Path(os.environ["PYAYA_TEST_BUILDS"]) if os.environ.get("PYAYA_TEST_BUILDS") else None
#: The cargo target folder of every template build, kept in the checkout's (gitignored) ``target/`` so aya-ebpf and
#: the other dependencies compile once per checkout; cargo locks it, so builds run one after another.
TEMPLATES_TARGET = BUILDS / "target" if BUILDS is not None else REPO / "target" / "kernel-test-templates"


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return f"kernel tests need root (euid is {os.geteuid()})"
    available = features.bpf_syscall_available()
    if not available.ok:
        return f"bpf() is not usable here: {available.reason}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _skip_reason()
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.kernel)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def pyaya_cli(
    *args: str, cwd: Path | None = None, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs the `pyaya` command of this interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "pyaya", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The fixture programs, built once per session with `pyaya build` (the toolchain users get). Inside a
    `pyaya test` guest (``PYAYA_VM_KERNEL``), where cargo's up-to-date check alone takes minutes over 9p, the
    objects the host built are used as they are (`make test-vm` builds them on the host first)."""
    built = FIXTURES / "target" / "bpfel-unknown-none" / "release"
    if os.environ.get("PYAYA_VM_KERNEL") and (built / "trace_btf").is_file():
        return built
    result = pyaya_cli("build", str(FIXTURES))
    assert result.returncode == 0, result.stderr
    return FIXTURES / "target" / "bpfel-unknown-none" / "release"


@dataclass(frozen=True)
class Built:
    """A scaffolded and built project."""

    project: Path
    object_path: Path
    program_types: frozenset[str]
    programs: tuple[str, ...]
    """Its programs' names in the object."""


def _template_key(kind: str) -> str:
    """Changes whenever what `pyaya new --template kind` renders may change: the template's files, the scaffolder."""
    digest = hashlib.sha256()
    for path in sorted([*(REPO / "templates" / kind).rglob("*"), REPO / "python" / "pyaya" / "scaffold.py"]):
        if path.is_file():
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def scaffold_and_build(kind: str, name: str, scratch: Path, env: dict[str, str] | None = None) -> Built:
    """``pyaya new NAME --template KIND``, ``pyaya build`` and ``pyaya inspect``, as a user runs them. With
    :data:`BUILDS` set, the built project is kept there (keyed by the template's contents) and reused."""
    # The template tests' own projects (tpl-KIND) are keyed by kind, other names (execwatch's) by name too.
    label = kind if name == f"tpl-{kind.replace('_', '-')}" else f"{kind}-{name}"
    folder = BUILDS / f"{label}-{_template_key(kind)}" if BUILDS is not None else scratch
    record = folder / "built.json"
    if BUILDS is not None and record.is_file() and "programs" in json.loads(record.read_text()):
        known = json.loads(record.read_text())
        built = Built(
            Path(known["project"]), Path(known["object"]), frozenset(known["types"]), tuple(known["programs"])
        )
        if built.object_path.is_file():
            return built
    if BUILDS is not None:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    created = pyaya_cli("new", name, "--template", kind, cwd=folder, env=env)
    assert created.returncode == 0, created.stderr
    project = folder / name
    build = pyaya_cli("build", str(project), env=env)
    assert build.returncode == 0, f"{kind}: pyaya build failed:\n{build.stderr}"
    object_path = Path(build.stdout.strip().splitlines()[-1])
    target = Path(env["CARGO_TARGET_DIR"]) if env and "CARGO_TARGET_DIR" in env else project / "target"
    crate = name.replace("-", "_")
    if (project / "src" / f"{crate}.bpf.c").is_file():  # a C template: clang's object (pyaya.cbuild)
        assert object_path == target / "bpf" / f"{crate}.bpf.o"
    else:
        assert object_path == target / "bpfel-unknown-none" / "release" / name
    inspected = pyaya_cli("inspect", str(object_path), "--json", env=env)
    assert inspected.returncode == 0, inspected.stderr
    programs = json.loads(inspected.stdout)["programs"]
    types = frozenset(program["type"] for program in programs)
    names = tuple(program["name"] for program in programs)
    if BUILDS is not None:
        record.write_text(
            json.dumps({"project": str(project), "object": str(object_path), "types": sorted(types), "programs": names})
        )
    return Built(project, object_path, types, names)


@pytest.fixture(scope="session")
def execwatch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project scaffolded from the default template and built, shared by the tests that run it."""
    name = "ktest" if BUILDS is not None else f"ktest{os.getpid() % 100000}"
    return scaffold_and_build("tracepoint", name, tmp_path_factory.mktemp("projects")).project


@pytest.fixture(scope="session")
def cargo_env() -> dict[str, str]:
    """The environment of every pyaya command run on a template's project: one CARGO_TARGET_DIR for all builds."""
    TEMPLATES_TARGET.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "CARGO_TARGET_DIR": str(TEMPLATES_TARGET)}


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, cargo_env: dict[str, str]) -> Callable[[str], Built]:
    """Scaffolds and builds a template the first time a test of the session asks for it; later ones reuse it
    (the template tests and the SIGKILL matrix share them)."""
    root = tmp_path_factory.mktemp("template-projects")
    cache: dict[str, Built] = {}

    def get(kind: str) -> Built:
        if kind not in cache:
            cache[kind] = scaffold_and_build(kind, f"tpl-{kind.replace('_', '-')}", root / kind, env=cargo_env)
        return cache[kind]

    return get
