"""pyaya.types decoding plans: exact values for layouts the flat struct.Struct must get right (padding, nesting,
arrays of structs, bitfields, unions, signed ints, enums, byte arrays), checked against hand-packed bytes."""

from __future__ import annotations

import inspect
import struct
from enum import IntEnum

import pytest
from bpfobj import BtfBuilder
from pyaya.btf import Btf
from pyaya.errors import MapError, ObjectError
from pyaya.keycheck import padding_holes
from pyaya.types import Types


def build(endian: str = "<") -> Types:
    b = BtfBuilder()
    u8 = b.int_("u8", 1)
    i8 = b.int_("i8", 1, signed=True)
    u16 = b.int_("u16", 2)
    i32 = b.int_("i32", 4, signed=True)
    u32 = b.int_("u32", 4)
    i64 = b.int_("i64", 8, signed=True)
    u128 = b.int_("u128", 16)
    i128 = b.int_("i128", 16, signed=True)
    boolean = b.add("INT", "bool", 1, [(4 << 24) | 8])
    char = b.int_("char", 1, signed=True, char=True)
    rust_char = b.int_("char", 4, char=True)
    float32 = b.add("FLOAT", "f32", 4)
    state = b.add("ENUM", "State", 4, [b.s("Idle"), 0, b.s("Busy"), 7, b.s("Also"), 7], vlen=3)
    small_enum = b.add("ENUM", "Small", 1, [b.s("One"), 1], vlen=1)
    u8x4 = b.add("ARRAY", "", 0, [u8, u32, 4])
    u8x8 = b.add("ARRAY", "", 0, [u8, u32, 8])
    u8x16 = b.add("ARRAY", "", 0, [u8, u32, 16])
    charx8 = b.add("ARRAY", "", 0, [char, u32, 8])
    u8x8x2 = b.add("ARRAY", "", 0, [u8x8, u32, 2])
    i32x3 = b.add("ARRAY", "", 0, [i32, u32, 3])
    statex2 = b.add("ARRAY", "", 0, [state, u32, 2])
    boolx3 = b.add("ARRAY", "", 0, [boolean, u32, 3])
    # struct Padded { u8 a; /* 3 bytes padding */ u32 b; u8 c; /* 7 */ i64 d; }  = 24 bytes
    b.composite("STRUCT", "Padded", 24, [("a", u8, 0, 0), ("b", u32, 32, 0), ("c", u8, 64, 0), ("d", i64, 128, 0)])
    # struct Point { i32 x; i32 y; } and an outer struct holding one, two, and forty of them.
    point = b.composite("STRUCT", "Point", 8, [("x", i32, 0, 0), ("y", i32, 32, 0)])
    pointx2 = b.add("ARRAY", "", 0, [point, u32, 2])
    pointx40 = b.add("ARRAY", "", 0, [point, u32, 40])
    b.composite(
        "STRUCT",
        "Shapes",
        4 + 8 + 16 + 320 + 4,
        [
            ("id", u32, 0, 0),
            ("origin", point, 32, 0),
            ("pair", pointx2, 96, 0),
            ("many", pointx40, 224, 0),
            ("tail", u32, 2784, 0),
        ],
    )
    # Members declared out of offset order (C anonymous members, hand-written BTF): fields keep declaration order.
    b.composite("STRUCT", "Reordered", 8, [("second", u32, 32, 0), ("first", u32, 0, 0)])
    # struct Flags { u32 kind:3; i32 level:5; u32 rest:24; u8 after; } as C lays bitfields out.
    b.composite(
        "STRUCT",
        "Flags",
        8,
        [("kind", u32, 0, 3), ("level", i32, 3, 5), ("rest", u32, 8, 24), ("after", u8, 32, 0)],
    )
    number = b.composite("UNION", "Number", 8, [("as_i64", i64, 0, 0), ("bytes", u8x8, 0, 0), ("low", u16, 0, 0)])
    b.composite("STRUCT", "Tagged", 16, [("tag", u8, 0, 0), ("value", number, 64, 0)])
    b.composite(
        "STRUCT",
        "Scalars",
        64,
        [
            ("small_signed", i8, 0, 0),
            ("flag", boolean, 8, 0),
            ("small_enum", small_enum, 16, 0),
            ("letter", rust_char, 32, 0),
            ("state", state, 64, 0),
            ("ratio", float32, 96, 0),
            ("big", u128, 128, 0),
            ("big_signed", i128, 256, 0),
            ("states", statex2, 384, 0),
            ("flags", boolx3, 448, 0),
        ],
    )
    b.composite(
        "STRUCT",
        "Texts",
        4 + 8 + 16 + 16 + 8 + 12 + 16,
        [
            ("short", u8x4, 0, 0),
            ("word", u8x8, 32, 0),
            ("name", u8x16, 96, 0),
            ("names", u8x8x2, 224, 0),
            ("comm", charx8, 352, 0),
            ("ints", i32x3, 416, 0),
            ("raw", u8x16, 512, 0),
        ],
    )
    return Types(Btf(b.to_bytes(endian)))


TYPES = build()


def test_padding_is_skipped() -> None:
    data = struct.pack("<B3xIB7xq", 200, 4_000_000_000, 7, -2)
    assert tuple(TYPES["Padded"](data)) == (200, 4_000_000_000, 7, -2)


def test_nested_structs_and_arrays_of_structs() -> None:
    shapes = TYPES["Shapes"]
    points = [(i, -i) for i in range(40)]
    data = struct.pack("<I2i4i80iI", 9, -1, 2, 3, -4, 5, -6, *[v for p in points for v in p], 77)
    value = shapes(data)
    assert value.id == 9
    assert value.origin == TYPES["Point"](x=-1, y=2)
    assert tuple(value.origin) == (-1, 2)
    assert [tuple(p) for p in value.pair] == [(3, -4), (5, -6)]
    assert [tuple(p) for p in value.many] == points  # longer than the unrolled limit: read per element
    assert all(type(p) is TYPES["Point"].record_class for p in value.many)
    assert value.tail == 77
    assert shapes.encode(value) == data


def test_fields_keep_declaration_order() -> None:
    value = TYPES["Reordered"](struct.pack("<II", 1, 2))
    assert value._fields == ("second", "first")
    assert tuple(value) == (2, 1)


def test_bitfields() -> None:
    word = 5 | (0b10011 << 3) | (0xABCDEF << 8)  # kind=5, level=-13 (5 signed bits 10011), rest=0xABCDEF
    flags = TYPES["Flags"](struct.pack("<IB3x", word, 42))
    assert tuple(flags) == (5, -13, 0xABCDEF, 42)
    assert TYPES["Flags"].encode(flags) == struct.pack("<IB3x", word, 42)


def test_union_members_all_decode_the_same_bytes() -> None:
    data = struct.pack("<B7xq", 3, -2)
    tagged = TYPES["Tagged"](data)
    assert tagged.tag == 3
    assert tagged.value.as_i64 == -2
    assert tagged.value.bytes == b"\xfe" + b"\xff" * 7
    assert tagged.value.low == 0xFFFE
    assert tuple(TYPES["Number"](data[8:])) == (-2, b"\xfe" + b"\xff" * 7, 0xFFFE)


def test_scalars_signed_enums_bools_chars_wide_ints() -> None:
    data = (
        struct.pack("<b?B", -100, True, 9)
        + b"\0"
        + struct.pack("<IIf", ord("é"), 7, 0.25)
        + (2**128 - 1).to_bytes(16, "little")
        + (-(2**100)).to_bytes(16, "little", signed=True)
        + struct.pack("<ii", 0, 99)
        + bytes([0, 2, 1])
        + bytes(5)
    )
    value = TYPES["Scalars"](data)
    state = TYPES["State"]
    assert value.small_signed == -100
    assert value.flag is True
    assert value.small_enum == 9
    assert not isinstance(value.small_enum, IntEnum)  # no member 9: the int
    assert value.letter == "é"
    assert value.state is state.enum.Busy  # Also is an alias of Busy
    assert value.ratio == 0.25
    assert value.big == 2**128 - 1
    assert value.big_signed == -(2**100)
    assert value.states == [state.enum.Idle, 99]
    assert value.flags == [False, True, True]  # any non-zero byte is true
    assert TYPES["Scalars"].encode(value) == data[:57] + b"\1" + data[58:]


def test_byte_arrays_text_or_bytes() -> None:
    data = (
        b"ab\0\0"  # shorter than 8 bytes: bytes even when it looks like text
        + b"12345678"  # no NUL: bytes
        + b"caf\xc3\xa9 ok\0\xff\xff".ljust(16, b"\0")  # printable UTF-8 then NUL (junk after it ignored): str
        + b"\xff\xfe\0\0\0\0\0\0"  # not UTF-8: bytes
        + b"tab\there\0"[:8]  # no NUL within 8 bytes: bytes
        + b"x\xffy\0\0\0\0\0"  # char array: always text, bad bytes escaped
        + struct.pack("<3i", -1, 0, 1)
        + b"line\n\0".ljust(16, b"\0")  # not printable: bytes
    )
    value = TYPES["Texts"](data)
    assert value.short == b"ab\0\0"
    assert value.word == b"12345678"
    assert value.name == "café ok"
    assert value.names == [b"\xff\xfe\0\0\0\0\0\0", b"tab\there"]
    assert value.comm == "x\\xffy"
    assert value.ints == [-1, 0, 1]
    assert value.raw == b"line\n\0".ljust(16, b"\0")
    assert TYPES["Texts"](bytes(len(data))).name == ""  # all NUL: empty text


@pytest.mark.parametrize("endian", ["<", ">"])
def test_big_endian_plans(endian: str) -> None:
    types = build(endian)
    data = struct.pack(f"{endian}I2i4i80iI", 1, 2, 3, *range(4), *range(80), 5)
    value = types["Shapes"](data)
    assert (value.id, tuple(value.origin), value.tail) == (1, (2, 3), 5)
    assert [tuple(p) for p in value.many][:2] == [(0, 1), (2, 3)]


def test_decode_accepts_buffers_and_longer_data() -> None:
    data = struct.pack("<B3xIB7xq", 1, 2, 3, 4)
    padded = TYPES["Padded"]
    expected = (1, 2, 3, 4)
    assert tuple(padded(bytearray(data))) == expected
    assert tuple(padded(memoryview(data))) == expected
    assert tuple(padded(data + b"\0" * 7)) == expected  # perf records carry trailing padding
    assert tuple(padded.read(memoryview(b"\xee" * 5 + data), 5)) == expected
    with pytest.raises(ObjectError, match=r"23 bytes are too few for struct Padded \(24 bytes\)"):
        padded(data[:-1])
    with pytest.raises(ObjectError, match="too few for struct Flags"):
        TYPES["Flags"](b"\0")


def test_zero_records() -> None:
    assert tuple(TYPES["Padded"]()) == (0, 0, 0, 0)
    assert TYPES["Texts"]().name == ""


def test_dunder_field_names_do_not_break_records() -> None:
    b = BtfBuilder()
    u32 = b.int_("u32", 4)
    b.composite("STRUCT", "Odd", 8, [("__init__", u32, 0, 0), ("__new__", u32, 32, 0)])
    odd = Types(Btf(b.to_bytes()))["Odd"](struct.pack("<II", 1, 2))
    assert tuple(odd) == (1, 2)
    assert odd._fields == ("__init__", "__new__")


def test_decode_is_the_generated_function_from_the_first_access() -> None:
    padded = build()["Padded"]
    decode = padded.decode  # kept before any record is decoded, as streams and benchmarks do
    assert not inspect.ismethod(decode)
    assert decode is padded.decode
    assert tuple(decode(struct.pack("<B3xIB7xq", 1, 2, 3, 4))) == (1, 2, 3, 4)


@pytest.mark.parametrize("endian", ["<", ">"])
def test_integer_structs_encode_in_one_pack(endian: str) -> None:
    """Structs of plain integers in offset order (map keys, counters) pack with one struct.Struct; the result
    matches the per-field path's, and what the packer refuses still gets the per-field path's errors."""
    padded = build(endian)["Padded"]
    data = struct.pack(f"{endian}B3xIB7xq", 200, 4_000_000_000, 7, -2)
    assert padded._packer() is not None
    assert padded.encode(padded(data)) == data
    assert padded.encode({"a": 200, "b": 4_000_000_000, "c": 7, "d": -2}) == data
    assert padded.encode({"b": 1}) == struct.pack(f"{endian}B3xIB7xq", 0, 1, 0, 0)  # missing fields are zero
    assert bytes(padded(a=1, d=-1)) == struct.pack(f"{endian}B3xIB7xq", 1, 0, 0, -1)
    with pytest.raises(MapError, match="does not fit in a unsigned 8-bit integer"):
        padded.encode({"a": 256})
    with pytest.raises(MapError, match="expected an int"):
        padded.encode({"a": 1.5})
    with pytest.raises(MapError, match="has no field 'e'"):
        padded.encode({"e": 1})


def test_structs_the_packer_cannot_take_use_the_per_field_path() -> None:
    reordered = TYPES["Reordered"]
    assert reordered._packer() is None  # declared out of offset order
    assert reordered.encode({"first": 1, "second": 2}) == struct.pack("<II", 1, 2)
    assert TYPES["Shapes"]._packer() is None  # nested records


#: Field names Rust (or C) allows that collide with the record's own names, Python keywords, dunders, tuple
#: methods, and each other once an alias is made (class / class_ / class__).
ODD_NAMES = [
    "_type",
    "_fields",
    "_asdict",
    "asdict",
    "class",
    "class_",
    "from",
    "None",
    "__init__",
    "__repr__",
    "__class__",
    "__bytes__",
    "count",
    "index",
    "_type_",
]


def _odd_types(union: bool = False) -> Types:
    b = BtfBuilder()
    u32 = b.int_("u32", 4)
    members = [(name, u32, 0 if union else 32 * i, 0) for i, name in enumerate(ODD_NAMES)]
    b.composite("UNION" if union else "STRUCT", "Odd", 4 if union else 4 * len(ODD_NAMES), members)
    b.composite("STRUCT", "Outer", 4 + 4 * len(ODD_NAMES), [("_type", u32, 0, 0), ("inner", 2, 32, 0)])
    return Types(Btf(b.to_bytes()))


def test_any_legal_field_name_decodes_prints_encodes_and_dumps() -> None:
    import json  # noqa: PLC0415

    from pyaya.types import asdict  # noqa: PLC0415

    odd_type = _odd_types()["Odd"]
    data = struct.pack(f"<{len(ODD_NAMES)}I", *range(1, len(ODD_NAMES) + 1))
    odd = odd_type(data)
    assert odd._fields == tuple(ODD_NAMES)
    assert tuple(odd) == tuple(range(1, len(ODD_NAMES) + 1))
    expected = {name: i + 1 for i, name in enumerate(ODD_NAMES)}
    assert odd.asdict() == expected
    assert odd._asdict() == expected
    assert asdict(odd) == expected
    assert json.loads(json.dumps(odd.asdict())) == expected
    assert repr(odd) == "Odd(" + ", ".join(f"{name}={i + 1}" for i, name in enumerate(ODD_NAMES)) + ")"
    assert bytes(odd) == data
    assert odd_type.encode(odd) == data
    assert odd_type.encode(expected) == data
    assert odd_type(**expected) == odd
    # Attributes: the real name where it is free, else the documented alias (name + "_", one more while taken).
    attributes = odd_type.attributes
    assert attributes["count"] == "count"
    assert odd.count == expected["count"]
    assert attributes["_type"] == "_type__"  # "_type_" is another field's name
    assert attributes["class"] == "class__"  # "class_" is another field's name
    assert attributes["asdict"] == "asdict_"
    assert odd.asdict_ == expected["asdict"]
    assert attributes["__init__"] == "__init___"
    for name, attribute in attributes.items():
        assert getattr(odd, attribute) == expected[name], name
    assert getattr(odd, "class") == expected["class"]  # a keyword is also reachable by its own name
    assert getattr(odd, "None") == expected["None"]
    assert len(set(attributes.values())) == len(ODD_NAMES)
    assert isinstance(odd, odd_type.record_class)


def test_odd_field_names_in_nested_records_and_unions() -> None:
    types = _odd_types()
    outer = types["Outer"](struct.pack(f"<I{len(ODD_NAMES)}I", 99, *range(len(ODD_NAMES))))
    assert outer.asdict()["_type"] == 99
    assert outer.asdict()["inner"]["_fields"] == 1
    assert outer._type_ == 99  # only "_type" clashes here: one "_"
    assert bytes(outer) == struct.pack(f"<I{len(ODD_NAMES)}I", 99, *range(len(ODD_NAMES)))
    union = _odd_types(union=True)["Odd"](struct.pack("<I", 5))
    assert set(union.asdict().values()) == {5}
    assert bytes(union) == struct.pack("<I", 5)


def test_padding_holes_of_keys() -> None:
    b = BtfBuilder()
    u8 = b.int_("u8", 1)
    u32 = b.int_("u32", 4)
    b.composite("STRUCT", "Padded", 8, [("pid", u32, 0, 0), ("slot", u8, 32, 0)])
    pad = [(f"_pad{i}", u8, 40 + 8 * i, 0) for i in range(3)]
    b.composite("STRUCT", "Tight", 8, [("pid", u32, 0, 0), ("slot", u8, 32, 0), *pad])
    b.composite("STRUCT", "Gap", 12, [("a", u8, 0, 0), ("b", u32, 32, 0), ("c", u8, 64, 0)])
    types = Types(Btf(b.to_bytes()))
    assert padding_holes(types["Padded"]) == ((5, 3),)
    assert padding_holes(types["Gap"]) == ((1, 3), (9, 3))
    assert padding_holes(types["Tight"]) == ()
    assert padding_holes(types["Gap"].fields[0].node) == ()
