"""``pyaya templates``: list the project templates ``pyaya new`` can use, with their options."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pyaya.cli._common import handle_errors
from pyaya.cli.new import flag_for
from pyaya.errors import ScaffoldError
from pyaya.scaffold import DEFAULT_TEMPLATE, TemplateOption, list_templates

__all__ = ["templates"]


@handle_errors
def templates(
    json_output: Annotated[
        bool,
        typer.Option("--json", help='Print a JSON list of {"kind", "description", "default", "options"}.'),
    ] = False,
) -> None:
    """List the templates `pyaya new --template KIND` accepts: a one-line description each, and their options."""
    found = list_templates()
    if not found:
        raise ScaffoldError("this pyaya installation ships no templates: reinstall pyaya")
    if json_output:
        listing = [
            {
                "kind": t.kind,
                "description": t.description,
                "default": t.kind == DEFAULT_TEMPLATE,
                "options": [
                    {
                        "name": o.name,
                        "flag": flag_for(o.name, t),
                        "default": o.default,
                        "help": o.help,
                        "check": o.check,
                        "choices": list(o.choices),
                    }
                    for o in t.options
                ],
            }
            for t in found
        ]
        typer.echo(json.dumps(listing, indent=2))
        return
    width = max(len(t.kind) for t in found)
    for template in found:
        default = " (default)" if template.kind == DEFAULT_TEMPLATE else ""
        typer.echo(f"{template.kind:<{width}}  {template.description}{default}")
        if not template.options:
            continue
        # One line per flag: --tracepoint sets two options, shown together.
        lines: dict[str, list[TemplateOption]] = {}
        for option in template.options:
            lines.setdefault(flag_for(option.name, template), []).append(option)
        flag_width = max(len(flag) for flag in lines)
        for flag, options in lines.items():
            about = " / ".join(o.help or o.name for o in options)
            choices = "".join(f" [{'|'.join(o.choices)}]" for o in options if o.choices)
            default = "/".join(o.default for o in options)
            typer.echo(f"{'':<{width}}    {flag:<{flag_width}}  {about}{choices} (default: {default})")
