"""Kernel tests: real programs loaded into this kernel, real events, real assertions.

Every test here needs root and a working bpf(); when they are missing the whole folder skips with the reason
probed from this machine, never passing vacuously.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pyaya import features

if TYPE_CHECKING:
    from _templates import Built

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "crates" / "pyaya-fixtures"


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


def pyaya_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Runs the `pyaya` command of this interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "pyaya", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The fixture programs, built once per session with `pyaya build` (the toolchain users get)."""
    result = pyaya_cli("build", str(FIXTURES))
    assert result.returncode == 0, result.stderr
    return FIXTURES / "target" / "bpfel-unknown-none" / "release"


@pytest.fixture(scope="session")
def execwatch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project scaffolded from the default template and built, shared by the tests that run it."""
    root = tmp_path_factory.mktemp("projects")
    name = f"ktest{os.getpid() % 100000}"
    created = pyaya_cli("new", name, cwd=root)
    assert created.returncode == 0, created.stderr
    project = root / name
    built = pyaya_cli("build", str(project))
    assert built.returncode == 0, built.stderr
    assert built.stdout.strip() == str(project / "target" / "bpfel-unknown-none" / "release" / name)
    return project


@pytest.fixture(scope="session")
def cargo_env() -> dict[str, str]:
    """The environment of every pyaya command run on a template's project: one CARGO_TARGET_DIR for all builds."""
    from _templates import TARGET_DIR  # noqa: PLC0415 - the template helpers list the templates at import

    TARGET_DIR.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "CARGO_TARGET_DIR": str(TARGET_DIR)}


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, cargo_env: dict[str, str]) -> Callable[[str], Built]:
    """Scaffolds and builds a template the first time a test of the session asks for it; later ones reuse it."""
    from _templates import build_template  # noqa: PLC0415

    root = tmp_path_factory.mktemp("template-projects")
    cache: dict[str, Built] = {}

    def get(kind: str) -> Built:
        if kind not in cache:
            cache[kind] = build_template(kind, root, cargo_env)
        return cache[kind]

    return get
