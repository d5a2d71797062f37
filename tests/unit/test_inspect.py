"""pyaya.inspect and ``pyaya inspect``: a hand-built BPF object with every kind of map definition, read by aya-obj
(programs, maps) and pyaya's native BTF reader (types)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from bpfobj import BtfBuilder, Sym, build_elf
from pyaya.cli import app
from pyaya.errors import ObjectError
from pyaya.inspect import inspect_bytes, inspect_file
from typer.testing import CliRunner


def _map_btf() -> bytes:
    b = BtfBuilder()
    u32 = b.int_("u32", 4)
    int_ = b.int_("int", 4, signed=True)
    index = b.int_("__ARRAY_SIZE_TYPE__", 4)

    def number(n: int) -> int:  # int (*)[n]
        return b.add("PTR", "", b.add("ARRAY", "", 0, [int_, index, n]))

    event = b.composite("STRUCT", "Event", 8, [("pid", u32, 0, 0), ("uid", u32, 32, 0)])
    ringbuf = b.composite("STRUCT", "", 0, [("type", number(27), 0, 0), ("max_entries", number(4096), 64, 0)])
    hashmap = b.composite(
        "STRUCT",
        "",
        0,
        [
            ("type", number(1), 0, 0),
            ("key", b.add("PTR", "", u32), 64, 0),
            ("value", b.add("PTR", "", event), 128, 0),
            ("max_entries", number(1024), 192, 0),
        ],
    )
    v1 = b.add("VAR", "EVENTS", ringbuf, [1])
    v2 = b.add("VAR", "COUNTS", hashmap, [1])
    b.add("DATASEC", ".maps", 48, [v1, 0, 16, v2, 16, 32], vlen=2)
    return b.to_bytes()


def sample_object() -> bytes:
    legacy = struct.pack("<7I", 6, 4, 8, 1, 0, 0, 0) + struct.pack("<7I", 4, 4, 4, 0, 0, 0, 0)
    return build_elf(
        [
            ("tracepoint/syscalls/sys_enter_execve", 1, 0x6, bytes(16)),
            ("xdp", 1, 0x6, bytes(16)),
            (".text", 1, 0x6, bytes(16)),
            ("maps", 1, 0x3, legacy),
            (".maps", 1, 0x3, bytes(48)),
            (".rodata", 1, 0x2, bytes(12)),
            (".bss", 8, 0x3, bytes(32)),
            (".BTF", 1, 0, _map_btf()),
        ],
        [
            Sym("execwatch", "tracepoint/syscalls/sys_enter_execve", size=16),
            Sym("pass", "xdp", size=16),
            Sym("helper", ".text", size=16),
            Sym("SCRATCH", "maps", 0, 28, type=1),
            Sym("PERF", "maps", 28, 28, type=1),
            Sym("EVENTS", ".maps", 0, 16, type=1),
            Sym("COUNTS", ".maps", 16, 32, type=1),
        ],
    )


def test_programs_maps_and_types() -> None:
    info = inspect_bytes(sample_object())
    assert [(p.name, p.section, p.type) for p in info.programs] == [
        ("execwatch", "tracepoint/syscalls/sys_enter_execve", "TracePoint"),
        ("pass", "xdp", "Xdp"),
    ]
    maps = {m.name: m for m in info.maps}
    assert set(maps) == {"SCRATCH", "PERF", "EVENTS", "COUNTS", ".rodata", ".bss"}
    assert maps["SCRATCH"].type == "PerCpuArray"
    assert (maps["SCRATCH"].key_size, maps["SCRATCH"].value_size, maps["SCRATCH"].max_entries) == (4, 8, 1)
    assert maps["PERF"].type == "PerfEventArray"
    assert maps["EVENTS"].type == "RingBuf"
    assert maps["EVENTS"].max_entries == 4096
    assert (maps["COUNTS"].type, maps["COUNTS"].key_size, maps["COUNTS"].value_size) == ("HashMap", 4, 8)
    assert maps["COUNTS"].max_entries == 1024
    assert (maps[".rodata"].type, maps[".rodata"].value_size, maps[".rodata"].max_entries) == ("Array", 12, 1)
    assert maps[".bss"].value_size == 32
    assert any(t.name == "Event" and t.kind == "STRUCT" and t.size == 8 for t in info.btf_types)


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ObjectError, match="not an ELF file"):
        inspect_bytes(b"hello world")
    with pytest.raises(ObjectError, match="not a BPF object"):
        inspect_bytes(build_elf([], [], machine=62))
    with pytest.raises(ObjectError, match=r"missing\.o: no such file"):
        inspect_file(tmp_path / "missing.o")


def test_cli_human_and_json(tmp_path: Path) -> None:
    obj = tmp_path / "prog.o"
    obj.write_bytes(sample_object())
    runner = CliRunner()
    result = runner.invoke(app, ["inspect", str(obj)])
    assert result.exit_code == 0, result.output
    assert "execwatch" in result.output
    assert "RingBuf" in result.output
    assert "BTF types" in result.output
    result = runner.invoke(app, ["inspect", str(obj), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"programs", "maps", "btf_types", "kernel_fields"}
    assert {"name": "pass", "section": "xdp", "type": "Xdp"} in doc["programs"]
    assert all(set(m) == {"name", "type", "key_size", "value_size", "max_entries"} for m in doc["maps"])
    assert all(set(t) == {"id", "kind", "name", "size"} for t in doc["btf_types"])


def test_cli_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["inspect", str(tmp_path / "nope.o")])
    assert result.exit_code == 1
    assert "no such file" in result.output
    bad = tmp_path / "bad.o"
    bad.write_bytes(b"not elf")
    result = runner.invoke(app, ["inspect", str(bad)])
    assert result.exit_code == 1
    assert "not an ELF file" in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1
