"""``pyaya inspect OBJECT``: programs, maps and BTF types of a BPF object; ``pyaya inspect --compat OBJECT``: which
loaders accept it and why not; ``pyaya inspect --usdt BINARY``: the USDT probes of an executable or library, as
``readelf -n`` lists them. None needs privilege."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pyaya.cli._common import handle_errors, use_color
from pyaya.cli._table import format_table

if TYPE_CHECKING:
    from pyaya.compat import LoaderVerdict
    from pyaya.inspect import ObjectInfo
    from pyaya.usdt import Probe


def _heading(text: str, color: bool) -> str:
    return typer.style(text, bold=True) if color else text


def _bold_header(color: bool) -> Callable[[int, int, str], str]:
    def style(row: int, column: int, text: str) -> str:
        return typer.style(text, bold=True) if color and row < 0 else text

    return style


def _render_compat(verdicts: list[LoaderVerdict], *, color: bool) -> str:
    lines = [_heading("Loaders", color)]
    width = max(len(v.loader) for v in verdicts)
    for verdict in verdicts:
        word = "accepts" if verdict.accepts else "refuses"
        if color:
            word = typer.style(word, fg="green" if verdict.accepts else "red")
        lines.append(f"  {verdict.loader:<{width}}  {word}")
        lines += [f"  {'':<{width}}  - {reason}" for reason in verdict.reasons]
    return "\n".join(lines)


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
    if info.kernel_fields:
        rows_f = [(f.name, f.path, "yes" if f.required else "no", f.type_size) for f in info.kernel_fields]
        table = format_table(("NAME", "PATH", "REQUIRED", "BYTES READ"), rows_f, right=frozenset({3}), style=style)
        hint = "(filled from the running kernel's BTF at load)"
        sections.append(_heading(f"Kernel fields ({len(rows_f)})", color) + f" {hint}\n{table}")
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


def _probe_arguments(probe: Probe) -> list[dict[str, object]]:
    """Each argument of a probe as JSON: its parsed fields and reading, or the reason pyaya cannot read it."""
    from dataclasses import asdict  # noqa: PLC0415

    from pyaya.errors import UnsupportedError  # noqa: PLC0415
    from pyaya.usdt import parse_argument  # noqa: PLC0415

    arguments: list[dict[str, object]] = []
    for text in probe.argument_texts:
        try:
            if probe.arch is None:
                raise UnsupportedError(f"the arguments of {probe.machine} probes are not supported")
            parsed = parse_argument(text, probe.arch)
        except UnsupportedError as error:
            arguments.append({"text": text, "error": str(error)})
        else:
            arguments.append({**asdict(parsed), "describe": parsed.describe()})
    return arguments


def _usdt(path: Path, *, json_output: bool, color: bool) -> str:
    from pyaya.usdt import probes  # noqa: PLC0415 - see pyaya.cli: imported when run

    found = probes(path)
    if json_output:
        return json.dumps(
            {
                "path": str(path),
                "probes": [
                    {
                        "provider": probe.provider,
                        "name": probe.name,
                        "location": probe.location,
                        "base": probe.base,
                        "semaphore": probe.semaphore,
                        "file_offset": probe.file_offset,
                        "semaphore_offset": probe.semaphore_offset,
                        "error": probe.error,
                        "arguments": _probe_arguments(probe),
                    }
                    for probe in found
                ],
            },
            indent=2,
        )
    if not found:
        return _heading(f"USDT probes: none ({path} has no .note.stapsdt section)", color)
    rows = [
        (p.provider, p.name, f"{p.location:#x}", f"{p.semaphore:#x}" if p.semaphore else "-", p.arguments)
        for p in found
    ]
    table = format_table(("PROVIDER", "NAME", "LOCATION", "SEMAPHORE", "ARGUMENTS"), rows, style=_bold_header(color))
    notes = []
    for probe in found:
        if probe.error:
            notes.append(f"{probe.label} at {probe.location:#x}: {probe.error}")
        for number, argument in enumerate(_probe_arguments(probe)):
            if "error" in argument:
                message = str(argument["error"])
                reason = message.partition(f'"{argument["text"]}": ')[2] or message
                notes.append(f"{probe.label} argument {number} ({argument['text']}): {reason}")
    text = _heading(f"USDT probes ({len(rows)})", color) + f"\n{table}"
    if notes:
        unique = list(dict.fromkeys(notes))
        text += "\n\n" + _heading("Arguments pyaya cannot read", color) + "\n" + "\n".join(unique)
    return text


@handle_errors
def inspect(
    object_path: Annotated[
        Path, typer.Argument(metavar="OBJECT", help="A BPF ELF object file (with --usdt: an executable or library).")
    ],
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON document: programs, maps, btf_types.")
    ] = False,
    all_btf: Annotated[
        bool,
        typer.Option("--btf", help="List every BTF type with its members (with --json: members, values, targets)."),
    ] = False,
    usdt: Annotated[
        bool,
        typer.Option("--usdt", help="List the USDT probes of an executable or library instead (like readelf -n)."),
    ] = False,
    compat: Annotated[
        bool,
        typer.Option(
            "--compat", help="Say which loaders accept the object (pyaya, libbpf >= 1.0, cilium/ebpf) and why not."
        ),
    ] = False,
) -> None:
    """Show the programs, maps and BTF types of a BPF object; with --compat which loaders accept it and why not;
    with --usdt the USDT probes of a binary (no privilege needed)."""
    if usdt:
        typer.echo(_usdt(object_path, json_output=json_output, color=use_color()), color=use_color())
        return
    if compat:
        from pyaya.compat import compatibility_of_file  # noqa: PLC0415 - see pyaya.cli: imported when run

        verdicts = compatibility_of_file(object_path)
        if json_output:
            typer.echo(json.dumps({"loaders": [v.to_json() for v in verdicts]}, indent=2))
        else:
            typer.echo(_render_compat(verdicts, color=use_color()), color=use_color())
        return
    from pyaya.inspect import inspect_file  # noqa: PLC0415 - see pyaya.cli: imported when run

    info = inspect_file(object_path)
    if json_output:
        typer.echo(json.dumps(info.to_json(btf_details=all_btf), indent=2))
    else:
        typer.echo(_render(info, all_btf=all_btf, color=use_color()), color=use_color())
