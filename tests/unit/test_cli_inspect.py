"""`pyaya inspect`: the default view, --btf (bpftool's dump format) and --btf --json (types with members)."""

from __future__ import annotations

import json
from pathlib import Path

from pyaya.cli import app
from test_inspect import sample_object
from typer.testing import CliRunner

runner = CliRunner()


def _object(tmp_path: Path) -> Path:
    obj = tmp_path / "prog.o"
    obj.write_bytes(sample_object())
    return obj


def test_default_view_summarises_types(tmp_path: Path) -> None:
    result = runner.invoke(app, ["inspect", str(_object(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "\x1b[" not in result.stdout  # no color when piped
    lines = result.stdout.splitlines()
    event = next(line for line in lines if " Event " in line)
    assert event.split()[1:] == ["STRUCT", "Event", "8", "{", "pid,", "uid", "}"]
    assert any(line.split()[1:] == ["VAR", "EVENTS", "0", "struct", "<anon>"] for line in lines)
    assert "--btf" in result.stdout


def test_btf_dump_lists_members_like_bpftool(tmp_path: Path) -> None:
    result = runner.invoke(app, ["inspect", str(_object(tmp_path)), "--btf"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "[1] INT 'u32' size=4 bits_offset=0 nr_bits=32 encoding=(none)" in lines
    assert "[2] INT 'int' size=4 bits_offset=0 nr_bits=32 encoding=SIGNED" in lines
    start = next(i for i, line in enumerate(lines) if "STRUCT 'Event'" in line)
    assert lines[start].endswith("STRUCT 'Event' size=8 vlen=2")
    assert lines[start + 1 : start + 3] == ["\t'pid' type_id=1 bits_offset=0", "\t'uid' type_id=1 bits_offset=32"]
    assert any(line.startswith("\ttype_id=") and "(VAR 'EVENTS')" in line for line in lines)


def test_btf_json_adds_members_and_keeps_the_contract(tmp_path: Path) -> None:
    plain = json.loads(runner.invoke(app, ["inspect", str(_object(tmp_path)), "--json"]).stdout)
    detailed = json.loads(runner.invoke(app, ["inspect", str(_object(tmp_path)), "--json", "--btf"]).stdout)
    assert set(detailed) == {"programs", "maps", "btf_types", "kernel_fields"}
    assert detailed["programs"] == plain["programs"]
    assert detailed["maps"] == plain["maps"]
    for base, full in zip(plain["btf_types"], detailed["btf_types"], strict=True):
        assert {key: full[key] for key in base} == base
    event = next(t for t in detailed["btf_types"] if t["name"] == "Event")
    assert event["members"] == [
        {"name": "pid", "type_id": 1, "type": "u32", "bit_offset": 0, "bitfield_size": 0},
        {"name": "uid", "type_id": 1, "type": "u32", "bit_offset": 32, "bitfield_size": 0},
    ]
    datasec = next(t for t in detailed["btf_types"] if t["kind"] == "DATASEC")
    assert [v["name"] for v in datasec["vars"]] == ["EVENTS", "COUNTS"]
