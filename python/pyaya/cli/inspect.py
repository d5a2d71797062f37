"""``pyaya inspect OBJECT``: programs, maps and BTF types of a BPF object; needs no privilege."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pyaya.cli._common import handle_errors
from pyaya.cli._table import format_table

if TYPE_CHECKING:
    from pyaya.inspect import ObjectInfo


def _heading(text: str, color: bool) -> str:
    return typer.style(text, bold=True) if color else text


def _bold_header(color: bool) -> Callable[[int, int, str], str]:
    def style(row: int, column: int, text: str) -> str:
        return typer.style(text, bold=True) if color and row < 0 else text

    return style


def _render(info: ObjectInfo, *, all_btf: bool, color: bool) -> str:
    from pyaya.inspect import btf_dump, btf_summary  # noqa: PLC0415 - see pyaya.cli: imported when run

    style = _bold_header(color)
    sections = []
    if info.programs:
        rows = [(p.name, p.type, p.section) for p in info.programs]
        table = format_table(("NAME", "TYPE", "SECTION"), rows, style=style)
        sections.append(_heading(f"Programs ({len(rows)})", color) + "\n" + table)
    else:
        sections.append(_heading("Programs: none", color))
    if info.maps:
        rows_m = [(m.name, m.type, m.key_size, m.value_size, m.max_entries) for m in info.maps]
        table = format_table(
            ("NAME", "TYPE", "KEY SIZE", "VALUE SIZE", "MAX ENTRIES"), rows_m, right=frozenset({2, 3, 4}), style=style
        )
        sections.append(_heading(f"Maps ({len(rows_m)})", color) + f"\n{table}")
    else:
        sections.append(_heading("Maps: none", color))
    btf = info.btf
    if not info.btf_types or btf is None:
        sections.append(_heading("BTF types: none (the object has no .BTF section)", color))
    elif all_btf:
        sections.append(_heading(f"BTF types ({len(info.btf_types)})", color) + "\n" + "\n".join(btf_dump(btf)))
    else:
        rows_t = [
            (t.id, t.kind, t.name or "(anon)", "" if t.size is None else t.size, btf_summary(btf, btf.type(t.id)))
            for t in info.btf_types
        ]
        table = format_table(("ID", "KIND", "NAME", "SIZE", "DETAIL"), rows_t, right=frozenset({0, 3}), style=style)
        hint = "(--btf: every type with its members, as bpftool btf dump prints them)"
        sections.append(_heading(f"BTF types ({len(rows_t)})", color) + f" {hint}\n{table}")
    return "\n\n".join(sections)


@handle_errors
def inspect(
    object_path: Annotated[Path, typer.Argument(metavar="OBJECT", help="A BPF ELF object file.")],
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON document: programs, maps, btf_types.")
    ] = False,
    all_btf: Annotated[
        bool,
        typer.Option("--btf", help="List every BTF type with its members (with --json: members, values, targets)."),
    ] = False,
) -> None:
    """Show the programs, maps and BTF types of a BPF object (no privilege needed)."""
    from pyaya.inspect import inspect_file  # noqa: PLC0415 - see pyaya.cli: imported when run

    info = inspect_file(object_path)
    if json_output:
        typer.echo(json.dumps(info.to_json(btf_details=all_btf), indent=2))
    else:
        typer.echo(_render(info, all_btf=all_btf, color=sys.stdout.isatty()))
