"""``pyaya new NAME``: create a project from a template."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from pyaya.cli._common import handle_errors
from pyaya.scaffold import DEFAULT_TEMPLATE, create_project

__all__ = ["new"]


@handle_errors
def new(
    name: Annotated[
        str, typer.Argument(help="Project name: lowercase letters, digits, '-' and '_'.", show_default=False)
    ],
    template: Annotated[
        str, typer.Option("--template", "-t", help="Template kind (see `pyaya templates`).", metavar="KIND")
    ] = DEFAULT_TEMPLATE,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Render into the folder even if it is not empty.")
    ] = False,
    path: Annotated[
        Path | None,
        typer.Option("--path", "-p", help="Folder to create the project in (default: ./NAME).", metavar="DIR"),
    ] = None,
) -> None:
    """Create a project from a template: ./NAME with the eBPF crate, shared types and a main.py."""
    root, files = create_project(name, template=template, path=path, force=force)
    typer.echo(f"Created {name} from template {template} in {root} ({len(files)} files)")
    for file in files:
        typer.echo(f"  {file.relative_to(root)}")
    shown = os.path.relpath(root)
    steps = ["", "Next steps:"]
    if shown != ".":
        steps.append(f"  cd {shown if not shown.startswith('..' + os.sep) else root}")
    steps += ["  pyaya build        # compile the eBPF object", "  sudo pyaya run     # load, attach and stream events"]
    typer.echo("\n".join(steps))
