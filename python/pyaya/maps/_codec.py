"""Codecs: how a map's fixed-size key and value bytes become Python values and back."""

from __future__ import annotations

import ctypes
import struct
import sys
from typing import Any, Protocol, TypeAlias, runtime_checkable

from pyaya.errors import MapError

__all__ = [
    "Buffer",
    "BytesCodec",
    "Codec",
    "CodecSpec",
    "CtypesCodec",
    "IntCodec",
    "StructCodec",
    "as_bytes",
    "codec_for",
]

Buffer: TypeAlias = bytes | bytearray | memoryview

BYTE_ORDER = sys.byteorder  # the kernel's, hence every map's, byte order


def as_bytes(value: object) -> bytes:
    """The bytes of ``value``: bytes-like objects and anything with the buffer protocol (e.g. ctypes values)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    try:
        return bytes(memoryview(value))  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"expected bytes or a buffer (e.g. a ctypes value), got {type(value).__name__}") from None


@runtime_checkable
class Codec(Protocol):
    """Converts between Python values and fixed-size bytes. ``size`` is the number of bytes ``encode`` returns."""

    @property
    def size(self) -> int: ...

    def encode(self, value: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


class IntCodec:
    """Integers of ``size`` bytes in the kernel's byte order; ``signed`` for two's-complement values."""

    def __init__(self, size: int, *, signed: bool = False) -> None:
        self.size = size
        self.signed = signed

    def encode(self, value: Any) -> bytes:
        if isinstance(value, bool) or not isinstance(value, int):
            data = as_bytes(value)
            if len(data) != self.size:
                raise MapError(f"expected an int or {self.size} bytes, got {len(data)} bytes")
            return data
        try:
            # Unsigned codecs still take negative numbers (two's complement), so -1 means all ones.
            return value.to_bytes(self.size, BYTE_ORDER, signed=self.signed or value < 0)
        except OverflowError:
            kind = "signed" if self.signed else "unsigned"
            raise MapError(f"{value} does not fit in {self.size} bytes ({kind})") from None

    def decode(self, data: bytes) -> int:
        return int.from_bytes(data[: self.size], BYTE_ORDER, signed=self.signed)

    def __repr__(self) -> str:
        return f"IntCodec({self.size}, signed={self.signed})"


class BytesCodec:
    """Raw bytes of exactly ``size`` bytes (any length when ``size`` is 0: stream records)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def encode(self, value: Any) -> bytes:
        data = as_bytes(value)
        if self.size and len(data) != self.size:
            raise MapError(f"expected {self.size} bytes, got {len(data)}")
        return data

    def decode(self, data: bytes) -> bytes:
        return bytes(data)

    def __repr__(self) -> str:
        return f"BytesCodec({self.size})"


class CtypesCodec:
    """A ctypes type: structures decode to instances, simple types (``c_int32``, ...) to their ``.value``."""

    def __init__(self, ctype: type[Any]) -> None:
        self.ctype = ctype
        self.size = ctypes.sizeof(ctype)
        self.simple = issubclass(ctype, ctypes._SimpleCData)

    def encode(self, value: Any) -> bytes:
        if isinstance(value, self.ctype):
            return as_bytes(value)
        if self.simple and isinstance(value, (int, float, bytes)) and not isinstance(value, bool):
            return as_bytes(self.ctype(value))
        data = as_bytes(value)
        if len(data) != self.size:
            raise MapError(f"expected a {self.ctype.__name__} or {self.size} bytes, got {len(data)} bytes")
        return data

    def decode(self, data: bytes) -> Any:
        value = self.ctype.from_buffer_copy(data[: self.size])
        return value.value if self.simple else value

    def __repr__(self) -> str:
        return f"CtypesCodec({self.ctype.__name__})"


class StructCodec:
    """A :mod:`struct` format: one field decodes to its value, several to a tuple."""

    def __init__(self, fmt: str) -> None:
        try:
            self.struct = struct.Struct(fmt)
        except struct.error as error:
            raise MapError(f"bad struct format {fmt!r}: {error}") from None
        self.size = self.struct.size
        self.fields = len(self.struct.unpack(bytes(self.size)))

    def encode(self, value: Any) -> bytes:
        if isinstance(value, (bytes, bytearray, memoryview)) and self.fields == 1 and self.struct.format[-1:] != "s":
            return BytesCodec(self.size).encode(value)
        values = value if isinstance(value, tuple) else (value,)
        try:
            return self.struct.pack(*values)
        except struct.error as error:
            raise MapError(f"cannot pack {value!r} as {self.struct.format!r}: {error}") from None

    def decode(self, data: bytes) -> Any:
        values = self.struct.unpack(data[: self.size])
        return values[0] if self.fields == 1 else values

    def __repr__(self) -> str:
        return f"StructCodec({self.struct.format!r})"


CodecSpec: TypeAlias = "type[Any] | str | Codec | None"


def _is_ctypes_type(spec: object) -> bool:
    if not isinstance(spec, type):
        return False
    try:
        ctypes.sizeof(spec)
    except TypeError:
        return False
    return True


def codec_for(spec: Any, size: int | None) -> Codec:
    """The codec for ``spec`` (None, ``int``, ``bytes``, a ctypes type, a :mod:`struct` format string or a
    :class:`Codec`), checked against ``size`` bytes (``None``: any size, for stream records).

    ``None`` gives ints for 1, 2, 4 and 8 bytes and bytes otherwise; ``int`` is unsigned (use ``ctypes.c_int32`` or
    ``"i"`` for signed values).
    """
    codec: Codec
    if spec is None:
        codec = IntCodec(size) if size in (1, 2, 4, 8) else BytesCodec(size or 0)
    elif spec is int:
        if size not in (1, 2, 4, 8):
            raise MapError(f"int needs 1, 2, 4 or 8 bytes; this map has {size}: use bytes, a ctypes type or a format")
        codec = IntCodec(size)
    elif spec is bytes:
        codec = BytesCodec(size or 0)
    elif isinstance(spec, str):
        codec = StructCodec(spec)
    elif _is_ctypes_type(spec):
        codec = CtypesCodec(spec)
    elif isinstance(spec, Codec) and not isinstance(spec, type):
        codec = spec
    else:
        raise TypeError(
            f"cannot decode map data as {spec!r}: use None, int, bytes, a ctypes type, a struct format or a Codec"
        )
    if size is not None and codec.size != size and not (isinstance(codec, BytesCodec) and codec.size == 0):
        raise MapError(f"{codec!r} is {codec.size} bytes but the map's entries are {size} bytes")
    return codec
