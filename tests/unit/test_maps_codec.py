"""Codecs and per-CPU splitting, without a kernel."""

from __future__ import annotations

import ctypes
import random
import struct
import sys
from enum import IntEnum
from typing import Any

import pytest
from bpfobj import BtfBuilder
from pyaya.btf import Btf
from pyaya.errors import InvalidArgumentTypeError, MapError
from pyaya.maps import BytesCodec, Codec, CtypesCodec, IntCodec, PerCpuValues, StructCodec, codec_for
from pyaya.maps._codec import BulkCodec, bulk_codec
from pyaya.maps._core import _bulk, _PerCpuBulk, _PerCpuCodec
from pyaya.types import Types


class Pair(ctypes.Structure):
    _fields_ = (("a", ctypes.c_uint32), ("b", ctypes.c_int32))


def test_default_codecs_follow_the_size() -> None:
    assert isinstance(codec_for(None, 4), IntCodec)
    assert isinstance(codec_for(None, 16), BytesCodec)
    assert codec_for(None, 8).decode(codec_for(None, 8).encode(2**40)) == 2**40


def test_signedness_comes_from_the_spec() -> None:
    assert codec_for(ctypes.c_int32, 4).decode((-3).to_bytes(4, "little", signed=True)) == -3
    assert codec_for(ctypes.c_uint32, 4).decode((-3).to_bytes(4, "little", signed=True)) == 2**32 - 3
    assert codec_for("<q", 8).decode(struct.pack("<q", -9)) == -9
    assert codec_for(int, 2).decode(b"\xff\xff") == 0xFFFF
    assert codec_for(ctypes.c_int64, 8).encode(-1) == b"\xff" * 8


def test_structures_and_formats() -> None:
    pair = codec_for(Pair, 8)
    assert isinstance(pair, CtypesCodec)
    decoded = pair.decode(pair.encode(Pair(1, -2)))
    assert (decoded.a, decoded.b) == (1, -2)
    fmt = codec_for("<Ii", 8)
    assert isinstance(fmt, StructCodec)
    assert fmt.decode(fmt.encode((1, -2))) == (1, -2)


def test_codec_instances_pass_through_and_sizes_are_checked() -> None:
    custom = IntCodec(4, signed=True)
    assert codec_for(custom, 4) is custom
    assert isinstance(custom, Codec)
    with pytest.raises(MapError, match="4 bytes"):
        codec_for(ctypes.c_int64, 4)
    with pytest.raises(MapError, match="does not fit"):
        IntCodec(1).encode(300)
    with pytest.raises(TypeError):
        codec_for(3.5, 4)


def test_per_cpu_values_split_and_broadcast() -> None:
    codec = _PerCpuCodec(IntCodec(4), 4, 3 * 8)
    assert codec.encode(7) == b"".join((7).to_bytes(4, "little") + bytes(4) for _ in range(3))
    values = codec.decode(codec.encode([1, 2, 3]))
    assert isinstance(values, PerCpuValues)
    assert values == [1, 2, 3]
    assert values.sum() == 6
    with pytest.raises(MapError, match="one value per possible CPU"):
        codec.encode([1, 2])


# -- whole-batch conversions: each must equal the per-entry calls it replaces -------------------------------------


class Color(IntEnum):
    RED = 1
    GREEN = 2


class Custom:
    """A codec outside pyaya: batches go through its own encode/decode, entry by entry."""

    size = 3

    def encode(self, value: Any) -> bytes:
        return bytes(value)

    def decode(self, data: bytes) -> tuple[int, ...]:
        return tuple(data)


def btf_int(name: str, endian: str = "<") -> Codec:
    """The codec ``pyaya.types`` gives maps whose key or value is the Rust primitive ``name``."""
    codec = Types(Btf(BtfBuilder().to_bytes(endian))).parse(name)
    assert codec is not None
    return codec


INT_CODECS = [
    *(IntCodec(size, signed=signed) for size in (1, 2, 4, 8) for signed in (False, True)),
    CtypesCodec(ctypes.c_int16),
    CtypesCodec(ctypes.c_uint32),
    CtypesCodec(ctypes.c_int64),
    CtypesCodec(ctypes.c_ubyte),
    *(btf_int(name) for name in ("u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64")),
]
OTHER_CODECS = [
    BytesCodec(4),
    BytesCodec(13),
    StructCodec("<Ii"),
    StructCodec("<q"),
    StructCodec("5s"),
    StructCodec("<HbB"),
    CtypesCodec(Pair),
    CtypesCodec(ctypes.c_uint32.__ctype_be__ if sys.byteorder == "little" else ctypes.c_uint32.__ctype_le__),
    CtypesCodec(ctypes.c_double),
    CtypesCodec(ctypes.c_bool),
    Custom(),
    btf_int("bool"),
    btf_int("char"),
    btf_int("u32", ">" if sys.byteorder == "little" else "<"),
]
CODECS = INT_CODECS + OTHER_CODECS


def random_entries(codec: Codec, count: int, rng: random.Random) -> bytes:
    if isinstance(codec, CtypesCodec) and codec.ctype is ctypes.c_bool:
        return bytes(rng.randrange(2) for _ in range(count))
    if isinstance(codec, CtypesCodec) and codec.ctype is ctypes.c_double:
        return b"".join(struct.pack("d", rng.uniform(-1e9, 1e9)) for _ in range(count))
    return rng.randbytes(count * codec.size)


def per_entry_decode(codec: Codec, data: bytes, count: int, stride: int, width: int) -> list[Any]:
    return [codec.decode(data[i * stride : i * stride + width]) for i in range(count)]


def assert_same_encoding(codec: Codec, values: list[Any], stride: int | None = None) -> None:
    """The batch encodes ``values`` as the codec does one by one (zero padding up to ``stride``), or raises the
    exception class the first failing value raises."""
    pad = bytes(0 if stride is None else stride - codec.size)
    failure: Exception | None = None
    try:
        expected = b"".join(codec.encode(value) + pad for value in values)
    except Exception as error:
        failure = error
    if failure is None:
        assert bulk_codec(codec).encode_many(values, stride) == expected, values
        return
    with pytest.raises(type(failure)) as raised:
        bulk_codec(codec).encode_many(values, stride)
    assert raised.value.args == failure.args


def same(a: list[Any], b: list[Any]) -> bool:
    """Equal values of equal types (ctypes structures compared by their bytes)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if type(x) is not type(y):
            return False
        if isinstance(x, ctypes.Structure) and bytes(x) != bytes(y):
            return False
        if not isinstance(x, ctypes.Structure) and x != y:
            return False
    return True


@pytest.mark.parametrize("codec", CODECS, ids=repr)
def test_bulk_decode_and_encode_match_the_per_entry_calls(codec: Codec) -> None:
    rng = random.Random(f"{codec!r}")
    bulk = bulk_codec(codec)
    for count in (0, 1, 7, 1000):
        data = random_entries(codec, count, rng)
        decoded = bulk.decode_many(data, count, codec.size)
        assert same(decoded, per_entry_decode(codec, data, count, codec.size, codec.size))
        assert_same_encoding(codec, decoded)
        # Entries in wider slots (as per-CPU values sit) decode and encode the same, padding zeroed.
        stride = (codec.size + 7) // 8 * 8 + 8
        slotted = b"".join(
            data[i * codec.size : (i + 1) * codec.size] + rng.randbytes(stride - codec.size) for i in range(count)
        )
        assert same(bulk.decode_many(slotted, count, stride, codec.size), decoded)
        assert_same_encoding(codec, decoded, stride)


@pytest.mark.parametrize("codec", [*INT_CODECS, BytesCodec(4), StructCodec("<Ii")], ids=repr)
def test_common_codecs_take_the_fast_path(codec: Codec) -> None:
    assert type(bulk_codec(codec)) is not BulkCodec


@pytest.mark.parametrize("codec", OTHER_CODECS[6:], ids=repr)
def test_other_codecs_go_entry_by_entry(codec: Codec) -> None:
    assert type(bulk_codec(codec)) is BulkCodec


@pytest.mark.parametrize("codec", INT_CODECS, ids=repr)
def test_bulk_int_encoding_leaves_odd_values_to_the_codec(codec: Codec) -> None:
    """Negative numbers for unsigned codecs, wrap-around ctypes, bools, bytes, IntEnums: the codec's own results,
    and the codec's own errors."""
    size_bits = codec.size * 8
    odd_batches: list[list[Any]] = [
        [1, -1, 2],
        [Color.GREEN, 3],
        [5, (2).to_bytes(codec.size, sys.byteorder)],
        [2 ** (size_bits - 1), 0],
        [True, 4],
        [2**size_bits, 1],
        [-(2**size_bits), 1],
        [1.5, 1],
        ["x"],
        [7, None],
    ]
    for batch in odd_batches:
        assert_same_encoding(codec, batch)
        assert_same_encoding(codec, batch, codec.size + 8)


@pytest.mark.parametrize(
    "inner",
    [
        IntCodec(4),
        IntCodec(8, signed=True),
        BytesCodec(3),
        StructCodec("<Hb"),
        CtypesCodec(Pair),
        btf_int("u32"),
        Custom(),
    ],
    ids=repr,
)
def test_per_cpu_batches_match_the_per_entry_split(inner: Codec) -> None:
    rng = random.Random(f"per-cpu {inner!r}")
    for cpus in (1, 2, 5):
        codec = _PerCpuCodec(inner, inner.size, cpus * ((inner.size + 7) // 8 * 8))
        bulk = _bulk(codec)
        assert isinstance(bulk, _PerCpuBulk)
        count = 300
        data = b"".join(
            codec.encode([inner.decode(rng.randbytes(inner.size)) for _ in range(cpus)]) for _ in range(count)
        )
        decoded = bulk.decode_many(data, count, codec.size)
        expected = [codec.decode(data[i * codec.size : (i + 1) * codec.size]) for i in range(count)]
        assert all(isinstance(values, PerCpuValues) for values in decoded)
        assert len(decoded) == len(expected)
        assert all(same(list(a), list(b)) for a, b in zip(decoded, expected, strict=True))
        # Writes: PerCpuValues as read back, plain lists, and single values written to every CPU, mixed.
        mixed: list[Any] = [decoded[0], list(decoded[1]), decoded[2][0], *decoded[3:]]
        assert bulk.encode_many(mixed) == b"".join(codec.encode(value) for value in mixed)
        singles = [values[0] for values in decoded]
        assert bulk.encode_many(singles) == b"".join(codec.encode(value) for value in singles)
        with pytest.raises(MapError, match="one value per possible CPU"):
            bulk.encode_many([decoded[0], [decoded[1][0]] * (cpus + 1)])


def test_per_cpu_sum_adds_numbers_and_refuses_what_is_not_one() -> None:
    assert PerCpuValues([1, 2, 3]).sum() == 6
    assert PerCpuValues([[1, 2], [3, 4]]).sum() == [4, 6]
    assert PerCpuValues([]).sum() == 0
    with pytest.raises(InvalidArgumentTypeError, match=r"\[0\] is bytes, not a number"):
        PerCpuValues([[b"a"], [b"b"]]).sum()
    with pytest.raises(InvalidArgumentTypeError, match="the value is bool"):
        PerCpuValues([True, False]).sum()
