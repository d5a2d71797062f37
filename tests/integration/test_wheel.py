"""The built wheel, installed into a clean virtualenv, scaffolds and builds a project: templates ship inside it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    maturin = shutil.which("maturin", path=str(Path(sys.executable).parent))
    if maturin is None:
        pytest.skip("maturin is not installed in this environment (run `make setup`)")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([maturin, "build", "--release", "--quiet", "--out", str(out)], cwd=REPO, check=True)
    (built,) = out.glob("pyaya-*.whl")
    return built


def test_wheel_is_abi3_and_carries_templates(wheel: Path) -> None:
    assert "-abi3-" in wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert "pyaya/templates/tracepoint/template.toml" in names
    assert "pyaya/templates/tracepoint/{{name}}-ebpf/src/main.rs" in names
    assert "pyaya/crates/pyaya-usdt/src/lib.rs" in names  # copied into usdt projects
    assert "pyaya/crates/pyaya-fields/src/lib.rs" in names  # copied into the tracepoint, tp_btf and lsm projects
    assert any(name.startswith("pyaya/_native") and name.endswith(".so") for name in names)
    assert "pyaya/_native.pyi" in names
    assert "pyaya/py.typed" in names


def test_installed_wheel_scaffolds_and_builds(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)], check=True)
    pyaya = str(venv / "bin" / "pyaya")
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}

    subprocess.run([pyaya, "new", "wheeltest"], cwd=tmp_path, check=True, env=env)
    built = subprocess.run(
        [pyaya, "build", "wheeltest"], cwd=tmp_path, check=True, env=env, capture_output=True, text=True
    )
    obj = Path(built.stdout.strip())
    assert obj == tmp_path / "wheeltest" / "target" / "bpfel-unknown-none" / "release" / "wheeltest"
    assert obj.read_bytes()[:4] == b"\x7fELF"

    inspected = subprocess.run([pyaya, "inspect", str(obj), "--json"], check=True, env=env, capture_output=True)
    report = json.loads(inspected.stdout)
    assert [p["name"] for p in report["programs"]] == ["wheeltest"]
    assert {"EVENTS", "EXEC_COUNTS"} <= {m["name"] for m in report["maps"]}

    # A template's shipped crate comes out of the wheel too (the usdt template's pyaya-usdt).
    subprocess.run(
        [pyaya, "new", "usdtwheel", "-t", "usdt", "--no-check", "--target", "/usr/bin/python3"],
        cwd=tmp_path,
        check=True,
        env=env,
    )
    assert (tmp_path / "usdtwheel" / "pyaya-usdt" / "src" / "lib.rs").read_bytes() == (
        REPO / "crates" / "pyaya-usdt" / "src" / "lib.rs"
    ).read_bytes()
