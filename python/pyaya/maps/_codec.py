"""Codecs: how a map's fixed-size key and value bytes become Python values and back."""

from __future__ import annotations

import abc
import array
import struct
import sys
from collections.abc import Sequence

from pyaya.errors import InvalidArgumentTypeError, MapError, NotFoundError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol, TypeAlias, runtime_checkable

    from pyaya.loader import Ebpf
else:
    # typing.Protocol at run time without importing typing (start-up time), for the one protocol here: Codec.

    class _ProtocolType(abc.ABCMeta):
        """The metaclass of the run-time :class:`Protocol`. A protocol (a class listing ``Protocol`` among its
        bases) cannot be instantiated, and ``isinstance`` accepts whatever has its members (methods not set to
        None), as for a ``@runtime_checkable`` typing protocol, besides its subclasses and registered classes. A
        protocol's subclasses are ordinary classes, checked by inheritance alone, as typing makes them. (Unlike
        typing's, ``issubclass`` answers by inheritance instead of refusing a protocol with a data member.)"""

        def __call__(cls, *args, **kwargs):
            if "_protocol_members" in cls.__dict__:
                raise TypeError("Protocols cannot be instantiated")
            return super().__call__(*args, **kwargs)

        def __instancecheck__(cls, instance):
            members = cls.__dict__.get("_protocol_members")
            if members is not None and all(
                (found := _member(instance, name)) is not _ABSENT
                and (not callable(getattr(cls, name)) or found is not None)
                for name in members
            ):
                return True
            return super().__instancecheck__(instance)

    _ABSENT = object()

    def _member(instance, name):
        """``instance``'s attribute ``name`` as its ``__dict__`` or its class holds it, descriptors not called:
        typing's check calls them (hasattr), and the BTF types' ``decode`` compiles the Python plan when read,
        ~2 ms of a start-up whose records the Rust plan decodes."""
        found = getattr(instance, "__dict__", {}).get(name, _ABSENT)
        if found is _ABSENT:
            for klass in type(instance).__mro__:
                if name in vars(klass):
                    return vars(klass)[name]
        return found

    class Protocol(metaclass=_ProtocolType):
        """The base of run-time protocols; a protocol's members are the names its body defines, dunders aside."""

        def __init_subclass__(cls, **kwargs):
            super().__init_subclass__(**kwargs)
            if Protocol in cls.__bases__:
                cls._protocol_members = tuple(
                    name for name in vars(cls) if not (name.startswith("__") and name.endswith("__"))
                )

    def runtime_checkable(cls):
        """typing.runtime_checkable: the run-time :class:`Protocol` is always checkable."""
        return cls


__all__ = [
    "Buffer",
    "BulkCodec",
    "BytesCodec",
    "Codec",
    "CodecSpec",
    "CtypesCodec",
    "IntCodec",
    "StructCodec",
    "as_bytes",
    "bulk_codec",
    "codec_for",
    "record_codec",
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
        raise InvalidArgumentTypeError(
            f"expected bytes or a buffer (e.g. a ctypes value), got {type(value).__name__}"
        ) from None


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
        import ctypes  # noqa: PLC0415 - loaded already: ctype is one of its types

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
    # Looked up, not imported (~1.5 ms of a start-up): a ctypes type exists only once ctypes is loaded.
    ctypes = sys.modules.get("ctypes")
    if ctypes is None or not isinstance(spec, type):
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
        raise InvalidArgumentTypeError(
            f"cannot decode map data as {spec!r}: use None, int, bytes, a ctypes type, a struct format or a Codec"
        )
    if size is not None and codec.size != size and not (isinstance(codec, BytesCodec) and codec.size == 0):
        raise MapError(f"{codec!r} is {codec.size} bytes but the map's entries are {size} bytes")
    return codec


# -- whole batches: one conversion for the keys (or values) of many entries, back to back ------------------------

# struct codes whose native sizes are the kernel's 1, 2, 4 and 8 bytes; memoryview.cast only takes native codes.
_INT_CODES = {
    (size, signed): code.lower() if signed else code
    for code in "BHIQ"
    for size in (struct.calcsize(code),)
    for signed in (False, True)
}
_STRUCT_ORDER = "<" if BYTE_ORDER == "little" else ">"


class BulkCodec:
    """Decodes and encodes the entries of a whole batch at once, each exactly as ``codec`` does one entry.

    Entries sit every ``stride`` bytes: ``decode_many(data, count, stride, width)`` decodes ``count`` entries of
    ``data``, entry ``i`` being ``data[i * stride : i * stride + width]`` (``width`` defaults to ``stride``: entries
    back to back; per-CPU values have an 8-byte-aligned slot as stride and the value's size as width).
    ``encode_many(values, stride)`` returns the encoded values, each followed by zeros up to ``stride`` bytes.

    This base class calls the codec once per entry. The subclasses for ints, bytes and struct formats convert a
    batch with a few C-level calls and leave any value outside their fast path (bools, negative numbers for
    unsigned codecs, bytes for int codecs, values that do not fit) to the per-entry calls, so results and
    exceptions are the codec's own.
    """

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self.size = codec.size

    def decode_many(self, data: bytes, count: int, stride: int, width: int | None = None) -> list[Any]:
        width = stride if width is None else width
        decode = self.codec.decode
        return [decode(data[offset : offset + width]) for offset in range(0, count * stride, stride)]

    def encode_many(self, values: Sequence[Any], stride: int | None = None) -> bytes:
        encoded = map(self.codec.encode, values)
        if stride is None or stride == self.size:
            return b"".join(encoded)
        pad = bytes(stride - self.size)
        return b"".join(data + pad for data in encoded)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.codec!r})"


class _IntBulk(BulkCodec):
    """Native-order integers of 1, 2, 4 or 8 bytes: one ``memoryview.cast`` to decode, one ``array`` to encode."""

    def __init__(self, codec: Codec, code: str) -> None:
        super().__init__(codec)
        self.code = code

    def decode_many(self, data: bytes, count: int, stride: int, width: int | None = None) -> list[Any]:
        width = stride if width is None else width
        if width != self.size or stride % self.size:
            return super().decode_many(data, count, stride, width)
        view: memoryview[int] = memoryview(data)[: count * stride].cast(self.code)  # type: ignore[call-overload]
        if stride != self.size:
            view = view[:: stride // self.size]  # each value opens its slot; the rest is padding
        return view.tolist()

    def encode_many(self, values: Sequence[Any], stride: int | None = None) -> bytes:
        stride = self.size if stride is None else stride
        # Only ints (and int subclasses such as IntEnum) that fit take the fast path: bools, bytes, ctypes values,
        # negative numbers for unsigned codecs and numbers out of range are the codec's own business.
        if stride % self.size == 0 and all_ints(values):
            try:
                packed = array.array(self.code, values)
            except (OverflowError, TypeError):
                pass
            else:
                if stride == self.size:
                    return packed.tobytes()
                slots = bytearray(len(packed) * stride)
                view: memoryview[int] = memoryview(slots).cast(self.code)  # type: ignore[call-overload]
                view[:: stride // self.size] = packed
                return bytes(slots)
        return super().encode_many(values, stride)


def all_ints(values: Sequence[Any]) -> bool:
    """Whether every value is an int (or of an int subclass such as IntEnum) but not a bool."""
    return all(issubclass(kind, int) and kind is not bool for kind in set(map(type, values)))


class _BytesBulk(BulkCodec):
    """Fixed-size raw bytes: slices of the batch's buffer, or the values joined."""

    def decode_many(self, data: bytes, count: int, stride: int, width: int | None = None) -> list[Any]:
        width = stride if width is None else width
        return [data[offset : offset + width] for offset in range(0, count * stride, stride)]

    def encode_many(self, values: Sequence[Any], stride: int | None = None) -> bytes:
        stride = self.size if stride is None else stride
        if self.size and set(map(type, values)) <= {bytes} and set(map(len, values)) <= {self.size}:
            if stride == self.size:
                return b"".join(values)
            pad = bytes(stride - self.size)
            return pad.join(values) + pad if values else b""
        return super().encode_many(values, stride)


class _StructBulk(BulkCodec):
    """A :mod:`struct` format: ``struct.iter_unpack`` over entries back to back."""

    def __init__(self, codec: StructCodec) -> None:
        super().__init__(codec)
        self.struct = codec.struct
        self.single = codec.fields == 1

    def decode_many(self, data: bytes, count: int, stride: int, width: int | None = None) -> list[Any]:
        width = stride if width is None else width
        if stride != self.size or width != self.size or not self.size:
            return super().decode_many(data, count, stride, width)
        unpacked = self.struct.iter_unpack(memoryview(data)[: count * stride])
        return [value for (value,) in unpacked] if self.single else list(unpacked)


def _int_code(codec: Codec) -> str | None:
    """The native struct code of a codec that is exactly a native-order integer of 1, 2, 4 or 8 bytes both ways
    (ints in, ints out), or None."""
    if isinstance(codec, IntCodec):
        return _INT_CODES.get((codec.size, codec.signed))
    if isinstance(codec, CtypesCodec):
        ctype = codec.ctype
        code = getattr(ctype, "_type_", None)
        # Swapped-order types (c_uint32.__ctype_be__ on little-endian) share the code but not the byte order.
        same_order = getattr(ctype, f"__ctype_{BYTE_ORDER[0]}e__", None) is ctype
        if codec.simple and same_order and isinstance(code, str) and code in "bBhHiIlLqQ":
            return _INT_CODES.get((codec.size, code.islower()))
        return None
    return _btf_int_code(codec)


def _btf_int_code(codec: Codec) -> str | None:
    """The struct code of a BTF integer codec (``pyaya.types``) that decodes plain native-order ints."""
    # Looked up, not imported: pyaya.types imports the maps, and without it loaded no codec can be one of its.
    types = sys.modules.get("pyaya.types")
    if types is None or type(codec) is not getattr(types, "_Int", None):
        return None
    plain = not getattr(codec, "boolean", True) and not getattr(codec, "char", True)
    if not plain or getattr(codec, "byteorder", None) != BYTE_ORDER:
        return None
    return _INT_CODES.get((codec.size, bool(getattr(codec, "signed", None))))


def bulk_codec(codec: Codec) -> BulkCodec:
    """The batch converter for ``codec``: whole-batch conversions for ints, bytes and struct formats, per-entry
    calls for anything else (ctypes structures, records, custom codecs)."""
    if isinstance(codec, BulkCodec):
        return codec
    code = _int_code(codec)
    if code is not None:
        return _IntBulk(codec, code)
    if isinstance(codec, BytesCodec):
        return _BytesBulk(codec)
    if isinstance(codec, StructCodec):
        return _StructBulk(codec)
    return BulkCodec(codec)


def record_codec(spec: Any, ebpf: Ebpf | None) -> Codec:
    """A codec from a BTF type name (looked up in ``ebpf.types``, the object's :class:`pyaya.types.Types`) or
    anything with size/encode/decode. Here, below :mod:`pyaya.types`, because streams call it (types imports maps)."""
    if isinstance(spec, str):
        types = ebpf.types if ebpf is not None else None
        if types is None:
            raise NotFoundError(f"cannot look up type {spec!r}: the object has no BTF (build it with pyaya build)")
        codec = types[spec]
        return codec  # type: ignore[no-any-return]
    if all(hasattr(spec, attribute) for attribute in ("size", "encode", "decode")):
        return spec  # type: ignore[no-any-return]
    raise TypeError(f"expected a BTF type name or a codec (size, encode, decode), got {type(spec).__name__}")
