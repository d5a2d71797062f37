"""Building a project's BPF objects: cargo with the chosen toolchain, read through ``--message-format=json``.

The build is the one aya-build 0.2 runs (``cargo build --release --target bpfel-unknown-none -p <package>`` with
aya's RUSTFLAGS, see :meth:`pyaya.toolchain.Toolchain.env`). Progress lines and warnings are shown as they happen;
errors are gathered into the :class:`~pyaya.errors.BuildError`, so they are shown once, with file:line.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pyaya.errors import BuildError, ToolchainError
from pyaya.project import Project
from pyaya.toolchain import Toolchain, resolve

__all__ = ["BuildResult", "build", "ensure_built"]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Cargo's own progress lines on stderr ("   Compiling aya-ebpf v0.2.1").
_STATUS = re.compile(
    r"^\s*(Compiling|Finished|Updating|Locking|Downloading|Downloaded|Adding|Blocking|Fresh|Checking|Building|"
    r"Packaging|Unpacking|Removing|Updated)\b"
)


@dataclass
class BuildResult:
    """What one cargo run produced."""

    objects: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cargo_messages: list[str] = field(default_factory=list)
    """cargo's own non-progress stderr lines (its errors, "Caused by:" chains, manifest warnings)."""
    success: bool | None = None
    """From cargo's ``build-finished`` message; None when cargo never got that far."""


def _plain(text: str) -> str:
    return _ANSI.sub("", text)


def _is_tty(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):
        return False


def _echo(stream: TextIO | None, text: str) -> None:
    if stream is None:
        return
    stream.write(text if text.endswith("\n") else text + "\n")
    stream.flush()


def _read_stderr(pipe: Iterable[str], stream: TextIO | None, result: BuildResult) -> None:
    for raw in pipe:
        line = raw.rstrip("\n")
        if _STATUS.match(_plain(line)):
            _echo(stream, line)
        elif line.strip() or result.cargo_messages:
            result.cargo_messages.append(line)


def _handle(message: dict[str, Any], stream: TextIO | None, result: BuildResult) -> None:
    reason = message.get("reason")
    if reason == "compiler-message":
        diagnostic = message.get("message") or {}
        rendered = diagnostic.get("rendered")
        if not rendered:
            return
        if diagnostic.get("level") in ("error", "error: internal compiler error", "failure-note"):
            result.errors.append(rendered.rstrip())
        else:
            result.warnings.append(rendered.rstrip())
            _echo(stream, rendered.rstrip())
    elif reason == "compiler-artifact":
        executable = message.get("executable")
        kinds = (message.get("target") or {}).get("kind") or []
        if executable and "bin" in kinds:
            result.objects.append(Path(executable))
    elif reason == "build-finished":
        result.success = bool(message.get("success"))


def _run_cargo(argv: list[str], env: dict[str, str], cwd: Path, stream: TextIO | None) -> tuple[int, BuildResult]:
    result = BuildResult()
    try:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
    except OSError as error:
        raise ToolchainError(f"cannot run {argv[0]}: {error.strerror or error}") from None
    assert process.stdout is not None
    assert process.stderr is not None
    reader = threading.Thread(target=_read_stderr, args=(process.stderr, stream, result), daemon=True)
    reader.start()
    try:
        for line in process.stdout:
            if not line.startswith("{"):
                continue
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(message, dict):
                _handle(message, stream, result)
        code = process.wait()
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        reader.join(timeout=5)
        process.stdout.close()
        process.stderr.close()
    return code, result


def _failure_message(project: Project, toolchain: Toolchain, code: int, result: BuildResult) -> str:
    count = sum(1 for text in result.errors if _plain(text).startswith("error"))
    what = f"{count} error{'s' if count != 1 else ''}" if count else f"cargo exited with status {code}"
    parts = [f"building {project.package} failed ({what}; toolchain {toolchain.kind}, rustc {toolchain.rustc})"]
    parts += result.errors
    cargo_text = "\n".join(result.cargo_messages).strip()
    if cargo_text:
        parts.append(cargo_text)
    text = _plain("\n".join(parts))
    if "Invalid record" in text:
        parts.append(
            f'hint: "Invalid record" means bpf-linker ({toolchain.bpf_linker}, LLVM '
            f"{toolchain.linker_llvm_major or 'unknown'}) cannot read rustc's LLVM {toolchain.llvm_major} bitcode: "
            "rebuild bpf-linker against the same LLVM as rustc (see `pyaya doctor`)"
        )
    elif "linker `bpf-linker` not found" in text:
        parts.append("hint: install bpf-linker (see `pyaya doctor`)")
    return "\n".join(parts)


def build(
    project: Project,
    *,
    debug: bool = False,
    toolchain: Toolchain | str | None = None,
    stream: TextIO | None = None,
    quiet: bool = False,
) -> list[Path]:
    """Build the project's BPF objects; return their paths.

    ``toolchain`` is a resolved :class:`Toolchain`, a kind (``auto``, ``nightly``, ``prebuilt``, ``bootstrap``) or
    None (the project's ``[build] toolchain``, else auto). Progress and warnings go to ``stream`` (default: stderr),
    or nowhere when ``quiet``. Raises :class:`BuildError` with the compiler's diagnostics, or :class:`ToolchainError`.
    """
    stream = None if quiet else (stream or sys.stderr)
    chosen = toolchain if isinstance(toolchain, Toolchain) else resolve(toolchain, project_kind=project.toolchain)
    for note in chosen.notes:
        _echo(stream, f"warning: {note}")
    tty = _is_tty(stream)
    message_format = "json-diagnostic-rendered-ansi" if tty else "json"
    argv, env = chosen.build_command(project.package, release=not debug, message_format=message_format)
    if tty:
        argv.append("--color=always")
    code, result = _run_cargo(argv, env, project.root, stream)
    if code != 0 or result.success is False:
        raise BuildError(_failure_message(project, chosen, code, result))
    if result.cargo_messages:
        _echo(stream, "\n".join(result.cargo_messages))
    built = {path.name: path for path in result.objects}
    missing = [name for name in project.objects if name not in built]
    if missing:
        found = ", ".join(sorted(built)) or "none"
        raise BuildError(
            f"cargo built no object named {', '.join(missing)} for package {project.package} (it built: {found}): "
            f"fix [build] objects in {project.config_path} to name the package's bin targets"
        )
    return [built[name] for name in project.objects]


def ensure_built(
    project: Project,
    *,
    debug: bool = False,
    toolchain: Toolchain | str | None = None,
    stream: TextIO | None = None,
    quiet: bool = False,
) -> list[Path]:
    """The project's objects, building them first when they are missing or older than their sources."""
    profile = "debug" if debug else "release"
    if not project.is_stale(profile):
        return project.object_paths(profile)
    return build(project, debug=debug, toolchain=toolchain, stream=stream, quiet=quiet)
