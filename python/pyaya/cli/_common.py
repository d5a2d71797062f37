"""What every command shares: turning expected failures into one line on stderr and an exit code."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import NoReturn, ParamSpec, TypeVar

import typer

from pyaya.errors import PyayaError

P = ParamSpec("P")
R = TypeVar("R")

EXIT_FAILURE = 1
EXIT_USAGE = 2


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``; no traceback."""
    first, _, rest = message.partition("\n")
    prefix = typer.style("error:", fg=typer.colors.RED, bold=True) if _stderr_is_tty() else "error:"
    typer.echo(f"{prefix} {first}", err=True)
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
