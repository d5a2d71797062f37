"""What every command shares: one color rule, expected failures as one line on stderr, and the exit codes.

Exit codes (design.md section 4): 0 on success, :data:`EXIT_FAILURE` (1) on a failure the user can act on, with a
one-line reason on stderr, :data:`EXIT_USAGE` (2) on bad usage (Click's own for unknown options and bad values).
Color follows :func:`pyaya._color.color_enabled` (``NO_COLOR``, ``FORCE_COLOR``, a terminal or not): every
command styles text through :func:`style` and writes through :func:`echo`, never through ``isatty()`` of its own.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from pyaya._color import color_enabled

# Failures end a command the same way with or without Typer: `pyaya run`'s lean path shares these.
from pyaya.cli._runcore import EXIT_FAILURE, fail, handle_errors

__all__ = [
    "CONTEXT_SETTINGS",
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "echo",
    "fail",
    "handle_errors",
    "note",
    "style",
    "use_color",
]

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
