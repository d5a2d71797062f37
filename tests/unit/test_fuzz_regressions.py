"""Inputs the fuzz harness (fuzz/harness.py) found that escaped as something other than a PyayaError, or took too
long, each rebuilt by hand at its smallest: malformed layouts are refused with ObjectError when a codec is built,
and codecs never raise anything but PyayaError subclasses on what a user passes them."""

from __future__ import annotations

import json
import struct

import pytest
from bpfobj import BtfBuilder, Sym, build_elf, call_relocated_against_data
from pyaya import _native
from pyaya.btf import Btf
from pyaya.errors import MapError, NotFoundError, ObjectError, UnsupportedError
from pyaya.inspect import inspect_bytes
from pyaya.types import RecordType, Types, _PlanBuilder, asdict


def types_of(b: BtfBuilder) -> Types:
    return Types(Btf(b.to_bytes()))


def test_a_member_past_the_end_of_its_struct_is_refused() -> None:
    # A 4-byte struct whose second member sits at byte 4, and one holding a member type bigger than itself: the
    # codec used to read past the value (struct.error) and write past it (BufferError).
    b = BtfBuilder()
    u32 = b.int_("u32", 4)
    long = b.composite("STRUCT", "Long", 4, [("a", u32, 0, 0), ("b", u32, 32, 0)])
    b.composite("STRUCT", "Holder", 80, [("inner", long, 0, 0)])
    big = b.add("ARRAY", "", 0, [u32, u32, 4 << 20])
    b.composite("STRUCT", "Small", 8, [("huge", big, 0, 0)])
    types = types_of(b)
    with pytest.raises(ObjectError, match=r"struct Long\): member 'b' ends at bit 64, past the end of its 4 bytes"):
        types["Long"]
    with pytest.raises(ObjectError, match="struct Long"):
        types["Holder"]
    with pytest.raises(ObjectError, match="member 'huge' ends at bit"):
        types["Small"]


def test_a_bitfield_of_a_struct_is_refused() -> None:
    # The kernel allows bitfields of integers and enums only; a struct-typed one made a layout longer than its
    # record (a negative padding, "bad char in struct format").
    b = BtfBuilder()
    u32 = b.int_("u32", 4)
    inner = b.composite("STRUCT", "Inner", 4, [("x", u32, 0, 0)])
    b.composite("STRUCT", "Flags", 8, [("a", u32, 0, 3), ("rest", inner, 16, 16)])
    with pytest.raises(ObjectError, match="member 'rest' is a bitfield of a STRUCT"):
        types_of(b)["Flags"]


def test_a_large_sparse_struct_has_a_short_layout() -> None:
    # 16 MiB with one field at the end: padding was written out as one "x" per byte (seconds to build).
    b = BtfBuilder()
    u32 = b.int_("u32", 4)
    size = 16 << 20
    b.composite("STRUCT", "Sparse", size, [("last", u32, (size - 4) * 8, 0)])
    codec = types_of(b)["Sparse"]
    plan = _PlanBuilder()
    plan.emit(codec, 0)
    assert "".join(plan.codes) == f"{size - 4}xI"
    assert codec.decode(bytes(size - 4) + struct.pack("<I", 9)).last == 9


def test_unrolled_arrays_stay_within_a_budget() -> None:
    # Arrays of 32 structs of arrays of 32 structs...: each level was unrolled into the plan's expression.
    b = BtfBuilder()
    u8 = b.int_("u8", 1)
    u32 = b.int_("u32", 4)
    inner = b.composite("STRUCT", "Leaf", 2, [("a", u8, 0, 0), ("b", u8, 8, 0)])
    size = 2
    for level in range(4):
        array = b.add("ARRAY", "", 0, [inner, u32, 32])
        size *= 32
        inner = b.composite("STRUCT", f"Level{level}", size, [("items", array, 0, 0)])
    codec = types_of(b)["Level3"]
    plan = _PlanBuilder()
    expression = plan.emit(codec, 0)
    assert len(expression) < 200_000
    record = codec.decode(bytes(range(256)) * (size // 256))
    assert record.items[0].items[0].items[0].items[1] == (2, 3)
    assert record.items[1].items[0].items[0].items[3] == (6, 7)  # 65536 + 6: the bytes repeat every 256


def test_field_names_are_unique_and_records_encode_whatever_their_names() -> None:
    # An anonymous union's "x" beside the struct's own "x", and a member named "__": encoding by name wrote one
    # field's value into the other ("'int' object is not iterable") or looked up a missing attribute.
    b = BtfBuilder()
    u32 = b.int_("u32", 4)
    u8 = b.int_("u8", 1)
    bytes4 = b.add("ARRAY", "", 0, [u8, u32, 4])
    union = b.composite("UNION", "", 4, [("x", bytes4, 0, 0), ("y", u32, 0, 0)])
    b.composite("STRUCT", "Clash", 12, [("x", u32, 0, 0), ("", union, 32, 0), ("__", u32, 64, 0)])
    codec = types_of(b)["Clash"]
    assert codec.field_names == ("x", "x_1", "y", "__")
    data = struct.pack("<III", 7, 0x64636261, 9)
    record = codec.decode(data)
    assert (record.x, record.x_1, record[3]) == (7, b"abcd", 9)
    assert bytes(record) == data
    assert json.loads(json.dumps(asdict(record))) == {"x": 7, "x_1": "61626364", "y": 0x64636261, "__": 9}


def test_a_struct_with_an_undecodable_member_stays_undecodable() -> None:
    # The first lookup failed with UnsupportedError but left a half-built record cached: the next lookup of a type
    # holding it decoded records of the bare Record class ("no attribute '_fields'").
    b = BtfBuilder()
    u32 = b.int_("u32", 4)
    proto = b.add("FUNC_PROTO", "", u32, [], vlen=0)
    broken = b.composite("STRUCT", "Broken", 4, [("f", proto, 0, 0)])
    b.composite("STRUCT", "Holder", 4, [("b", broken, 0, 0)])
    types = types_of(b)
    for name in ("Broken", "Holder", "Broken"):
        with pytest.raises(UnsupportedError, match="FUNC_PROTO"):
            types[name]


def test_names_python_cannot_use_still_decode() -> None:
    b = BtfBuilder()
    u32 = b.int_("u32", 4)
    names = ["", "_sunder_", "mro", "ok", "fine"]
    values = [w for i, name in enumerate(names) for w in (b.s(name), i)]
    b.add("ENUM", "bad name", 4, values, vlen=len(names))
    b.composite("STRUCT", "with space", 4, [("v", u32, 0, 0)])
    types = types_of(b)
    codec = types["bad name"]
    assert [m.name for m in codec.enum] == ["ok", "fine"]
    assert codec.decode(struct.pack("<I", 3)).name == "ok"
    assert codec.decode(struct.pack("<I", 1)) == 1  # "_sunder_": a plain int
    with pytest.raises(NotFoundError, match="has no member 9"):
        codec(9)
    record = types["with space"].decode(b"\1\0\0\0")
    assert (type(record).__name__, record.v) == ("anonymous", 1)


def test_an_enum_without_usable_names_decodes_plain_ints() -> None:
    # Every enumerator's name refused (or none at all): IntEnum(value) raised TypeError, not ValueError.
    b = BtfBuilder()
    b.add("ENUM", "Unnamed", 4, [b.s("_x_"), 1, b.s("mro"), 2], vlen=2)
    b.add("ENUM", "Empty", 4, [], vlen=0)
    types = types_of(b)
    for name in ("Unnamed", "Empty"):
        codec = types[name]
        assert codec.decode(struct.pack("<I", 1)) == 1
        with pytest.raises(NotFoundError):
            codec(1)


def test_wide_ints_zero_sized_arrays_and_huge_counts() -> None:
    b = BtfBuilder()
    u32 = b.int_("u32", 4)
    wide = b.int_("u256", 32)
    empty = b.composite("STRUCT", "Empty", 0, [])
    many = b.add("ARRAY", "", 0, [empty, u32, 0xFFFFFFFF])
    b.composite("STRUCT", "Odd", 36, [("wide", wide, 0, 0), ("nothing", many, 256, 0), ("n", u32, 256, 0)])
    record = types_of(b)["Odd"].decode(bytes(range(36)))
    assert record.wide == bytes(range(32))  # kept as bytes: a 256-bit number is no number anyone prints
    assert record.nothing is None
    assert json.dumps(asdict(record))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("items", 5, "expected a list of up to 2 items, got int"),
        ("ratio", "fast", "expected a float for a 32-bit float, got str"),
        ("name", 3, "expected str or bytes for a 8-byte array, got int 3"),
        ("name", [1, 300], "expected str or bytes for a 8-byte array, got list"),
        ("level", 40, "40 does not fit in a signed 5-bit bitfield"),
        ("level", "x", "expected an int for a 5-bit bitfield, got str"),
    ],
)
def test_wrong_values_are_map_errors(field: str, value: object, message: str) -> None:
    b = BtfBuilder()
    u8 = b.int_("u8", 1)
    u32 = b.int_("u32", 4)
    i32 = b.int_("i32", 4, signed=True)
    f32 = b.add("FLOAT", "f32", 4)
    items = b.add("ARRAY", "", 0, [u32, u32, 2])
    name = b.add("ARRAY", "", 0, [u8, u32, 8])
    b.composite(
        "STRUCT",
        "Values",
        24,
        [("items", items, 0, 0), ("ratio", f32, 64, 0), ("name", name, 96, 0), ("level", i32, 160, 5)],
    )
    codec: RecordType = types_of(b)["Values"]
    with pytest.raises(MapError, match=message):
        codec.encode({field: value})
    assert codec.decode(codec.encode({"name": [104, 105]})).name == "hi"  # a list of byte values is bytes


def test_an_aya_todo_while_relocating_calls_is_an_object_error() -> None:
    # The panic happens in Ebpf.load after the maps exist (tests/kernel/test_native_guard_load.py checks the
    # pins); the object itself parses, so pyaya inspect shows it.
    data = call_relocated_against_data()
    found = _native.inspect_object(data)
    assert [p["name"] for p in found["programs"]] == ["prog"]
    assert [m["name"] for m in found["maps"]] == ["COUNTS"]


def test_a_bss_claiming_terabytes_is_refused_before_aya_allocates_it() -> None:
    # aya-obj allocates a .bss section zeroed while parsing: 2^48 bytes failed the allocation, which aborts the
    # process (no panic to catch) in pyaya inspect and in Ebpf.load alike.
    data = bytearray(build_elf([("xdp", 1, 0x6, bytes(8)), (".bss", 8, 0x3, bytes(8))], [Sym("prog", "xdp", 0, 8)]))
    shoff = struct.unpack_from("<Q", data, 40)[0]
    struct.pack_into("<Q", data, shoff + 2 * 64 + 32, 1 << 48)  # section 2's sh_size
    message = r"section 2 \(.bss\) claims 281474976710656 bytes"
    with pytest.raises(ObjectError, match=message):
        inspect_bytes(bytes(data))
    with pytest.raises(ObjectError, match=message):
        _native.Ebpf.load(bytes(data))
