"""``pyaya build [PATH]``: compile a project's eBPF objects and print their paths."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from pyaya.cli._common import handle_errors

__all__ = ["ToolchainKind", "build"]


class ToolchainKind(str, Enum):
    auto = "auto"
    nightly = "nightly"
    prebuilt = "prebuilt"
    bootstrap = "bootstrap"


@handle_errors
def build(
    path: Annotated[
        Path | None,
        typer.Argument(help="The project, or any folder inside it (default: the current folder).", show_default=False),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Build the dev profile instead of release.")] = False,
    toolchain: Annotated[
        ToolchainKind | None,
        typer.Option(
            "--toolchain",
            help="Which toolchain to use (default: [build] toolchain in pyaya.toml, else auto).",
            case_sensitive=False,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Build the project's eBPF objects (cargo, bpfel-unknown-none); print the path of each object built."""
    from pyaya.build import build as build_project  # noqa: PLC0415 - see pyaya.cli: imported when run
    from pyaya.project import find_project  # noqa: PLC0415

    project = find_project(path)
    objects = build_project(project, debug=debug, toolchain=toolchain.value if toolchain else None)
    for obj in objects:
        typer.echo(str(obj))
