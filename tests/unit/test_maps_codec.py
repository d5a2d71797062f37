"""Codecs and per-CPU splitting, without a kernel."""

from __future__ import annotations

import ctypes
import struct

import pytest
from pyaya.errors import MapError
from pyaya.maps import BytesCodec, Codec, CtypesCodec, IntCodec, PerCpuValues, StructCodec, codec_for
from pyaya.maps._core import _PerCpuCodec


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
