"""A template rendered with a hostile option value builds for real and the value arrives byte-exact: `pyaya new
--no-check` writes a raw tracepoint name built to break out of Rust and Python strings, `pyaya build` compiles it
with the real toolchain, the object's program section is exactly ``raw_tp/<value>``, main.py holds the value, and
the program loads and runs in this kernel."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pyaya
from pyaya import Ebpf

#: Closes a Rust string and an attribute, holds placeholders, quotes of both languages, a backslash, a tab, a
#: newline and non-ASCII text. (No NUL: an ELF section name ends at one.)
HOSTILE = 'x"); compile_error!("injected"); ("\\{{name}}}} \'\'\' """ é\ttab\nnew line'


def _pyaya(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyaya", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )


def test_hostile_raw_tracepoint_name_builds_and_arrives_exactly(tmp_path: Path) -> None:
    env = {**os.environ, "CARGO_TARGET_DIR": str(tmp_path / "target")}
    created = _pyaya(
        "new", "hostile", "-t", "raw_tracepoint", "--no-check", "--set", f"tracepoint_name={HOSTILE}", cwd=tmp_path
    )
    assert created.returncode == 0, created.stderr
    project = tmp_path / "hostile"

    main = ast.parse((project / "main.py").read_text(encoding="utf-8"))
    constants = {
        node.targets[0].id: node.value.value
        for node in main.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
    }
    strings = {node.value for node in ast.walk(main) if isinstance(node, ast.Constant)}
    assert HOSTILE in strings, constants

    built = _pyaya("build", str(project), env=env)
    assert built.returncode == 0, built.stderr
    object_path = Path(built.stdout.strip().splitlines()[-1])
    inspected = _pyaya("inspect", str(object_path), "--json", env=env)
    assert inspected.returncode == 0, inspected.stderr
    sections = {program["name"]: program["section"] for program in json.loads(inspected.stdout)["programs"]}
    assert sections == {"hostile": f"raw_tp/{HOSTILE}"}

    with Ebpf.load_file(object_path) as bpf:
        program = bpf.programs["hostile"]
        assert isinstance(program, pyaya.RawTracePoint)
        program.load()
        result = program.test_run(ctx=bytes(8 * 6))
        assert result.return_value == 0
