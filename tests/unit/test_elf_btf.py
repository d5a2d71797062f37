"""pyaya.elf and pyaya.btf over the native readers: hand-built objects and BTF, plus the running kernel's vmlinux
BTF when present."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from bpfobj import BtfBuilder, Sym, build_elf
from pyaya.btf import VMLINUX_PATH, Btf, BtfComposite, BtfEnum, BtfInt, Kind
from pyaya.elf import Elf
from pyaya.errors import NotFoundError, ObjectError
from pyaya.types import Types


def sample_btf() -> tuple[BtfBuilder, dict[str, int]]:
    b = BtfBuilder()
    ids: dict[str, int] = {}
    ids["u32"] = b.int_("u32", 4)
    ids["int"] = b.int_("int", 4, signed=True)
    ids["char"] = b.int_("char", 1, signed=True, char=True)
    ids["char8"] = b.add("ARRAY", "", 0, [ids["char"], ids["u32"], 8])
    ids["u8"] = b.int_("u8", 1)
    ids["u8x16"] = b.add("ARRAY", "", 0, [ids["u8"], ids["u32"], 16])
    ids["i64"] = b.int_("i64", 8, signed=True)
    ids["inner"] = b.composite(
        "STRUCT", "inner", 8, [("a", ids["u32"], 0, 0), ("flags", ids["u32"], 32, 3), ("mode", ids["int"], 35, 5)]
    )
    ids["anon_union"] = b.composite("UNION", "", 4, [("x", ids["u32"], 0, 0), ("y", ids["int"], 0, 0)])
    ids["event"] = b.composite(
        "STRUCT",
        "event",
        56,
        [
            ("pid", ids["u32"], 0, 0),
            ("tid", ids["int"], 32, 0),
            ("comm", ids["char8"], 64, 0),
            ("inner", ids["inner"], 128, 0),
            ("", ids["anon_union"], 192, 0),
            ("name", ids["u8x16"], 224, 0),
            ("big", ids["i64"], 384, 0),
        ],
    )
    ids["event_t"] = b.add("TYPEDEF", "event_t", ids["event"])
    ids["const"] = b.add("CONST", "", ids["event_t"])
    ids["ptr"] = b.add("PTR", "", ids["event"])
    ids["color"] = b.add("ENUM", "color", 4, [b.s("RED"), 0, b.s("NEG"), 0xFFFFFFFF], vlen=2, kflag=True)
    ids["big"] = b.add("ENUM64", "big", 8, [b.s("HUGE"), 0, 1 << 8], vlen=1)
    ids["fwd"] = b.add("FWD", "fwd_s", 0)
    ids["proto"] = b.add("FUNC_PROTO", "", ids["int"], [b.s("ctx"), ids["ptr"]], vlen=1)
    ids["func"] = b.add("FUNC", "prog", ids["proto"], vlen=1)
    ids["var"] = b.add("VAR", "var", ids["u32"], [1])
    ids["datasec"] = b.add("DATASEC", ".data", 4, [ids["var"], 0, 4], vlen=1)
    ids["float"] = b.add("FLOAT", "double", 8)
    ids["tag"] = b.add("DECL_TAG", "tag", ids["event"], [0xFFFFFFFF])
    ids["type_tag"] = b.add("TYPE_TAG", "user", ids["u32"])
    ids["volatile"] = b.add("VOLATILE", "", ids["type_tag"])
    ids["restrict"] = b.add("RESTRICT", "", ids["ptr"])
    return b, ids


@pytest.mark.parametrize("endian", ["<", ">"])
def test_hand_built_btf_every_kind(endian: str) -> None:
    b, ids = sample_btf()
    btf = Btf.from_bytes(b.to_bytes(endian))
    assert btf.endian == endian
    assert len(btf.types) == len(b.records) + 1
    assert btf.types[0].kind == Kind.UNKN
    assert {t.kind for t in btf.types[1:]} == set(Kind) - {Kind.UNKN}
    event = btf.find("event")
    assert isinstance(event, BtfComposite)
    assert [m.name for m in event.members] == ["pid", "tid", "comm", "inner", "", "name", "big"]
    assert btf.resolve(ids["const"]) == event
    assert btf.resolve(ids["volatile"]).name == "u32"
    assert btf.size_of(ids["ptr"]) == 8
    assert btf.size_of(ids["char8"]) == 8
    assert btf.size_of(ids["event_t"]) == 56
    color = btf.find("color", Kind.ENUM)
    assert isinstance(color, BtfEnum)
    assert [(v.name, v.value) for v in color.values] == [("RED", 0), ("NEG", -1)]
    big = btf.find("big", Kind.ENUM64)
    assert isinstance(big, BtfEnum)
    assert big.values[0].value == 1 << 40
    assert btf.find("fwd_s").kind == Kind.FWD
    assert btf.find("prog", Kind.FUNC).kind == Kind.FUNC
    char = btf.type(ids["char"])
    assert isinstance(char, BtfInt)
    assert char.is_char
    assert char.signed
    with pytest.raises(NotFoundError, match="no BTF type 'nope'"):
        btf.find("nope")


@pytest.mark.parametrize("endian", ["<", ">"])
def test_to_bytes_gives_a_blob_that_parses_to_the_same_types(endian: str) -> None:
    b, _ids = sample_btf()
    original = b.to_bytes(endian)
    btf = Btf.from_bytes(original)
    blob = btf.to_bytes()
    assert blob == original  # the builder lays a blob out as BTF's canonical form: header, types, strings
    again = Btf.from_bytes(blob)
    assert again.endian == endian
    assert [repr(t) for t in again.types] == [repr(t) for t in btf.types]


def test_member_offsets_bitfields_and_anonymous_members() -> None:
    btf = Btf.from_bytes(sample_btf()[0].to_bytes())
    assert btf.member_offset("event", "tid") == 4
    assert btf.member_offset("event", "inner.a") == 16
    assert btf.member_bit_offset("event", "inner.mode")[0] == 128 + 35
    _, flags = btf.member_bit_offset("inner", "flags")
    assert flags.bitfield_size == 3
    assert btf.member_offset("event", "y") == 24  # through the anonymous union
    with pytest.raises(NotFoundError, match="no member 'nope'"):
        btf.member_offset("event", "inner.nope")
    with pytest.raises(NotFoundError, match="not a struct"):
        btf.member_offset("event", "pid.x")


@pytest.mark.parametrize("endian", ["<", ">"])
def test_decode_struct(endian: str) -> None:
    b, ids = sample_btf()
    types = Types(Btf.from_bytes(b.to_bytes(endian)))
    inner_bits = 5 | (-3 & 0x1F) << 3 if endian == "<" else (5 << 5 | (-3 & 0x1F)) << 24
    record = (
        struct.pack(f"{endian}Ii", 42, -7)
        + b"bash\0\0\0\0"
        + struct.pack(f"{endian}I", 9)
        + (inner_bits.to_bytes(4, "little" if endian == "<" else "big"))
        + struct.pack(f"{endian}I", 0xFFFFFFFF)
        + b"hello\0" + bytes(10)
        + bytes(4)
        + struct.pack(f"{endian}q", -(1 << 40))
    )  # fmt: skip
    assert len(record) == 56
    decoded = types.by_id(ids["const"]).decode(record)
    assert decoded._asdict() == {
        "pid": 42,
        "tid": -7,
        "comm": "bash",
        "inner": {"a": 9, "flags": 5, "mode": -3},
        "x": 0xFFFFFFFF,
        "y": -1,
        "name": "hello",
        "big": -(1 << 40),
    }
    # A byte array that is not a printable string stays bytes.
    raw = bytearray(record)
    raw[28:44] = bytes(range(1, 17))
    assert types["event"](bytes(raw)).name == bytes(range(1, 17))
    with pytest.raises(ObjectError, match="too few"):
        types["event"](record[:10])


def test_btf_errors() -> None:
    with pytest.raises(ObjectError, match="not BTF"):
        Btf.from_bytes(b"\x00" * 32)
    with pytest.raises(ObjectError, match="truncated BTF"):
        Btf.from_bytes(b"\x9f\xeb\x01\x00")
    data = sample_btf()[0].to_bytes()
    with pytest.raises(ObjectError, match="truncated BTF"):
        Btf.from_bytes(data[:100])


def test_elf_sections_and_symbols_both_endians() -> None:
    for endian in "<>":
        data = build_elf(
            [("xdp", 1, 0x6, bytes(16)), (".bss", 8, 0x3, bytes(32))], [Sym("prog", "xdp", size=16)], endian
        )
        elf = Elf(data)
        assert elf.header.is_bpf
        assert elf.endian == endian
        assert [s.name for s in elf.sections] == ["", "xdp", ".bss", ".symtab", ".strtab", ".shstrtab"]
        xdp = elf.section("xdp")
        assert xdp is not None
        assert xdp.is_executable
        assert elf.section_data(".bss") == b""
        prog = next(s for s in elf.symbols if s.name == "prog")
        assert prog.is_function
        assert prog.is_global
        assert elf.section_of(prog) == xdp


def test_elf_errors(tmp_path: Path) -> None:
    with pytest.raises(ObjectError, match=r"not an ELF file \(magic 23 21 2f 62"):
        Elf(b"#!/bin/sh\n")
    with pytest.raises(ObjectError, match="not an ELF file"):
        Elf(b"")
    data = build_elf([("xdp", 1, 0x6, bytes(16))], [Sym("prog", "xdp")])
    with pytest.raises(
        ObjectError, match=rf"truncated: the section header table ends at byte {len(data)} of {len(data) - 10}"
    ):
        Elf(data[:-10])
    with pytest.raises(ObjectError, match="truncated: the ELF header"):
        Elf(data[:40])
    with pytest.raises(ObjectError, match="no such file"):
        Elf.from_path(tmp_path / "missing.o")


@pytest.mark.skipif(not VMLINUX_PATH.exists(), reason=f"{VMLINUX_PATH} does not exist on this kernel")
def test_vmlinux_btf() -> None:
    # How long this takes is measured in benchmarks/kernel_offsets.py, not asserted here.
    btf = Btf.vmlinux()
    task = btf.find("task_struct", Kind.STRUCT)
    assert len(btf) > 10_000
    assert task.size is not None
    assert task.size > 1000
    real_parent = btf.member_offset("task_struct", "real_parent")
    pid = btf.member_offset("task_struct", "pid")
    assert 0 < pid < task.size
    assert 0 < real_parent < task.size
    _, member = btf.member_bit_offset("task_struct", "real_parent")
    assert btf.resolve(member.type_id).kind == Kind.PTR
    assert btf.find("bpf_fentry_test1", Kind.FUNC).kind == Kind.FUNC


@pytest.mark.parametrize("type_id", [-1, 10_000, 1 << 40])
def test_bad_ids_are_not_found_errors(type_id: int) -> None:
    btf = Btf.from_bytes(sample_btf()[0].to_bytes())
    for query in (btf.type, btf.resolve, btf.size_of, btf.kind_of, btf.name_of, btf.describe, btf.check_value):
        with pytest.raises(NotFoundError, match="no BTF type with id"):
            query(type_id)
    with pytest.raises(NotFoundError, match="no BTF type with id"):
        btf.member_offset(type_id, "pid")


def test_malformed_btf_is_refused_when_parsed() -> None:
    b, _ = sample_btf()
    b.add("PTR", "", 999)  # a reference past the last type
    with pytest.raises(ObjectError, match=r"its target is type 999, but the last type is"):
        Btf.from_bytes(b.to_bytes())
    b, _ = sample_btf()
    loop = len(b.records) + 1
    b.add("TYPEDEF", "a", loop + 1)
    b.add("TYPEDEF", "b", loop)
    btf = Btf.from_bytes(b.to_bytes())
    with pytest.raises(ObjectError, match="a loop"):
        btf.resolve(loop)
    with pytest.raises(ObjectError, match="within itself"):
        btf.check_value(loop)
