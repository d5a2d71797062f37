"""`pyaya.build` against a fake cargo that replays a canned --message-format=json stream."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from _fake_rust import write_script
from pyaya.build import build, ensure_built
from pyaya.errors import BuildError
from pyaya.project import find_project
from pyaya.toolchain import Toolchain, bpf_target


def make_project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "proj-ebpf" / "src").mkdir(parents=True)
    (root / "proj-ebpf" / "src" / "main.rs").write_text("")
    (root / "pyaya.toml").write_text('[project]\nname = "proj"\n')
    return root


def fake_toolchain(tmp_path: Path, stdout_lines: list[dict[str, object]], stderr: str, code: int) -> Toolchain:
    bin_dir = tmp_path / "bin"
    (tmp_path / "stream.json").write_text("".join(json.dumps(line) + "\n" for line in stdout_lines))
    (tmp_path / "stream.err").write_text(stderr)
    cargo = write_script(
        bin_dir / "cargo",
        f'echo "$@" > {tmp_path}/argv\n/usr/bin/env > {tmp_path}/env\n'
        f"/bin/cat {tmp_path}/stream.err >&2\n/bin/cat {tmp_path}/stream.json\nexit {code}\n",
    )
    linker = write_script(bin_dir / "bpf-linker", "exit 0\n")
    return Toolchain(
        kind="prebuilt",
        cargo=cargo,
        rustc=bin_dir / "rustc",
        rustc_version="1.96.0",
        llvm_major=22,
        needs_build_std=False,
        bpf_linker=linker,
        linker_llvm_major=22,
    )


def artifact(path: Path, kind: str = "bin") -> dict[str, object]:
    return {
        "reason": "compiler-artifact",
        "target": {"kind": [kind], "name": path.name},
        "executable": str(path) if kind == "bin" else None,
        "filenames": [str(path)],
        "fresh": False,
    }


def diagnostic(level: str, rendered: str) -> dict[str, object]:
    return {"reason": "compiler-message", "message": {"level": level, "rendered": rendered}}


def test_success(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    obj = root / "target" / bpf_target() / "release" / "proj"
    lines = [
        artifact(tmp_path / "libdep.rlib", kind="lib"),
        diagnostic("warning", "warning: unused variable `x`\n --> proj-ebpf/src/main.rs:3:9\n"),
        artifact(obj),
        {"reason": "build-finished", "success": True},
    ]
    tc = fake_toolchain(tmp_path, lines, "   Compiling aya-ebpf v0.2.1\n    Finished `release` profile\n", 0)
    err = io.StringIO()
    assert build(find_project(root), toolchain=tc, stream=err) == [obj]
    shown = err.getvalue()
    assert "Compiling" not in shown  # piped: no progress
    assert "main.rs:3:9" in shown  # but warnings, always
    argv = (tmp_path / "argv").read_text().split()
    assert argv[:5] == ["build", "--target", bpf_target(), "-p", "proj-ebpf"]
    assert "--release" in argv
    assert "--message-format=json" in argv  # not a TTY
    env = dict(line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines() if "=" in line)
    assert env["RUSTC"] == str(tc.rustc)
    assert env["PATH"].startswith(str(tc.bpf_linker.parent))
    assert "RUSTC_WORKSPACE_WRAPPER" not in env


def test_debug_profile(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    obj = root / "target" / bpf_target() / "debug" / "proj"
    tc = fake_toolchain(tmp_path, [artifact(obj), {"reason": "build-finished", "success": True}], "", 0)
    assert build(find_project(root), toolchain=tc, debug=True, quiet=True) == [obj]
    assert "--release" not in (tmp_path / "argv").read_text().split()


def test_compile_error_carries_diagnostics(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    rendered = "error[E0425]: cannot find value `y` in this scope\n --> proj-ebpf/src/main.rs:7:13\n"
    lines = [diagnostic("error", rendered), {"reason": "build-finished", "success": False}]
    stderr = (
        '   Compiling proj-ebpf v0.1.0\nerror: could not compile `proj-ebpf` (bin "proj") due to 1 previous error\n'
    )
    tc = fake_toolchain(tmp_path, lines, stderr, 101)
    err = io.StringIO()
    with pytest.raises(BuildError) as info:
        build(find_project(root), toolchain=tc, stream=err)
    message = str(info.value)
    assert message.startswith("building proj-ebpf failed (1 error")
    assert "main.rs:7:13" in message
    assert "could not compile" in message
    assert "E0425" not in err.getvalue()  # shown once, through the error


def test_invalid_record_hint(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    lines = [diagnostic("error", "error: linking with `bpf-linker` failed\n  = note: LLVM ERROR: Invalid record\n")]
    tc = fake_toolchain(tmp_path, lines, "", 101)
    with pytest.raises(BuildError, match="rebuild bpf-linker against the same LLVM"):
        build(find_project(root), toolchain=tc, quiet=True)


def test_cargo_level_error(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    stderr = "error: failed to parse manifest at `/x/Cargo.toml`\n\nCaused by:\n  invalid table header\n"
    tc = fake_toolchain(tmp_path, [], stderr, 101)
    with pytest.raises(BuildError) as info:
        build(find_project(root), toolchain=tc, quiet=True)
    assert "cargo exited with status 101" in str(info.value)
    assert "invalid table header" in str(info.value)


def test_missing_object_is_explained(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    other = root / "target" / bpf_target() / "release" / "other"
    tc = fake_toolchain(tmp_path, [artifact(other), {"reason": "build-finished", "success": True}], "", 0)
    with pytest.raises(BuildError, match=r"no object named proj .* \(it built: other\)"):
        build(find_project(root), toolchain=tc, quiet=True)


def test_ensure_built_skips_fresh_objects(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    project = find_project(root)
    obj = project.object_paths()[0]
    tc = fake_toolchain(tmp_path, [artifact(obj), {"reason": "build-finished", "success": True}], "", 0)
    assert ensure_built(project, toolchain=tc, quiet=True) == [obj]
    assert (tmp_path / "argv").exists()  # built: the object was missing
    (tmp_path / "argv").unlink()
    obj.parent.mkdir(parents=True)
    obj.write_bytes(b"\x7fELF")
    assert ensure_built(project, toolchain=tc, quiet=True) == [obj]
    assert not (tmp_path / "argv").exists()  # fresh: no cargo run


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


PROGRESS = (
    "\x1b[1m\x1b[92m   Compiling\x1b[0m proj-ebpf v0.1.0\n"
    "\x1b[1m\x1b[96m    Building\x1b[0m [=====>  ] 60/61: proj(bin)   \r"
    "\x1b[K\x1b[1m\x1b[92m    Finished\x1b[0m `release` profile\n"
    "warning: unused manifest key: package.foo\n"
)


def test_progress_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR"):  # the terminal's colors are the question here (pyaya._color)
        monkeypatch.delenv(name, raising=False)
    root = make_project(tmp_path)
    obj = root / "target" / bpf_target() / "release" / "proj"
    tc = fake_toolchain(tmp_path, [artifact(obj), {"reason": "build-finished", "success": True}], PROGRESS, 0)
    err = _Terminal()
    assert build(find_project(root), toolchain=tc, stream=err) == [obj]
    shown = err.getvalue()
    assert "Compiling\x1b[0m proj-ebpf v0.1.0\n" in shown
    assert "60/61: proj(bin)   \r" in shown  # the progress bar, redrawn in place
    assert "Finished" in shown
    assert shown.rstrip().endswith("unused manifest key: package.foo")  # cargo's own messages after the build
    argv = (tmp_path / "argv").read_text().split()
    assert "--message-format=json-diagnostic-rendered-ansi" in argv
    assert "--color=always" in argv
    env = dict(line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines() if "=" in line)
    assert env["CARGO_TERM_PROGRESS_WHEN"] == "always"


def test_progress_can_be_asked_for_when_piped(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    obj = root / "target" / bpf_target() / "release" / "proj"
    tc = fake_toolchain(tmp_path, [artifact(obj), {"reason": "build-finished", "success": True}], PROGRESS, 0)
    err = io.StringIO()
    build(find_project(root), toolchain=tc, stream=err, progress=True)
    assert "Compiling" in err.getvalue()
    env = dict(line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines() if "=" in line)
    assert "CARGO_TERM_PROGRESS_WHEN" not in env  # no bar without a terminal to draw it on


def test_waiting_for_another_build_is_shown_when_piped(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    obj = root / "target" / bpf_target() / "release" / "proj"
    stderr = "    Blocking waiting for file lock on build directory\n   Compiling proj-ebpf v0.1.0\n"
    tc = fake_toolchain(tmp_path, [artifact(obj), {"reason": "build-finished", "success": True}], stderr, 0)
    err = io.StringIO()
    build(find_project(root), toolchain=tc, stream=err)
    assert err.getvalue() == "    Blocking waiting for file lock on build directory\n"  # cargo's other lines stay out
