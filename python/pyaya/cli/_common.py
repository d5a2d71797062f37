"""What every command shares: one color rule, expected failures as one line on stderr, and the exit codes.

Exit codes (design.md section 4): 0 on success, :data:`EXIT_FAILURE` (1) on a failure the user can act on, with a
one-line reason on stderr, :data:`EXIT_USAGE` (2) on bad usage (Click's own for unknown options and bad values).
Color follows :func:`pyaya._color.color_enabled` (``NO_COLOR``, ``FORCE_COLOR``, a terminal or not): every
command styles text through :func:`style` and writes through :func:`echo`, never through ``isatty()`` of its own.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, NoReturn, ParamSpec, TypeVar

import typer

from pyaya._color import color_enabled
from pyaya.errors import PyayaError

P = ParamSpec("P")
R = TypeVar("R")

EXIT_FAILURE = 1
EXIT_USAGE = 2


#: Every command takes ``-h`` as well as ``--help`` (set on the app; Click passes it down to each command).
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}


def use_color(err: bool = False) -> bool:
    """Whether output to stdout (``err``: stderr) gets color: see :func:`pyaya._color.color_enabled`."""
    return color_enabled(sys.stderr if err else sys.stdout)


def style(text: str, *, err: bool = False, **styles: Any) -> str:
    """``text`` styled as :func:`typer.style` does, when output to stdout (``err``: stderr) gets color."""
    return typer.style(text, **styles) if use_color(err) else text


def echo(message: str, *, err: bool = False, **styles: Any) -> None:
    """Write one line to stdout (``err``: stderr), styled with ``styles`` when that stream gets color. Click is told
    the decision (``color=``), so FORCE_COLOR colors a pipe and NO_COLOR a terminal."""
    colored = use_color(err)
    if styles and colored:
        message = typer.style(message, **styles)
    typer.echo(message, err=err, color=colored)


def note(message: str) -> None:
    """A ``pyaya: message`` progress line on stderr."""
    typer.echo(f"{style('pyaya:', err=True, bold=True)} {message}", err=True, color=use_color(err=True))


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``; no traceback."""
    first, _, rest = message.partition("\n")
    prefix = style("error:", err=True, fg=typer.colors.RED, bold=True)
    typer.echo(f"{prefix} {first}", err=True, color=use_color(err=True))
    if rest:
        typer.echo(rest, err=True)
    raise typer.Exit(code)


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command so that a :class:`PyayaError` or an interrupt ends it with a message, not a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except PyayaError as error:
            fail(str(error))
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # The reader went away (`pyaya run --json | head`): nothing more to say to it.
            sys.stderr.close()
            raise typer.Exit(0) from None

    return wrapper
