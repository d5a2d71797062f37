"""The ``pyaya`` command line: one module per command, each a thin layer over library code.

Every command's module is imported here (Typer reads their signatures), so each keeps its top-level imports to
typer and small modules, and imports the library code it calls inside the command: ``pyaya run`` then starts
without the scaffolder, the builder, the doctor's probes or the BTF reader.
"""

from __future__ import annotations

from typing import Annotated

import typer

from pyaya.cli import build, cleanup, doctor, inspect, matrix, new, package, run, templates

app = typer.Typer(
    name="pyaya",
    help="Build, load and run Rust eBPF programs from Python.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)


def _print_version(value: bool) -> None:
    if value:
        from pyaya import __version__  # noqa: PLC0415 - importlib.metadata, for this option only

        typer.echo(f"pyaya {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None,
        typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True),
    ] = None,
) -> None:
    """Build, load and run Rust eBPF programs from Python."""


app.command("new")(new.new)
app.command("templates")(templates.templates)
app.command("build")(build.build)
app.command("run")(run.run)
app.command("inspect")(inspect.inspect)
app.command("doctor")(doctor.doctor)
app.command("cleanup")(cleanup.cleanup)
app.command("test", cls=matrix.TestCommand)(matrix.matrix)
app.command("package")(package.package)


def main() -> None:
    """Entry point of the ``pyaya`` console script."""
    app()
