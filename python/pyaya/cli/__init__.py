"""The ``pyaya`` command line: one module per command, each a thin layer over library code.

Every command's module is imported by :mod:`pyaya.cli._app` (Typer reads their signatures), so each keeps its
top-level imports to typer and small modules, and imports the library code it calls inside the command: ``pyaya
run`` then starts without the scaffolder, the builder, the doctor's probes or the BTF reader. This package itself
imports nothing of Typer's until a command runs (``pyaya --version`` never does), and a well-formed ``pyaya run``
never imports it (:mod:`pyaya.cli._runfast`), nor anything else heavy (``tests/unit/test_import_cost.py``).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import typer

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``pyaya`` console script. ``pyaya --version`` and ``pyaya --help`` alone answer before
    Typer (and every command's module) is imported: they are what people and scripts run first; so does a
    ``pyaya run`` whose options :func:`pyaya.cli._runfast.parse` takes (help, usage errors and ``--watch`` are
    Typer's), and a ``pyaya build`` whose options :func:`pyaya.cli._buildfast.parse` takes."""
    arguments = sys.argv[1:]
    if arguments == ["--version"]:
        from pyaya._version import version_report  # noqa: PLC0415

        sys.stdout.write(version_report() + "\n")
        return
    if arguments in (["--help"], ["-h"]):
        from pyaya.cli._help import TOP_HELP, static_help_fits  # noqa: PLC0415 - Typer's text, kept in sync by a test

        if static_help_fits():
            sys.stdout.write(TOP_HELP)
            return
    if arguments[:1] == ["run"] and "_PYAYA_COMPLETE" not in os.environ:
        from pyaya.cli import _runfast  # noqa: PLC0415 - the run path without Typer, for what it can parse

        if _runfast.main(arguments[1:]):
            return
    if arguments[:1] == ["build"] and "_PYAYA_COMPLETE" not in os.environ:
        from pyaya.cli import _buildfast  # noqa: PLC0415 - the build path without Typer, for what it can parse

        if _buildfast.main(arguments[1:]):
            return
    from pyaya.cli._app import app  # noqa: PLC0415

    app()


def __getattr__(name: str) -> typer.Typer:
    # `from pyaya.cli import app` (tests, completion scripts) imports the app on first use, not at import.
    if name == "app":
        from pyaya.cli._app import app  # noqa: PLC0415

        return app
    raise AttributeError(f"module 'pyaya.cli' has no attribute {name!r}")
