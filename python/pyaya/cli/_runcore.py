"""What ``pyaya run`` does once its options are parsed, with nothing of Typer's: the Typer command
(:mod:`pyaya.cli.run`) and the console script's fast path (:mod:`pyaya.cli._runfast`) both call it.

``pyaya run`` is the command whose start-up is measured against bpftrace's, and importing Typer (and building
its command tree) costs more than the rest of the run does before main.py starts. Every command writes its errors
through :func:`fail` here (:mod:`pyaya.cli._common` re-exports it), by the rules of :func:`pyaya._color.color_enabled`.
"""

from __future__ import annotations

import functools
import re
import shlex
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, ParamSpec, TypeVar

from pyaya._color import color_enabled
from pyaya._launch import exec_main, main_argv
from pyaya.errors import PyayaError

if TYPE_CHECKING:
    from pyaya.project import Project

__all__ = ["EXIT_FAILURE", "EXIT_USAGE", "ArgvFor", "BadValue", "fail", "objects", "prepare", "start"]

P = ParamSpec("P")
R = TypeVar("R")

EXIT_FAILURE = 1
EXIT_USAGE = 2

#: What click.style(text, fg="red", bold=True) makes of text (the same bytes, without importing it).
_RED_BOLD = "\x1b[31m\x1b[1m{}\x1b[0m"
_ANSI = re.compile(r"\033\[[;?0-9]*[a-zA-Z]")


class BadValue(Exception):
    """An option's value the run cannot take: the front end says it as Click's ``BadParameter`` does."""

    def __init__(self, message: str, param_hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.param_hint = param_hint


def _echo_err(text: str, color: bool | None) -> None:
    """Write ``text`` and a newline to stderr as ``typer.echo(text, err=True, color=color)`` does: its escape
    codes stripped unless ``color`` (None: stderr is a terminal)."""
    stream = sys.stderr
    keep = color if color is not None else stream.isatty()
    if not keep:
        text = _ANSI.sub("", text)
    stream.write(text + "\n")
    stream.flush()


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``; no traceback. Every command ends this way
    (:mod:`pyaya.cli._common` re-exports it), with or without Typer."""
    first, _, rest = message.partition("\n")
    colored = color_enabled(sys.stderr)
    prefix = _RED_BOLD.format("error:") if colored else "error:"
    _echo_err(f"{prefix} {first}", colored)
    if rest:
        _echo_err(rest, None)
    raise SystemExit(code)


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command so that a :class:`PyayaError`, an interrupt or a closed pipe ends it with a message (or
    none), not a traceback; SystemExit, so it works with and without Typer."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except PyayaError as error:
            fail(str(error))
        except KeyboardInterrupt:
            _echo_err("interrupted", None)
            raise SystemExit(130) from None
        except BrokenPipeError:
            # The reader went away (`pyaya run --json | head`): nothing more to say to it.
            sys.stderr.close()
            raise SystemExit(0) from None

    return wrapper


class ArgvFor:
    """The command line of main.py for the objects just built."""

    def __init__(self, project: Project, options: list[str]) -> None:
        self.project = project
        self.options = options

    def __call__(self, objects: list[Path]) -> list[str]:
        return main_argv(self.project.main, objects[0], self.options)


def objects(project: Project, *, debug: bool, no_build: bool, rebuild: bool) -> list[Path]:
    """The objects main.py loads: as they are with ``no_build``, else built (when stale, or ``rebuild``)."""
    profile = "debug" if debug else "release"
    if no_build:
        paths = project.object_paths(profile)
        missing = [str(obj) for obj in paths if not obj.is_file()]
        if missing:
            fail(f"no built object at {', '.join(missing)}: run `pyaya build` first, or drop --no-build")
        return paths
    from pyaya.build import build as build_project  # noqa: PLC0415 - cargo's driver, not for --no-build
    from pyaya.build import ensure_built  # noqa: PLC0415

    if rebuild:
        return build_project(project, debug=debug)
    return ensure_built(project, debug=debug)


def prepare(
    path: Path | None,
    *,
    duration: float | None,
    json_lines: bool,
    verbose: bool,
    pid: int | None,
    interval: float | None,
    count: int | None,
    metrics: str | None,
    main_args: str | None,
    project_args: list[str],
) -> ArgvFor:
    """Find the project and check the options against it (before anything is built); returns how to call its
    main.py. Raises :class:`BadValue` for a value Click would refuse, exits through :func:`fail` otherwise."""
    from pyaya.project import find_project  # noqa: PLC0415 - tomllib and the rest once parsing succeeded

    project = find_project(path)
    if not project.main.is_file():
        fail(f"{project.main} does not exist: [run] main in {project.config_path} must name the user-space script")
    if interval is not None and interval <= 0:
        raise BadValue(f"{interval:g} is not a number of seconds > 0", "--interval")
    if count is not None and interval is None:
        raise BadValue("--count needs --interval", "--count")
    wanted = [name for name, value in (("pid", pid), ("interval", interval)) if value is not None]
    refused = project.refused_run_options(wanted)
    if refused is not None:
        fail(refused, EXIT_USAGE)  # before building: the project cannot use the option, whatever is built
    if metrics is not None and not project.fleet.metrics:
        fail(
            f"--metrics: {project.config_path} has no [metrics.MAP] table saying which maps to serve "
            '(e.g. [metrics.COUNTS] type = "counter")',
            EXIT_USAGE,
        )
    options: list[str] = []
    if json_lines:
        options.append("--json")
    if verbose:
        options.append("--verbose")
    if duration is not None:
        options += ["--duration", f"{duration:g}"]
    if pid is not None:
        options += ["--pid", str(pid)]
    if metrics is not None:
        options += ["--metrics", metrics]
    if main_args:
        try:
            options += shlex.split(main_args)
        except ValueError as error:
            raise BadValue(f"cannot split {main_args!r}: {error}", "--args") from None
    options += project_args
    if interval is not None:
        options.append(f"{interval:g}")
        if count is not None:
            options.append(str(count))
    return ArgvFor(project, options)


def _on_sigterm_before_main(signum: int, frame: object) -> None:
    """SIGTERM while building, before main.py runs: stop as Ctrl-C does (nothing is loaded yet)."""
    raise KeyboardInterrupt


def start(argv_for: ArgvFor, *, debug: bool, no_build: bool, rebuild: bool) -> NoReturn:
    """Build when needed, then become main.py (see :func:`pyaya._launch.exec_main`)."""
    signal.signal(signal.SIGTERM, _on_sigterm_before_main)
    paths = objects(argv_for.project, debug=debug, no_build=no_build, rebuild=rebuild)
    # main.py replaces this process: no second process is left to be killed alone, or to orphan main.py.
    exec_main(argv_for(paths), argv_for.project.root)
    raise AssertionError("exec_main returned")  # pragma: no cover - it raises or never returns
