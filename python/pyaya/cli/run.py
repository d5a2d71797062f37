"""``pyaya run [PATH]``: build when stale, then run the project's ``main.py`` as its user space."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from pyaya.build import build as build_project
from pyaya.build import ensure_built
from pyaya.cli._common import fail, handle_errors
from pyaya.project import find_project

__all__ = ["run"]


@handle_errors
def run(
    path: Annotated[
        Path | None,
        typer.Argument(help="The project, or any folder inside it (default: the current folder).", show_default=False),
    ] = None,
    *,
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration", min=0, help="Stop after this many seconds (default: until Ctrl-C).", show_default=False
        ),
    ] = None,
    json_lines: Annotated[
        bool, typer.Option("--json", help='Write one JSON object per line, each with a "kind" field.')
    ] = False,
    no_build: Annotated[bool, typer.Option("--no-build", help="Use the objects as they are; do not rebuild.")] = False,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Build even if the objects look up to date.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Build and run the dev profile.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also show kernel-side debug log records (aya-log debug!).")
    ] = False,
) -> None:
    """Build the project if its sources changed, load it and stream its events (needs root or CAP_BPF)."""
    project = find_project(path)
    profile = "debug" if debug else "release"
    if no_build:
        objects = project.object_paths(profile)
        missing = [str(obj) for obj in objects if not obj.is_file()]
        if missing:
            fail(f"no built object at {', '.join(missing)}: run `pyaya build` first, or drop --no-build")
    elif rebuild:
        objects = build_project(project, debug=debug)
    else:
        objects = ensure_built(project, debug=debug)
    if not project.main.is_file():
        fail(f"{project.main} does not exist: [run] main in {project.config_path} must name the user-space script")

    argv = [sys.executable, str(project.main), "--object", str(objects[0])]
    if json_lines:
        argv.append("--json")
    if verbose:
        argv.append("--verbose")
    if duration is not None:
        argv += ["--duration", f"{duration:g}"]
    # The child shares the terminal's process group, so Ctrl-C reaches it directly: it detaches and prints its maps.
    # This process keeps waiting for it meanwhile.
    child = subprocess.Popen(argv, cwd=project.root)
    code: int | None = None
    while code is None:
        try:
            code = child.wait()
        except KeyboardInterrupt:
            continue
    if code < 0:
        code = 128 - code
    raise typer.Exit(code)
