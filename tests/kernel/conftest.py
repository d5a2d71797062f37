"""Kernel tests: real programs loaded into this kernel, real events, real assertions.

Every test here needs root and a working bpf(); when they are missing the whole folder skips with the reason
probed from this machine, never passing vacuously.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyaya import features

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
