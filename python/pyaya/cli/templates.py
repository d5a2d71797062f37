"""``pyaya templates``: list the project templates ``pyaya new`` can use."""

from __future__ import annotations

import typer

from pyaya.cli._common import handle_errors
from pyaya.errors import ScaffoldError
from pyaya.scaffold import DEFAULT_TEMPLATE, list_templates

__all__ = ["templates"]


@handle_errors
def templates() -> None:
    """List the templates `pyaya new --template KIND` accepts, with a one-line description each."""
    found = list_templates()
    if not found:
        raise ScaffoldError("this pyaya installation ships no templates: reinstall pyaya")
    width = max(len(t.kind) for t in found)
    for template in found:
        default = " (default)" if template.kind == DEFAULT_TEMPLATE else ""
        typer.echo(f"{template.kind:<{width}}  {template.description}{default}")
