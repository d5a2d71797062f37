"""``pyaya inspect OBJECT``: programs, maps and BTF types of a BPF object; needs no privilege."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pyaya.cli._common import handle_errors
from pyaya.cli._table import format_table
from pyaya.inspect import ObjectInfo, inspect_file


def _render(info: ObjectInfo) -> str:
    sections = []
    if info.programs:
        rows = [(p.name, p.type, p.section) for p in info.programs]
        sections.append(f"Programs ({len(rows)})\n" + format_table(("NAME", "TYPE", "SECTION"), rows))
    else:
        sections.append("Programs: none")
    if info.maps:
        rows_m = [(m.name, m.type, m.key_size, m.value_size, m.max_entries) for m in info.maps]
        table = format_table(
            ("NAME", "TYPE", "KEY SIZE", "VALUE SIZE", "MAX ENTRIES"), rows_m, right=frozenset({2, 3, 4})
        )
        sections.append(f"Maps ({len(rows_m)})\n{table}")
    else:
        sections.append("Maps: none")
    if info.btf_types:
        rows_t = [(t.id, t.kind, t.name or "(anon)", "" if t.size is None else t.size) for t in info.btf_types]
        table = format_table(("ID", "KIND", "NAME", "SIZE"), rows_t, right=frozenset({0, 3}))
        sections.append(f"BTF types ({len(rows_t)})\n{table}")
    else:
        sections.append("BTF types: none (the object has no .BTF section)")
    return "\n\n".join(sections)


@handle_errors
def inspect(
    object_path: Annotated[Path, typer.Argument(metavar="OBJECT", help="A BPF ELF object file.")],
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON document: programs, maps, btf_types.")
    ] = False,
) -> None:
    """Show the programs, maps and BTF types of a BPF object (no privilege needed)."""
    info = inspect_file(object_path)
    if json_output:
        typer.echo(json.dumps(info.to_json(), indent=2))
    else:
        typer.echo(_render(info))
