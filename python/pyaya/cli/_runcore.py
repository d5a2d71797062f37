"""What ``pyaya run`` does once its options are parsed, with nothing of Typer's: the Typer command
(:mod:`pyaya.cli.run`) and the console script's fast path (:mod:`pyaya.cli._runfast`) both call it.

``pyaya run`` is the command whose start-up is measured against bpftrace's, and importing Typer (and building
its command tree) costs more than the rest of the run does before main.py starts. The fast path goes further: it
imports nothing heavy (``tests/unit/test_import_cost.py``) and runs main.py in its own interpreter (:func:`launch`,
:class:`pyaya._launch.MainScript`) instead of exec()ing a second one; the Typer command still exec()s it
(:func:`start`). Every command writes its errors through :func:`fail` here (:mod:`pyaya.cli._common` re-exports
it), by the rules of :func:`pyaya._color.color_enabled`.
"""

from __future__ import annotations

import functools
import os
import signal
import sys

from pyaya._color import color_enabled
from pyaya._launch import MainScript, exec_main, main_argv
from pyaya.errors import PyayaError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path
    from typing import NoReturn, ParamSpec, TypeVar

    from pyaya.project import Project

    P = ParamSpec("P")
    R = TypeVar("R")

__all__ = ["EXIT_FAILURE", "EXIT_USAGE", "ArgvFor", "BadValue", "fail", "launch", "objects", "prepare", "start"]

EXIT_FAILURE = 1
EXIT_USAGE = 2

#: What click.style(text, fg="red", bold=True) makes of text (the same bytes, without importing it).
_RED_BOLD = "\x1b[31m\x1b[1m{}\x1b[0m"
#: The escape codes typer.echo strips (click's ``_ansi_re``).
_ANSI = r"\033\[[;?0-9]*[a-zA-Z]"


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
    if not keep and "\033" in text:
        import re  # noqa: PLC0415 - only for text that holds an escape code

        text = re.sub(_ANSI, "", text)
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

    def __call__(self, objects: Sequence[str | os.PathLike[str]]) -> list[str]:
        return main_argv(self.project.main_str, objects[0], self.options)


def objects(project: Project, *, debug: bool, no_build: bool, rebuild: bool) -> list[Path]:
    """The objects main.py loads: as they are with ``no_build``, else built (when stale, or ``rebuild``)."""
    if no_build:
        return [_path(obj) for obj in _built_files(project, debug=debug)]
    from pyaya.build import build as build_project  # noqa: PLC0415 - cargo's driver, not for --no-build
    from pyaya.build import ensure_built  # noqa: PLC0415

    if rebuild:
        return build_project(project, debug=debug)
    return ensure_built(project, debug=debug)


def _path(text: str) -> Path:
    from pathlib import Path  # noqa: PLC0415 - for callers of objects(); launch() does without

    return Path(text)


def _built_files(project: Project, *, debug: bool) -> list[str]:
    """The objects of ``pyaya run --no-build``, which must all exist (else the run fails here)."""
    files = project.object_files("debug" if debug else "release")
    missing = [obj for obj in files if not os.path.isfile(obj)]
    if missing:
        fail(f"no built object at {', '.join(missing)}: run `pyaya build` first, or drop --no-build")
    return files


def prepare(
    path: str | os.PathLike[str] | None,
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
    from pyaya.project import find_project  # noqa: PLC0415 - once parsing succeeded

    project = find_project(path)
    if not os.path.isfile(project.main_str):
        fail(f"{project.main_str} does not exist: [run] main in {project.config_str} must name the user-space script")
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
            f"--metrics: {project.config_str} has no [metrics.MAP] table saying which maps to serve "
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
        import shlex  # noqa: PLC0415 - only for --args

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
    """Build when needed, then become main.py by exec() (see :func:`pyaya._launch.exec_main`): the Typer
    command's way, which leaves no Click handler between main.py and the interpreter."""
    signal.signal(signal.SIGTERM, _on_sigterm_before_main)
    paths = objects(argv_for.project, debug=debug, no_build=no_build, rebuild=rebuild)
    # main.py replaces this process: no second process is left to be killed alone, or to orphan main.py.
    exec_main(argv_for(paths), argv_for.project.root_str)
    raise AssertionError("exec_main returned")  # pragma: no cover - it raises or never returns


def launch(argv_for: ArgvFor, *, debug: bool, no_build: bool, rebuild: bool) -> MainScript:
    """Build when needed, then read main.py to run in this interpreter (:meth:`pyaya._launch.MainScript.run`,
    called by the caller outside :func:`handle_errors`, so that main.py's exceptions are the interpreter's to
    report): the console script's fast path (:mod:`pyaya.cli._runfast`), which so skips a second interpreter's
    start-up and re-imports (issue 13). One process still holds the programs, as with exec().

    SIGTERM stops the build as Ctrl-C does; from the return to main.py's first line SIGINT and SIGTERM are blocked
    (one that comes then is taken once main.py's dispositions are back: SIGTERM ends the process, as it would
    have during an exec())."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm_before_main)
    project = argv_for.project
    if no_build:
        paths: Sequence[str | os.PathLike[str]] = _built_files(project, debug=debug)
    else:
        paths = objects(project, debug=debug, no_build=False, rebuild=rebuild)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        return MainScript(argv_for(paths), project.root_str, {signal.SIGTERM: previous}, mask)
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        raise
