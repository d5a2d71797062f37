"""pyaya.types on hand-built BTF: record codecs for every kind, map key/value discovery, names listed."""

from __future__ import annotations

import json
from enum import IntEnum

import pytest
from bpfobj import BtfBuilder
from pyaya import _native
from pyaya.btf import Btf
from pyaya.errors import MapError, NotFoundError, ObjectError
from pyaya.types import EnumCodec, MapTypes, RecordType, Types, asdict, map_types, unescape


def _escape(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else f"_{ord(c):02X}_" for c in name)


def build(endian: str = "<") -> Types:
    b = BtfBuilder()
    u8 = b.int_("u8", 1)
    i8 = b.int_("i8", 1, signed=True)
    u16 = b.int_("u16", 2)
    i16 = b.int_("i16", 2, signed=True)
    u32 = b.int_("u32", 4)
    i32 = b.int_("i32", 4, signed=True)
    u64 = b.int_("u64", 8)
    i64 = b.int_("i64", 8, signed=True)
    boolean = b.add("INT", "bool", 1, [(4 << 24) | 8])
    char = b.int_("char", 1, signed=True, char=True)
    float64 = b.add("FLOAT", "f64", 8)
    color = b.add("ENUM", "Color", 4, [b.s("Red"), 1, b.s("Green"), 2], vlen=2)
    u8x16 = b.add("ARRAY", "", 0, [u8, u32, 16])
    u8x8 = b.add("ARRAY", "", 0, [u8, u32, 8])
    u8x4 = b.add("ARRAY", "", 0, [u8, u32, 4])
    charx8 = b.add("ARRAY", "", 0, [char, u32, 8])
    u16x3 = b.add("ARRAY", "", 0, [u16, u32, 3])
    inner = b.composite("STRUCT", "Inner", 8, [("a", u16, 0, 0), ("b", i16, 16, 0), ("tag", u8x4, 32, 0)])
    inner2 = b.add("ARRAY", "", 0, [inner, u32, 2])
    ptr = b.add("PTR", "", inner)
    number = b.composite("UNION", "Number", 8, [("as_u64", u64, 0, 0), ("as_i32", i32, 0, 0)])
    pid_t = b.add("TYPEDEF", "pid_t", i32)
    sample = b.composite(
        "STRUCT",
        "Sample",
        112,
        [
            ("small", u8, 0, 0),
            ("small_signed", i8, 8, 0),
            ("short", u16, 16, 0),
            ("short_signed", i16, 32, 0),
            ("word", u32, 64, 0),
            ("word_signed", i32, 96, 0),
            ("long", u64, 128, 0),
            ("long_signed", i64, 192, 0),
            ("flag", boolean, 256, 0),
            ("color", color, 288, 0),
            ("words", u16x3, 320, 0),
            ("inner", inner, 384, 0),
            ("inners", inner2, 448, 0),
            ("name", u8x16, 576, 0),
            ("blob", u8x8, 704, 0),
            ("comm", charx8, 768, 0),
            ("next", ptr, 832, 0),
        ],
    )
    b.composite("STRUCT", "WithUnion", 24, [("value", number, 0, 0), ("ratio", float64, 64, 0), ("pid", pid_t, 128, 0)])
    # A #[btf_map] definition (in .maps) pointing at its key and value, and a #[map] static whose name carries them.
    key_ptr = b.add("PTR", "", inner)
    value_ptr = b.add("PTR", "", sample)
    type_arr = b.add("ARRAY", "", 0, [i32, u32, 1])
    type_ptr = b.add("PTR", "", type_arr)
    btf_def = b.composite(
        "STRUCT",
        _escape("HashMap<Inner, Sample, 16, 0>"),
        24,
        [("type", type_ptr, 0, 0), ("key", key_ptr, 64, 0), ("value", value_ptr, 128, 0)],
    )
    btf_var = b.add("VAR", "BTF_MAP", btf_def, [1])
    map_def = b.composite("STRUCT", "bpf_map_def", 28, [("type_", u32, 0, 0)])
    legacy = b.composite("STRUCT", _escape("HashMap<u32, my_common::Inner>"), 28, [("def", map_def, 0, 0)])
    legacy_var = b.add("VAR", "LEGACY", legacy, [1])
    array = b.composite("STRUCT", _escape("Array<[u8; 16]>"), 28, [("def", map_def, 0, 0)])
    array_var = b.add("VAR", "NAMES", array, [1])
    tuple_map = b.composite("STRUCT", _escape("HashMap<(u32, u32), i64>"), 28, [("def", map_def, 0, 0)])
    tuple_var = b.add("VAR", "PAIRS", tuple_map, [1])
    b.add("DATASEC", ".maps", 0, [btf_var, 0, 24], vlen=1)
    b.add("DATASEC", "maps", 0, [legacy_var, 0, 28, array_var, 28, 28, tuple_var, 56, 28], vlen=3)
    return Types(Btf(b.to_bytes(endian)))


def sample_bytes(endian: str = "<") -> bytes:
    order = "little" if endian == "<" else "big"

    def n(value: int, size: int) -> bytes:
        return value.to_bytes(size, order, signed=value < 0)

    data = bytearray(112)
    data[0:1] = n(250, 1)
    data[1:2] = n(-5, 1)
    data[2:4] = n(65000, 2)
    data[4:6] = n(-30000, 2)
    data[8:12] = n(4_000_000_000, 4)
    data[12:16] = n(-2_000_000_000, 4)
    data[16:24] = n(18_000_000_000_000_000_000, 8)
    data[24:32] = n(-9_000_000_000_000_000_000, 8)
    data[32] = 1
    data[36:40] = n(2, 4)
    data[40:46] = n(1, 2) + n(2, 2) + n(3, 2)
    data[48:56] = n(7, 2) + n(-7, 2) + bytes([1, 2, 3, 4])
    data[56:64] = n(10, 2) + n(-10, 2) + bytes.fromhex("deadbeef")
    data[64:72] = n(20, 2) + n(-20, 2) + bytes(4)
    data[72:88] = b"hello types".ljust(16, b"\0")
    data[88:96] = bytes(range(0xFF, 0xF7, -1))
    data[96:104] = b"bash\0\0\0\0"
    data[104:112] = n(0xFFFF_8880_0000_1000, 8)
    return bytes(data)


@pytest.mark.parametrize("endian", ["<", ">"])
def test_every_field_kind_decodes(endian: str) -> None:
    types = build(endian)
    sample = types["Sample"](sample_bytes(endian))
    assert (sample.small, sample.small_signed, sample.short, sample.short_signed) == (250, -5, 65000, -30000)
    assert (sample.word, sample.word_signed) == (4_000_000_000, -2_000_000_000)
    assert (sample.long, sample.long_signed) == (18_000_000_000_000_000_000, -9_000_000_000_000_000_000)
    assert sample.flag is True
    assert isinstance(sample.color, IntEnum)
    assert sample.color.name == "Green"
    assert sample.words == [1, 2, 3]
    assert (sample.inner.a, sample.inner.b, sample.inner.tag) == (7, -7, b"\x01\x02\x03\x04")
    assert [i.tag for i in sample.inners] == [bytes.fromhex("deadbeef"), bytes(4)]
    assert sample.name == "hello types"
    assert sample.blob == bytes(range(0xFF, 0xF7, -1))
    assert sample.comm == "bash"
    assert sample.next == 0xFFFF_8880_0000_1000


@pytest.mark.parametrize("endian", ["<", ">"])
def test_round_trip(endian: str) -> None:
    types = build(endian)
    data = sample_bytes(endian)
    sample_type = types["Sample"]
    assert sample_type.encode(sample_type(data)) == data
    assert bytes(sample_type(data)) == data
    assert sample_type.encode(sample_type(data)._asdict()) == data


def test_build_from_fields_and_zero_defaults() -> None:
    types = build()
    inner = types["Inner"](a=1, tag="ab")
    assert (inner.a, inner.b, inner.tag) == (1, 0, b"ab\0\0")
    assert types["Inner"]() == types["Inner"](bytes(8))
    sample = types["Sample"](color="Red", name="x", inner={"a": 3})
    assert sample.color == types["Color"]("Red")
    assert sample.inner.a == 3
    assert sample.name == "x"


def test_json_and_repr() -> None:
    sample = build()["Sample"](sample_bytes())
    plain = json.loads(json.dumps(sample.asdict()))
    assert plain["color"] == "Green"
    assert plain["inner"]["tag"] == "01020304"
    assert plain["inners"][1] == {"a": 20, "b": -20, "tag": "00000000"}
    assert asdict([sample.inner]) == [{"a": 7, "b": -7, "tag": "01020304"}]
    assert repr(sample.inner) == "Inner(a=7, b=-7, tag=b'\\x01\\x02\\x03\\x04')"


def test_union_typedef_float() -> None:
    types = build()
    value = types["WithUnion"](value={"as_u64": 2**40 + 5}, ratio=0.5, pid=-1)
    assert value.value.as_u64 == 2**40 + 5
    assert value.value.as_i32 == 5
    assert value.ratio == 0.5
    assert value.pid == -1
    assert types["pid_t"](b"\xff\xff\xff\xff") == -1


def test_errors_name_the_problem() -> None:
    types = build()
    with pytest.raises(ObjectError, match="too few for struct Inner"):
        types["Inner"](b"\0")
    with pytest.raises(MapError, match="does not fit in a unsigned 16-bit"):
        types["Inner"](a=70000)
    with pytest.raises(MapError, match="no field 'c'"):
        types["Inner"](c=1)
    with pytest.raises(MapError, match="no member 'Blue'"):
        types["Sample"](color="Blue")
    with pytest.raises(MapError, match="do not fit in a 4-byte array"):
        types["Inner"](tag=b"12345")
    with pytest.raises(NotFoundError, match="no type named 'Nope'"):
        types["Nope"]


def test_named_types_leave_out_map_definitions() -> None:
    types = build()
    assert set(types) == {"Color", "Inner", "Number", "pid_t", "Sample", "WithUnion"}
    assert isinstance(types["Sample"], RecordType)
    assert isinstance(types["Color"], EnumCodec)


def test_map_key_and_value_types() -> None:
    types = build()
    found = map_types(types)
    assert set(found) == {"BTF_MAP", "LEGACY", "NAMES", "PAIRS"}
    assert found["BTF_MAP"].key is types["Inner"]
    assert found["BTF_MAP"].value is types["Sample"]
    legacy = found["LEGACY"]
    assert isinstance(legacy, MapTypes)
    assert legacy.key is not None
    assert legacy.key.decode(b"\x05\0\0\0") == 5
    assert legacy.value is types["Inner"]
    names = found["NAMES"]
    assert names.key is None
    assert names.value is not None
    assert names.value.decode(b"hello".ljust(16, b"\0")) == "hello"
    assert found["PAIRS"].key is None  # tuples have no BTF layout to trust
    assert found["PAIRS"].value is not None


def test_kernel_slot_types_of_btf_map_definitions_are_left_out() -> None:
    """aya-ebpf's btf_maps point a perf event array's, a socket map's, a device map's... value at the kernel's slot
    (a u32 fd, bpf_devmap_val) and an index-keyed one's key at its u32 index: neither is the program's data, so
    neither types the map (a legacy declaration of the same map gives none either), and the kernel's structs are
    not listed among the object's types. A hash-keyed one's key is the program's (a SockHash's)."""
    b = BtfBuilder()
    u32 = b.int_("u32", 4)
    i32 = b.int_("i32", 4, signed=True)
    flow = b.composite("STRUCT", "Flow", 8, [("saddr", u32, 0, 0), ("daddr", u32, 32, 0)])
    devmap_val = b.composite("STRUCT", "bpf_devmap_val", 8, [("ifindex", u32, 0, 0), ("bpf_prog", u32, 32, 0)])
    datasec: list[int] = []

    def definition(name: str, kind: str, key: int, value: int) -> None:
        kind_array = b.add("ARRAY", "", 0, [i32, u32, _native.MAP_TYPES.index(kind)])
        members = [("type", b.add("PTR", "", kind_array), 0, 0)]
        members += [("key", b.add("PTR", "", key), 64, 0), ("value", b.add("PTR", "", value), 128, 0)]
        var = b.add("VAR", name, b.composite("STRUCT", _escape(f"{kind}<...>"), 24, members), [1])
        datasec.extend([var, 24 * (len(datasec) // 3), 24])

    definition("EVENTS", "PerfEventArray", u32, u32)
    definition("SOCKETS", "SockMap", u32, u32)
    definition("BY_FLOW", "SockHash", flow, u32)
    definition("PORTS", "DevMapHash", u32, devmap_val)
    definition("COUNTS", "HashMap", u32, flow)
    b.add("DATASEC", ".maps", 0, datasec, vlen=len(datasec) // 3)
    types = Types(Btf(b.to_bytes()))
    found = map_types(types)
    assert (found["EVENTS"].key, found["EVENTS"].value) == (None, None)
    assert (found["SOCKETS"].key, found["SOCKETS"].value) == (None, None)
    assert found["BY_FLOW"].key is types["Flow"]
    assert found["BY_FLOW"].value is None
    ports = found["PORTS"]
    assert ports.key is not None
    assert ports.key.decode(b"\x07\0\0\0") == 7
    assert ports.value is None
    assert found["COUNTS"].value is types["Flow"]
    assert set(types) == {"Flow"}


def test_unescape() -> None:
    assert unescape("HashMap_3C_u32_2C__20_u64_3E_") == "HashMap<u32, u64>"
