"""``pyaya cleanup``: remove what processes that are gone left attached through netlink (see
:mod:`pyaya.attachments`)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pyaya.cli._common import handle_errors
from pyaya.cli._table import format_table

__all__ = ["cleanup"]


@handle_errors
def cleanup(
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Only list what would be removed.")] = False,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help='Print a JSON list of {"kind", "interface", "ifindex", "netns", "where", "program", "program_id", '
            '"owner_pid", "action", "detail"}.',
        ),
    ] = False,
) -> None:
    """Remove the TC filters, XDP programs and clsact qdiscs that pyaya attached through netlink for processes that
    are gone (killed before they could detach), after checking each still runs the recorded program; records of
    running processes and anything pyaya did not make are left alone. Needs root, except with --dry-run."""
    from pyaya.attachments import cleanup as clean  # noqa: PLC0415 - see pyaya.cli: imported when run
    from pyaya.attachments import state_dir  # noqa: PLC0415

    results = clean(dry_run=dry_run)
    if json_output:
        typer.echo(json.dumps([result.to_json() for result in results], indent=2))
        return
    if not results:
        typer.echo(f"nothing to clean up: no attachment recorded in {state_dir()} belongs to a process that is gone")
        return
    rows = [
        (
            r.kind,
            r.interface,
            r.where,
            r.netns,
            f"{r.program} ({r.program_id})" if r.program else "",
            r.owner_pid,
            r.action + (f": {r.detail}" if r.detail else ""),
        )
        for r in results
    ]
    typer.echo(format_table(("KIND", "INTERFACE", "HOOK", "NAMESPACE", "PROGRAM", "PID", "ACTION"), rows))
