"""``pyaya run [PATH] [OPTIONS] [-- PROJECT-ARGS]``: build when stale, then run the project's ``main.py``.

Everything after ``--`` goes to ``main.py`` untouched (its own options, see ``pyaya run --help`` inside a project,
which appends ``main.py --help``). ``-p PID`` and ``interval``/``count`` reach main.py only when the project's
``[run] options`` says main.py honours them; otherwise ``pyaya run`` refuses them before building (exit 2).

A plain run becomes ``main.py`` in the same process (the console script runs it in its own interpreter; this
Typer command, reached for help and usage errors, replaces itself with it: see :mod:`pyaya._launch`). With
``--watch``, the project's sources are polled (their modification times, every half second: no inotify
dependency, and it works on every file system); on a change the project is rebuilt while the running ``main.py``
keeps tracing, then the new ``main.py`` starts beside it and loads its object; only then is the old one stopped
the way Ctrl-C stops it (its maps are printed, every link detached) and the new one attaches (see
:mod:`pyaya._handoff`). A failing build, or a new ``main.py`` that fails to load, leaves the old one tracing and
keeps watching.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from pyaya._handoff import Handoff
from pyaya._launch import Supervised
from pyaya.cli._common import handle_errors, note
from pyaya.cli._runcore import ArgvFor, BadValue, prepare, start
from pyaya.cli._runcore import objects as built_objects
from pyaya.errors import PyayaError

if TYPE_CHECKING:
    from pyaya.project import Project

__all__ = ["RunCommand", "project_help", "run"]

#: How long ``pyaya run --help`` waits for ``main.py --help``.
HELP_TIMEOUT = 10.0

#: How often ``--watch`` looks at the sources, and how long a stopping main.py may take before it is killed.
POLL_SECONDS = 0.5
STOP_TIMEOUT = 10.0
#: How long a new main.py may take to report its load before ``--watch`` stops the old one anyway (a main.py that
#: loads nothing through :class:`pyaya.runtime.Session` never reports).
HANDOFF_TIMEOUT = 10.0
_SKIP_DIRS = frozenset({"target", ".git", "__pycache__", ".venv", "venv", ".mypy_cache", ".pytest_cache"})


def _watched_files(project: Project) -> Iterator[Path]:
    """What a change to restarts the run: the build's inputs, and the project's Python files."""
    yield from project.source_files()
    yield project.main
    for folder, dirs, files in os.walk(project.root):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")]
        for file in files:
            if file.endswith(".py"):
                yield Path(folder) / file


def snapshot(project: Project) -> dict[Path, int]:
    """Modification time (ns) of every watched file; a file removed while walking is left out."""
    times: dict[Path, int] = {}
    for path in _watched_files(project):
        try:
            times[path] = path.stat().st_mtime_ns
        except OSError:
            continue
    return times


def _changed(before: dict[Path, int], after: dict[Path, int]) -> list[Path]:
    return sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))


def _wait(child: subprocess.Popen[bytes]) -> int:
    """Wait for ``child``; a Ctrl-C that reaches this process while it stops is for it too, so keep waiting."""
    code: int | None = None
    while code is None:
        try:
            code = child.wait()
        except KeyboardInterrupt:
            continue
    Supervised.forget(child)
    return 128 - code if code < 0 else code


def _stop(child: subprocess.Popen[bytes]) -> int:
    """Stop ``child`` as Ctrl-C would: SIGTERM, which :class:`pyaya.runtime.Session` handles like Ctrl-C (it detaches
    and prints its maps) and which, unlike SIGINT, a shell never starts a background process ignoring. Kill it if
    it hangs."""
    Supervised.terminate(child)
    try:
        child.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        child.kill()
    return _wait(child)


class _Watch:
    """What ``--watch`` keeps between restarts: the main.py tracing now with its handoff channel (kept open while it
    runs, so that whatever it says finds a reader), and whether the fallback was said."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.running: subprocess.Popen[bytes] | None = None
        self.fallback_said = False
        self._channel: Handoff | None = None

    def hand_over(self, argv: list[str]) -> None:
        """Start ``argv`` (the new main.py) beside the running one and let it take over once its object is loaded
        (see :mod:`pyaya._handoff`): stop the running one, then tell the new one to attach. A new one that fails
        before that leaves the running one tracing."""
        name = self.project.main.name
        handoff = Handoff()
        try:
            new = Supervised.start(argv, self.project.root, handoff=handoff)
        except BaseException:
            handoff.close()
            raise
        handoff.started()
        if self.running is None:
            handoff.go()  # nothing to stop: it attaches as soon as it has loaded; a failure is an exit like any other
            self._replace(new, handoff)
            return
        deadline = time.monotonic() + HANDOFF_TIMEOUT
        try:
            while True:
                if Supervised.stop_requested:
                    raise KeyboardInterrupt  # forwarded to both by the handler: stop once they have stopped
                left = deadline - time.monotonic()
                message = handoff.receive()
                if message is None and left > 0:
                    Supervised.pause(min(left, POLL_SECONDS), handoff.fileno())
                    continue
                if message is None:
                    self._fall_back(f"{name} did not report its load within {HANDOFF_TIMEOUT:g}s")
                    handoff.go()
                    self._replace(new, handoff)
                    return
                word, detail = message
                if word == "loaded":
                    _stop(self.running)
                    handoff.go()
                    self._replace(new, handoff)
                    return
                if word == "failed":
                    handoff.close()
                    self._failed(new, detail)
                    return
                if word == "gone":
                    handoff.close()
                    self._gone(new)
                    return
        except BaseException:
            handoff.close()
            raise

    def _replace(self, new: subprocess.Popen[bytes], handoff: Handoff) -> None:
        self.close()
        self.running = new
        self._channel = handoff

    def close(self) -> None:
        """The running main.py has stopped: close its channel."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def _fall_back(self, why: str) -> None:
        """The new main.py does not take part in the handoff: stop the running one, as before handoffs."""
        assert self.running is not None
        if not self.fallback_said:
            self.fallback_said = True
            note(
                f"{why} (it loads nothing through pyaya.runtime.Session, or its load takes longer): "
                "the old one is stopped now, and both ran meanwhile"
            )
        _stop(self.running)
        self.running = None
        self.close()

    def _failed(self, new: subprocess.Popen[bytes], detail: str) -> None:
        name = self.project.main.name
        # It is on its way out, printing its error: a SIGTERM now could cut that short. Stop it only if it lingers.
        try:
            new.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _stop(new)
        code = _wait(new)
        note(f"the new {name} failed to load ({detail}; exit status {code}): the running one keeps tracing")

    def _gone(self, new: subprocess.Popen[bytes]) -> None:
        name = self.project.main.name
        code = _wait(new)
        if code != 0:
            note(f"the new {name} exited with status {code} before loading: the running one keeps tracing")
            return
        # It ran to its end without a handoff (a main.py that loads nothing through a Session): as before.
        self._fall_back(f"{name} exited without reporting a load")
        note(f"{name} exited with status 0; watching for changes")

    def wait_for_change(self, before: dict[Path, int]) -> list[Path]:
        """Poll the sources until one changes; the running main.py exiting meanwhile is said once."""
        while True:
            if Supervised.stop_requested:
                raise KeyboardInterrupt  # forwarded to main.py by the handler: stop once it has stopped
            if self.running is not None and self.running.poll() is not None:
                note(f"{self.project.main.name} exited with status {_wait(self.running)}; watching for changes")
                self.running = None
                self.close()
            Supervised.pause(POLL_SECONDS)
            if Supervised.stop_requested:
                raise KeyboardInterrupt
            changed = _changed(before, snapshot(self.project))
            if changed:
                return changed


def _watch(project: Project, argv_for: ArgvFor, *, debug: bool, no_build: bool, rebuild: bool) -> None:
    """Run, and restart on every change of the sources, until Ctrl-C, SIGINT or SIGTERM. The objects are rebuilt
    when a build input changed (a change of main.py only restarts it), while the running main.py keeps tracing;
    the new one takes over once it has loaded (:meth:`_Watch.hand_over`)."""
    Supervised.install()
    watch = _Watch(project)
    try:
        while True:
            before = snapshot(project)
            objects: list[Path] | None = None
            Supervised.building = True
            try:
                if Supervised.stop_requested:  # came before the build began: the handler raised nothing then
                    raise KeyboardInterrupt
                objects = built_objects(project, debug=debug, no_build=no_build, rebuild=rebuild)
            except PyayaError as error:
                typer.echo(f"error: {error}", err=True)
                keeps = f"the running {project.main.name} keeps tracing; " if watch.running is not None else ""
                note(f"the build failed; {keeps}watching for changes (Ctrl-C to stop)")
            finally:
                Supervised.building = False
            if Supervised.stop_requested:
                raise KeyboardInterrupt
            if objects is not None:
                watch.hand_over(argv_for(objects))
            changed = watch.wait_for_change(before)
            shown = ", ".join(str(p.relative_to(project.root)) for p in changed[:3]) + (
                " ..." if len(changed) > 3 else ""
            )
            keeps = f" (the running {project.main.name} keeps tracing meanwhile)" if watch.running is not None else ""
            note(f"{shown} changed: rebuilding and restarting{keeps}")
            rebuild = False  # from now on, only when stale
    except KeyboardInterrupt:
        codes = [_wait(child) for child in list(Supervised.children)]
        watch.close()
        note("stopped watching")
        raise typer.Exit(codes[0] if codes else 130) from None


def project_help(start: Path) -> str | None:
    """What ``pyaya run --help`` appends inside a project (found from ``start``): the options its ``main.py``
    takes, from ``main.py --help`` (argparse; run with this interpreter, no shell), and which of ``-p`` and
    ``interval [count]`` it honours. None outside a project."""
    from pyaya.errors import PyayaError  # noqa: PLC0415 - only for --help
    from pyaya.project import RUN_OPTION_FLAGS, find_project  # noqa: PLC0415

    try:
        project = find_project(start)
    except PyayaError:
        return None
    lines = [f"Project {project.name} ({project.root}): arguments after `--` go to {project.main.name}."]
    if project.run_options is not None:
        honoured = [name for name in RUN_OPTION_FLAGS if name in project.run_options]
        labels = {"pid": "-p/--pid", "interval": "--interval/--count"}
        said = ", ".join(labels[name] for name in honoured) or "neither"
        lines.append(f"Of -p/--pid and --interval/--count, its main.py honours: {said} ([run] options).")
    for name, why in project.unsupported_run_options.items():
        lines.append(f"{RUN_OPTION_FLAGS[name]} makes no sense here: {why} ([run] unsupported).")
    if not project.main.is_file():
        lines.append(f"{project.main} does not exist: [run] main in {project.config_path} must name it.")
        return "\n".join(lines)
    try:
        shown = subprocess.run(
            [sys.executable, str(project.main), "--help"],
            cwd=project.root,
            capture_output=True,
            text=True,
            timeout=HELP_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        lines.append(f"`{project.main.name} --help` did not answer: {error}")
        return "\n".join(lines)
    if shown.returncode != 0 or not shown.stdout.strip():
        reason = (shown.stderr.strip().splitlines() or [f"exit status {shown.returncode}"])[-1]
        lines.append(f"`{project.main.name} --help` failed: {reason}")
        return "\n".join(lines)
    lines += ["", f"{project.main.name} --help:", shown.stdout.rstrip()]
    return "\n".join(lines)


class RunCommand(TyperCommand):
    """``pyaya run``: everything after ``--`` is main.py's (kept in ``ctx.meta["project_args"]``), and ``--help``
    inside a project (or naming one as PATH) also shows main.py's own options."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # a click Context: typer keeps click private
        if "--" in args:
            at = args.index("--")
            ctx.meta["project_args"] = args[at + 1 :]
            args = args[:at]
        ctx.meta["run_args"] = list(args)
        return super().parse_args(ctx, args)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        super().format_help(ctx, formatter)
        # --help is eager: PATH is not parsed yet. The first argument naming a folder is PATH, else the cwd.
        raw = [arg for arg in ctx.meta.get("run_args", []) if not arg.startswith("-")]
        start = next((Path(arg) for arg in raw if Path(arg).is_dir()), Path.cwd())
        extra = project_help(start)
        if extra is not None:
            sys.stdout.flush()
            formatter.write("\n" + extra + "\n")


@handle_errors
def run(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Argument(
            metavar="PATH",
            help="The project, or any folder inside it (default: the current folder).",
            show_default=False,
        ),
    ] = None,
    *,
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration", min=0, help="Stop after this many seconds (default: until Ctrl-C).", show_default=False
        ),
    ] = None,
    json_lines: Annotated[
        bool, typer.Option("--json", help='Write one JSON object per line, each with a "kind" field.')
    ] = False,
    no_build: Annotated[bool, typer.Option("--no-build", help="Use the objects as they are; do not rebuild.")] = False,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Build even if the objects look up to date.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Build and run the dev profile.")] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Also show kernel-side debug log records (aya-log debug!) and whole verifier logs."
        ),
    ] = False,
    watch: Annotated[
        bool,
        typer.Option("--watch", "-w", help="Rebuild and restart whenever the project's sources change."),
    ] = False,
    pid: Annotated[
        int | None,
        typer.Option(
            "--pid",
            "-p",
            min=1,
            metavar="PID",
            help="Trace this process only (main.py's -p; refused if the project's [run] options lack pid).",
            show_default=False,
        ),
    ] = None,
    interval: Annotated[
        float | None,
        typer.Option(
            "--interval",
            metavar="SECONDS",
            help="Seconds between periodic outputs (> 0; refused if the project's [run] options lack interval).",
            show_default=False,
        ),
    ] = None,
    count: Annotated[
        int | None,
        typer.Option("--count", min=1, metavar="N", help="Stop after this many periodic outputs.", show_default=False),
    ] = None,
    metrics: Annotated[
        str | None,
        typer.Option(
            "--metrics",
            metavar="HOST:PORT",
            help="Serve the maps of pyaya.toml's [metrics] tables to Prometheus at http://HOST:PORT/metrics.",
            show_default=False,
        ),
    ] = None,
    main_args: Annotated[
        str | None,
        typer.Option(
            "--args",
            metavar="ARGS",
            help="More arguments for main.py, split like a shell would (no shell runs); same as after `--`.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Build the project if its sources changed, load it and stream its events (needs root or CAP_BPF).

    Arguments after `--` go to the project's main.py, e.g. `pyaya run -- --top 5`; inside a project, --help also
    lists them.
    """
    try:
        argv_for = prepare(
            path,
            duration=duration,
            json_lines=json_lines,
            verbose=verbose,
            pid=pid,
            interval=interval,
            count=count,
            metrics=metrics,
            main_args=main_args,
            project_args=ctx.meta.get("project_args", []),
        )
    except BadValue as error:
        raise typer.BadParameter(error.message, param_hint=error.param_hint) from None
    if watch:
        _watch(argv_for.project, argv_for, debug=debug, no_build=no_build, rebuild=rebuild)
        return
    start(argv_for, debug=debug, no_build=no_build, rebuild=rebuild)
