"""``pyaya --help`` without Typer: the app's help as Typer renders it on a terminal of 80 columns or more, so that
the commonest first command answers in the time of the interpreter's start (Typer and the commands' signatures cost
~100 ms more). ``tests/unit/test_cli_conventions.py`` checks this text against Typer's; to refresh it after a
change to the commands or their docstrings, run ``python -m pyaya.cli._help > /dev/null`` and paste what it
prints to stderr here.
"""

from __future__ import annotations

import os
import sys

__all__ = ["TOP_HELP", "static_help_fits"]

#: Click wraps help to min(terminal columns, 80) - 2: from 80 columns on, the text is the same.
MIN_COLUMNS = 80

TOP_HELP = """\
Usage: pyaya [OPTIONS] COMMAND [ARGS]...

  Build, load and run Rust eBPF programs from Python.

Options:
  --version             Print the version and exit.
  --install-completion  Install completion for the current shell.
  --show-completion     Show completion for the current shell, to copy it or
                        customize the installation.
  -h, --help            Show this message and exit.

Commands:
  new        Create a project from a template: ./NAME with the eBPF crate,...
  templates  List the templates `pyaya new --template KIND` accepts: a...
  build      Build the project's eBPF objects (cargo, bpfel-unknown-none);...
  run        Build the project if its sources changed, load it and stream...
  inspect    Show the programs, maps and BTF types of a BPF object; with...
  doctor     Check the toolchain and the kernel; each missing piece comes...
  cleanup    Remove the TC filters, XDP programs and clsact qdiscs that...
  test       Run the project's tests as root inside a VM of each kernel;...
  package    Build the project and write it as a bpfman bytecode image...
  vmlinux-h  Write vmlinux.h, every type of the kernel's BTF as C (as...
"""


def static_help_fits() -> bool:
    """Whether Click would render :data:`TOP_HELP` as it is: the terminal (``COLUMNS``, else stdout's terminal, else
    80, as :func:`shutil.get_terminal_size` decides) has at least :data:`MIN_COLUMNS` columns."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):  # no stdout (None), or not a terminal
            columns = MIN_COLUMNS
    return columns >= MIN_COLUMNS


if __name__ == "__main__":
    from typer.testing import CliRunner

    from pyaya.cli._app import app

    rendered = CliRunner().invoke(app, ["--help"], prog_name="pyaya", env={"COLUMNS": str(MIN_COLUMNS)}).output
    sys.stderr.write(rendered)
