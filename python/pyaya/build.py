"""Building a project's BPF objects: cargo with the chosen toolchain, read through ``--message-format=json``.

The build is the one aya-build 0.2 runs (``cargo build --release --target bpfel-unknown-none -p <package>`` with
aya's RUSTFLAGS, see :meth:`pyaya.toolchain.Toolchain.env`). On a terminal, cargo's status lines and progress bar
are shown as they happen and diagnostics keep their colors (``--message-format=json-diagnostic-rendered-ansi``);
piped, warnings are, cargo's "Blocking waiting for file lock" lines, and every few seconds a line saying how far
the build is (:data:`PROGRESS_INTERVAL`), so that a CI log shows a long first build is alive. Errors are gathered
into the :class:`~pyaya.errors.BuildError`, so they are shown once, with file:line:column.

Dependencies are compiled into the toolchain's shared build folder where cargo can (:mod:`pyaya.build_cache`);
the objects stay in the project's ``target/``. A project's C programs (``*.bpf.c``) are built by clang after the
cargo package, or alone when the project has no cargo workspace (:mod:`pyaya.cbuild`).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO
from urllib.parse import unquote, urlsplit

from pyaya import build_cache
from pyaya._color import color_enabled
from pyaya.errors import BuildError, ToolchainError
from pyaya.project import Project
from pyaya.toolchain import Toolchain, resolve

__all__ = ["PROGRESS_INTERVAL", "BuildResult", "build", "ensure_built"]

PROGRESS_INTERVAL = 5.0
"""Seconds between two progress lines of a build whose output is not a terminal."""

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
    units: set[str] = field(default_factory=set)
    """The package ids of the ``compiler-artifact`` messages so far (the progress line counts them)."""
    local: dict[str, tuple[build_cache.LocalPackage, bool]] = field(default_factory=dict)
    """Path packages built, by name: the package (its folder, its targets' crate names) and whether every one of its
    units was fresh."""


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


# A line of cargo's that a progress bar may still be drawn over: clear it first (what cargo itself does).
_CLEAR_LINE = "\r\x1b[K"
_SEGMENT_END = re.compile(rb"[\r\n]")


@dataclass
class _Output:
    """Where a cargo run's human-readable output goes."""

    stream: TextIO | None
    progress: bool
    """Show cargo's status lines ("Compiling ...") and progress bar as they come (on a terminal)."""
    tty: bool
    heartbeat: bool = False
    """Write a progress line every :data:`PROGRESS_INTERVAL` seconds (piped output, where cargo draws no bar)."""

    def status(self, text: str) -> None:
        if self.progress and self.stream is not None:
            self.stream.write(text)
            self.stream.flush()

    def message(self, text: str) -> None:
        _echo(self.stream, (_CLEAR_LINE if self.tty else "") + text)


def _read_stderr(pipe: IO[bytes], output: _Output, result: BuildResult) -> None:
    """Cargo's stderr: status lines and the progress bar (segments ending in a carriage return) are shown live;
    anything else (cargo's own errors and warnings) is kept for after the build."""
    pending = b""
    while True:
        chunk = pipe.read1(65536) if hasattr(pipe, "read1") else pipe.read(65536)
        if not chunk:
            break
        pending += chunk
        while (end := _SEGMENT_END.search(pending)) is not None:
            segment, pending = pending[: end.end()], pending[end.end() :]
            _stderr_segment(segment.decode("utf-8", errors="replace"), output, result)
    if pending:
        _stderr_segment(pending.decode("utf-8", errors="replace") + "\n", output, result)


def _stderr_segment(segment: str, output: _Output, result: BuildResult) -> None:
    if segment.endswith("\r"):  # the progress bar, redrawn in place
        output.status(segment)
        return
    line = segment.rstrip("\n")
    if _STATUS.match(_plain(line)):
        if output.progress:
            output.status(line + "\n")
        elif _plain(line).lstrip().startswith("Blocking"):  # waiting for another build: worth saying, piped too
            output.message(line)
    elif _plain(line).strip() or result.cargo_messages:
        result.cargo_messages.append(line)


def _handle(message: dict[str, Any], output: _Output, result: BuildResult) -> None:
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
            output.message(rendered.rstrip())
    elif reason == "compiler-artifact":
        executable = message.get("executable")
        target = message.get("target") or {}
        kinds = target.get("kind") or []
        if executable and "bin" in kinds:
            result.objects.append(Path(executable))
        package_id = str(message.get("package_id") or "")
        result.units.add(package_id)
        _note_local(message, package_id, str(target.get("name") or ""), result)
    elif reason == "build-finished":
        result.success = bool(message.get("success"))


def _note_local(message: dict[str, Any], package_id: str, target: str, result: BuildResult) -> None:
    """Keep a path package's artifact (``path+file:///.../foo-ebpf#0.1.0``, or ``#name@0.1.0`` when the name is
    not the folder's) in ``result.local``, for :meth:`pyaya.build_cache.SharedBuild.finish`."""
    if not package_id.startswith("path+file://") or not message.get("manifest_path"):
        return
    url, _, fragment = package_id.partition("#")
    name = fragment.split("@")[0] if "@" in fragment else Path(unquote(urlsplit(url).path)).name
    folder = Path(str(message["manifest_path"])).parent
    known = result.local.get(name)
    crates = {target.replace("-", "_")} | (known[0].crates if known else set())
    fresh = bool(message.get("fresh")) and (known[1] if known else True)
    result.local[name] = (build_cache.LocalPackage(name, folder, frozenset(crates)), fresh)


@contextlib.contextmanager
def _heartbeat(package: str, root: Path, result: BuildResult, output: _Output) -> Iterator[None]:
    """A line every :data:`PROGRESS_INTERVAL` seconds while the build runs: packages compiled of those planned."""
    stop = threading.Event()
    started = time.monotonic()

    def beat() -> None:
        total: int | None = None
        while not stop.wait(PROGRESS_INTERVAL):
            total = total or build_cache.planned_packages(root, package)
            done = len(result.units)
            counted = f"{done}/{max(total, done)}" if total else str(done)
            output.message(f"building {package}: {counted} crates compiled, {time.monotonic() - started:.0f} s")

    thread = threading.Thread(target=beat, name="pyaya-build-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _run_cargo(
    argv: list[str], env: dict[str, str], cwd: Path, output: _Output, label: str = ""
) -> tuple[int, BuildResult]:
    result = BuildResult()
    if output.progress and output.tty:
        # cargo draws its progress bar only on a terminal; its stderr is a pipe here, so ask for it explicitly.
        env = {
            **env,
            "CARGO_TERM_PROGRESS_WHEN": "always",
            "CARGO_TERM_PROGRESS_WIDTH": str(shutil.get_terminal_size().columns),
        }
    try:
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except OSError as error:
        raise ToolchainError(f"cannot run {argv[0]}: {error.strerror or error}") from None
    assert process.stdout is not None
    assert process.stderr is not None
    reader = threading.Thread(target=_read_stderr, args=(process.stderr, output, result), daemon=True)
    reader.start()
    beating = _heartbeat(label, cwd, result, output) if output.heartbeat else contextlib.nullcontext()
    try:
        with beating:
            for line in io.TextIOWrapper(process.stdout, encoding="utf-8", errors="replace"):
                if not line.startswith("{"):
                    continue
                try:
                    message = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(message, dict):
                    _handle(message, output, result)
            code = process.wait()
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        reader.join(timeout=5)
        process.stdout.close()
        process.stderr.close()
    if output.progress and output.tty:
        output.status(_CLEAR_LINE)
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


@contextlib.contextmanager
def _shared_build(
    cache: build_cache.BuildPlan, project: Project, env: dict[str, str], output: _Output
) -> Iterator[build_cache.SharedBuild | None]:
    """The shared build folder set in ``env`` and entered, or None (not shared, or not writable: then the build is
    the project's own, as with an old cargo)."""
    if cache.build_dir is None:
        yield None
        return
    try:
        shared = build_cache.SharedBuild(cache.build_dir, project.root, notice=output.message)
        shared.__enter__()
    except OSError as error:
        output.message(
            f"warning: cannot use the shared build folder {cache.build_dir} ({error.strerror or error}): building "
            f"in {project.target_dir}; set PYAYA_CACHE to a writable folder to share compiled dependencies"
        )
        yield None
        return
    cache.apply(env)
    try:
        yield shared
    finally:
        shared.__exit__(None, None, None)


def build(
    project: Project,
    *,
    debug: bool = False,
    toolchain: Toolchain | str | None = None,
    stream: TextIO | None = None,
    quiet: bool = False,
    progress: bool | None = None,
) -> list[Path]:
    """Build the project's BPF objects (the cargo package's, then the C programs'); return their paths.

    ``toolchain`` is a resolved :class:`Toolchain`, a kind (``auto``, ``nightly``, ``prebuilt``, ``bootstrap``) or
    None (the project's ``[build] toolchain``, else auto). Warnings go to ``stream`` (default: stderr), or nowhere
    when ``quiet``; so do cargo's status lines and progress bar when ``progress`` (default: when ``stream`` is a
    terminal). Piped, unless ``progress`` is False, a line every :data:`PROGRESS_INTERVAL` seconds says how far the
    build is. On a terminal, diagnostics keep the compiler's colors. Raises :class:`BuildError` with the compiler's
    diagnostics (file:line:column), or :class:`ToolchainError`.
    """
    stream = None if quiet else (stream or sys.stderr)
    tty = _is_tty(stream)
    output = _Output(
        stream,
        progress=(tty if progress is None else progress) and stream is not None,
        tty=tty,
        heartbeat=stream is not None and not tty and progress is not False,
    )
    colored = color_enabled(stream)  # NO_COLOR / FORCE_COLOR as for every command (pyaya._color)
    rust_objects = _build_rust(project, debug, toolchain, output, colored) if project.rust else []
    c_objects: list[Path] = []
    if project.c_sources:
        from pyaya.cbuild import build_c  # noqa: PLC0415 - only C projects need it

        c_objects = build_c(
            project,
            status=lambda line: output.status(line + "\n"),
            warn=lambda text: _echo(stream, text),
            colored=colored,
        )
    objects = rust_objects + c_objects
    _after_build(objects, stream, rust=frozenset(rust_objects))
    return objects


def _build_rust(
    project: Project, debug: bool, toolchain: Toolchain | str | None, output: _Output, colored: bool
) -> list[Path]:
    stream = output.stream
    chosen = toolchain if isinstance(toolchain, Toolchain) else resolve(toolchain, project_kind=project.toolchain)
    for note in chosen.notes:
        _echo(stream, f"warning: {note}")
    message_format = "json-diagnostic-rendered-ansi" if colored else "json"
    argv, env = chosen.build_command(project.package, release=not debug, message_format=message_format)
    argv.append("--color=always" if colored else "--color=never")
    cache = build_cache.plan(chosen, project.root, env)
    with _shared_build(cache, project, env, output) as shared:
        code, result = _run_cargo(argv, env, project.root, output, project.package)
        if shared is not None and code == 0 and result.success is not False:
            stale = shared.finish(result.local)
            if stale:  # another project's package of the same name was reused: built again, from this one's sources
                code, result = _run_cargo(argv, env, project.root, output, project.package)
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


def _after_build(objects: list[Path], stream: TextIO | None, *, rust: frozenset[Path]) -> None:
    """The passes over each built object (:func:`_make_loader_neutral` for cargo's, :func:`_padded_key_warnings`
    for all), skipped for an object unchanged since they last ran: its warnings are kept beside it (``NAME.pyaya``,
    size and mtime of the object they are about) and shown again, as cargo shows a fresh crate's warnings again."""
    for path in objects:
        stamp = path.with_name(path.name + ".pyaya")
        warnings = _checked(path, stamp)
        if warnings is None:
            if path in rust:
                _make_loader_neutral(path)
            warnings = _padded_key_warnings(path)
            try:
                done = path.stat()
                stamp.write_text(json.dumps({"size": done.st_size, "mtime_ns": done.st_mtime_ns, "warnings": warnings}))
            except OSError:  # a read-only target folder: the passes run again next time
                pass
        for warning in warnings:
            _echo(stream, warning)


def _checked(path: Path, stamp: Path) -> list[str] | None:
    """The warnings recorded for ``path`` when it is the object they were recorded for, else None."""
    try:
        known = json.loads(stamp.read_text())
        now = path.stat()
        if known["size"] == now.st_size and known["mtime_ns"] == now.st_mtime_ns:
            return [str(warning) for warning in known["warnings"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _make_loader_neutral(path: Path) -> None:
    """What aya-ebpf emits and libbpf refuses, fixed in a built object (:mod:`pyaya._btf_fixups`). An object pyaya
    cannot read is left as it is: loading it will say what is wrong."""
    from pyaya._btf_fixups import fix_file  # noqa: PLC0415 - only once something was built
    from pyaya.errors import PyayaError  # noqa: PLC0415

    with contextlib.suppress(PyayaError, OSError, struct.error):
        fix_file(path)


def _padded_key_warnings(path: Path) -> list[str]:
    """A warning per hashed map key with implicit padding (:mod:`pyaya.keycheck`): a silent-miss bug the compiler
    cannot see. An object pyaya cannot read is not the build's failure: loading it will say what is wrong."""
    from pyaya.errors import PyayaError  # noqa: PLC0415
    from pyaya.keycheck import padded_keys  # noqa: PLC0415 - only once something was built

    try:
        padded = padded_keys(path)
    except PyayaError:
        return []
    return [f"warning: {path.name}: {key}" for key in padded]


def ensure_built(
    project: Project,
    *,
    debug: bool = False,
    toolchain: Toolchain | str | None = None,
    stream: TextIO | None = None,
    quiet: bool = False,
    progress: bool | None = None,
) -> list[Path]:
    """The project's objects, building them first when they are missing or older than their sources."""
    profile = "debug" if debug else "release"
    if not project.is_stale(profile):
        return project.object_paths(profile)
    return build(project, debug=debug, toolchain=toolchain, stream=stream, quiet=quiet, progress=progress)
