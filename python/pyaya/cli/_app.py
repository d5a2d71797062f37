"""The Typer app behind ``pyaya``: every command registered with the settings all of them share."""

from __future__ import annotations

from typing import Annotated

import typer

from pyaya.cli import build, cleanup, doctor, inspect, matrix, new, package, run, templates, vmlinux_h
from pyaya.cli._common import CONTEXT_SETTINGS

app = typer.Typer(
    name="pyaya",
    help="Build, load and run Rust eBPF programs from Python.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings=CONTEXT_SETTINGS,
    # Click's plain help, not rich's: rich and markdown-it cost ~100 ms before any help is shown, and the plain
    # help has no colors to keep NO_COLOR and pipes in mind for.
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from pyaya._version import version_report  # noqa: PLC0415 - for this option only

        typer.echo(version_report())
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None,
        typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True),
    ] = None,
) -> None:
    """Build, load and run Rust eBPF programs from Python."""


# Each command repeats the settings: Click passes help_option_names down from the group, and a command that is
# reused in another group (or tested alone) keeps -h.
app.command("new", context_settings=CONTEXT_SETTINGS)(new.new)
app.command("templates", context_settings=CONTEXT_SETTINGS)(templates.templates)
app.command("build", context_settings=CONTEXT_SETTINGS)(build.build)
app.command("run", cls=run.RunCommand, context_settings=CONTEXT_SETTINGS)(run.run)
app.command("inspect", context_settings=CONTEXT_SETTINGS)(inspect.inspect)
app.command("doctor", context_settings=CONTEXT_SETTINGS)(doctor.doctor)
app.command("cleanup", context_settings=CONTEXT_SETTINGS)(cleanup.cleanup)
app.command("test", cls=matrix.TestCommand, context_settings=CONTEXT_SETTINGS)(matrix.matrix)
app.command("package", context_settings=CONTEXT_SETTINGS)(package.package)
app.command("vmlinux-h", context_settings=CONTEXT_SETTINGS)(vmlinux_h.vmlinux_h)
