"""``pyaya doctor``: toolchain and kernel report; exit 1 when something a build or a run needs is missing."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Annotated

import typer

from pyaya.cli._common import EXIT_FAILURE, handle_errors, use_color
from pyaya.cli._table import format_table

if TYPE_CHECKING:
    from pyaya.doctor import Check

_NO_FIX = "no command fixes this; the detail above says what is wrong"
_COLORS = {"ok": "green", "warning": "yellow", "missing": "red", "unsupported": "magenta"}


def _render(checks: list[Check], color: bool) -> str:
    rows = [(c.name, c.status, c.detail) for c in checks]

    def style(row: int, column: int, text: str) -> str:
        if not color:
            return text
        if row < 0:
            return typer.style(text, bold=True)
        if column == 1:
            return typer.style(text, fg=_COLORS.get(checks[row].status), bold=True)
        return text

    table = format_table(("CHECK", "STATUS", "DETAIL"), rows, style=style)
    # Fixes are whole commands: under the table, one per line, so they are easy to copy and never cut. Every
    # problem gets a line, even one whose check could not name a command.
    fixes = [f"  {c.name}: {c.fix or _NO_FIX}" for c in checks if c.status != "ok"]
    if fixes:
        heading = typer.style("What to do:", bold=True) if color else "What to do:"
        table += "\n\n" + heading + "\n" + "\n".join(fixes)
    return table


def _summary(checks: list[Check]) -> str:
    from pyaya.doctor import STATUSES  # noqa: PLC0415 - see pyaya.cli: imported when run

    counts = Counter(c.status for c in checks)
    return ", ".join(f"{counts[status]} {status}" for status in STATUSES if counts[status])


@handle_errors
def doctor(
    json_output: Annotated[
        bool, typer.Option("--json", help='Print a JSON list of {"name", "status", "detail", "fix"}.')
    ] = False,
) -> None:
    """Check the toolchain and the kernel; each missing piece comes with the command that fixes it."""
    from pyaya.doctor import failed, run_checks  # noqa: PLC0415 - see pyaya.cli: imported when run

    checks = run_checks()
    if json_output:
        typer.echo(json.dumps([c.to_json() for c in checks], indent=2))
    else:
        typer.echo(_render(checks, color=use_color()), color=use_color())
        missing = [c.name for c in checks if c.status == "missing"]
        typer.echo(f"\n{_summary(checks)}" + (f"; missing: {', '.join(missing)}" if missing else ""), err=True)
    if failed(checks):
        raise typer.Exit(EXIT_FAILURE)
