"""A BTF parser: the format of the kernel's ``include/uapi/linux/btf.h``.

Reads the ``.BTF`` section of a BPF object or the kernel's own ``/sys/kernel/btf/vmlinux`` (both byte orders), and
answers what pyaya needs: types by name, member offsets through nested and anonymous members, modifier-free
resolution, and :meth:`Btf.decode`, which turns the bytes of a ``#[repr(C)]`` value (a ring buffer record, a map
value) into Python values by its BTF type.

Parsing is two-phase so that vmlinux (~6 MB, ~150k types) stays fast: the constructor makes one pass that records
where each type starts, and :class:`BtfType` objects are built on first access (:meth:`Btf.type`,
:attr:`Btf.types`). The string section is decoded once, lazily.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterator
from enum import IntEnum
from functools import cached_property
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pyaya.errors import NotFoundError, ObjectError

if TYPE_CHECKING:
    from pyaya.elf import Elf

__all__ = [
    "VMLINUX_PATH",
    "Btf",
    "BtfArray",
    "BtfComposite",
    "BtfDatasec",
    "BtfDeclTag",
    "BtfEnum",
    "BtfEnumValue",
    "BtfFloat",
    "BtfFunc",
    "BtfFuncProto",
    "BtfFwd",
    "BtfInt",
    "BtfMember",
    "BtfParam",
    "BtfPtr",
    "BtfRef",
    "BtfType",
    "BtfVar",
    "BtfVarSecinfo",
    "BtfVoid",
    "Kind",
]

VMLINUX_PATH = Path("/sys/kernel/btf/vmlinux")
BTF_MAGIC = 0xEB9F
_HEADER = struct.Struct("HBBIIIII")  # without byte order; prefixed at use

INT_SIGNED = 1
INT_CHAR = 2
INT_BOOL = 4


class Kind(IntEnum):
    """``BTF_KIND_*``."""

    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


_MODIFIERS = frozenset({Kind.TYPEDEF, Kind.CONST, Kind.VOLATILE, Kind.RESTRICT, Kind.TYPE_TAG})
# How many u32 words follow the 3-word common header, per kind: a constant, or per vlen entry.
_EXTRA_FIXED = {Kind.INT: 1, Kind.ARRAY: 3, Kind.VAR: 1, Kind.DECL_TAG: 1}
_EXTRA_PER_VLEN = {
    Kind.STRUCT: 3,
    Kind.UNION: 3,
    Kind.ENUM: 2,
    Kind.FUNC_PROTO: 2,
    Kind.DATASEC: 3,
    Kind.ENUM64: 3,
}
_MAX_KIND = max(Kind)


# -- the types ---------------------------------------------------------------------------------------------------


class _Frozen:
    """Immutable records compared and hashed by their fields, like a frozen dataclass. Written out by hand: the
    ~20 frozen slots dataclasses this module had cost ~16 ms at every import of pyaya (each generated its
    methods with exec and its class twice), and every ``pyaya run`` imports this module."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({values})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self._fields)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, name) for name in self._fields))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: {type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: {type(self).__name__} is immutable")


_set = object.__setattr__


class BtfType(_Frozen):
    """What every BTF type has. ``size`` is the byte size for kinds that carry one (INT, STRUCT, UNION, ENUM,
    ENUM64, DATASEC, FLOAT), else None; :meth:`Btf.size_of` computes it for the others."""

    __slots__ = ("id", "kind", "kind_flag", "name", "size")
    _fields: ClassVar[tuple[str, ...]] = ("id", "kind", "name", "size", "kind_flag")

    id: int
    kind: Kind
    name: str
    size: int | None
    kind_flag: bool

    def __init__(self, id: int, kind: Kind, name: str, size: int | None, kind_flag: bool) -> None:
        _set(self, "id", id)
        _set(self, "kind", kind)
        _set(self, "name", name)
        _set(self, "size", size)
        _set(self, "kind_flag", kind_flag)


class BtfVoid(BtfType):
    """Type id 0."""

    __slots__ = ()


class BtfInt(BtfType):
    __slots__ = ("bit_offset", "bits", "encoding")
    _fields: ClassVar[tuple[str, ...]] = ("id", "kind", "name", "size", "kind_flag", "encoding", "bit_offset", "bits")

    encoding: int
    """``BTF_INT_SIGNED`` (1), ``BTF_INT_CHAR`` (2), ``BTF_INT_BOOL`` (4), or 0."""
    bit_offset: int
    bits: int

    def __init__(  # noqa: PLR0917 - positional, as the parser builds them
        self,
        id: int,
        kind: Kind,
        name: str,
        size: int | None,
        kind_flag: bool,
        encoding: int,
        bit_offset: int,
        bits: int,
    ) -> None:
        _set(self, "id", id)
        _set(self, "kind", kind)
        _set(self, "name", name)
        _set(self, "size", size)
        _set(self, "kind_flag", kind_flag)
        _set(self, "encoding", encoding)
        _set(self, "bit_offset", bit_offset)
        _set(self, "bits", bits)

    @property
    def signed(self) -> bool:
        return bool(self.encoding & INT_SIGNED)

    @property
    def is_char(self) -> bool:
        return bool(self.encoding & INT_CHAR) or self.name in ("char", "signed char", "unsigned char", "c_char")

    @property
    def is_bool(self) -> bool:
        return bool(self.encoding & INT_BOOL)


class BtfRef(BtfType):
    """PTR, TYPEDEF, VOLATILE, CONST, RESTRICT and TYPE_TAG: a type that refers to one other type."""

    __slots__ = ("type_id",)
    _fields: ClassVar[tuple[str, ...]] = ("id", "kind", "name", "size", "kind_flag", "type_id")

    type_id: int

    def __init__(  # noqa: PLR0917 - positional, as the parser builds them
        self, id: int, kind: Kind, name: str, size: int | None, kind_flag: bool, type_id: int
    ) -> None:
        _set(self, "id", id)
        _set(self, "kind", kind)
        _set(self, "name", name)
        _set(self, "size", size)
        _set(self, "kind_flag", kind_flag)
        _set(self, "type_id", type_id)


class BtfPtr(BtfRef):
    __slots__ = ()


class BtfArray(BtfType):
    __slots__ = ("index_type_id", "nelems", "type_id")
    _fields: ClassVar[tuple[str, ...]] = (
        "id",
        "kind",
        "name",
        "size",
        "kind_flag",
        "type_id",
        "index_type_id",
        "nelems",
    )

    type_id: int
    """The element type."""
    index_type_id: int
    nelems: int

    def __init__(  # noqa: PLR0917 - positional, as the parser builds them
        self,
        id: int,
        kind: Kind,
        name: str,
        size: int | None,
        kind_flag: bool,
        type_id: int,
        index_type_id: int,
        nelems: int,
    ) -> None:
        _set(self, "id", id)
        _set(self, "kind", kind)
        _set(self, "name", name)
        _set(self, "size", size)
        _set(self, "kind_flag", kind_flag)
        _set(self, "type_id", type_id)
        _set(self, "index_type_id", index_type_id)
        _set(self, "nelems", nelems)


class BtfMember(_Frozen):
    __slots__ = ("bit_offset", "bitfield_size", "name", "type_id")
    _fields: ClassVar[tuple[str, ...]] = ("name", "type_id", "bit_offset", "bitfield_size")

    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int
    """0 unless the member is a bitfield (kind_flag encoding, or an INT with a partial width)."""

    def __init__(self, name: str, type_id: int, bit_offset: int, bitfield_size: int) -> None:
        _set(self, "name", name)
        _set(self, "type_id", type_id)
        _set(self, "bit_offset", bit_offset)
        _set(self, "bitfield_size", bitfield_size)

    @property
    def offset(self) -> int:
        """Byte offset of the byte holding the member's first bit."""
        return self.bit_offset // 8


class BtfComposite(BtfType):
    """STRUCT and UNION."""

    __slots__ = ("members",)
    _fields: ClassVar[tuple[str, ...]] = ("id", "kind", "name", "size", "kind_flag", "members")

    members: tuple[BtfMember, ...]

    def __init__(  # noqa: PLR0917 - positional, as the parser builds them
        self, id: int, kind: Kind, name: str, size: int | None, kind_flag: bool, members: tuple[BtfMember, ...]
    ) -> None:
        _set(self, "id", id)
        _set(self, "kind", kind)
        _set(self, "name", name)
        _set(self, "size", size)
        _set(self, "kind_flag", kind_flag)
        _set(self, "members", members)


class BtfEnumValue(_Frozen):
    __slots__ = ("name", "value")
    _fields: ClassVar[tuple[str, ...]] = ("name", "value")

    name: str
    value: int

    def __init__(self, name: str, value: int) -> None:
        _set(self, "name", name)
        _set(self, "value", value)


class BtfEnum(BtfType):
    """ENUM and ENUM64; ``kind_flag`` means signed values."""

    __slots__ = ("values",)
    _fields: ClassVar[tuple[str, ...]] = ("id", "kind", "name", "size", "kind_flag", "values")

    values: tuple[BtfEnumValue, ...]

    def __init__(  # noqa: PLR0917 - positional, as the parser builds them
        self, id: int, kind: Kind, name: str, size: int | None, kind_flag: bool, values: tuple[BtfEnumValue, ...]
    ) -> None:
        _set(self, "id", id)
        _set(self, "kind", kind)
        _set(self, "name", name)
        _set(self, "size", size)
        _set(self, "kind_flag", kind_flag)
        _set(self, "values", values)

    @property
    def signed(self) -> bool:
        return self.kind_flag


class BtfFwd(BtfType):
    __slots__ = ()

    @property
    def is_union(self) -> bool:
        return self.kind_flag


class BtfFunc(BtfType):
    __slots__ = ("linkage", "type_id")
    _fields: ClassVar[tuple[str, ...]] = ("id", "kind", "name", "size", "kind_flag", "type_id", "linkage")

    type_id: int
    """The FUNC_PROTO."""
    linkage: int
    """0 static, 1 global, 2 extern."""

    def __init__(  # noqa: PLR0917 - positional, as the parser builds them
        self, id: int, kind: Kind, name: str, size: int | None, kind_flag: bool, type_id: int, linkage: int
    ) -> None:
        _set(self, "id", id)
        _set(self, "kind", kind)
        _set(self, "name", name)
        _set(self, "size", size)
        _set(self, "kind_flag", kind_flag)
        _set(self, "type_id", type_id)
        _set(self, "linkage", linkage)


class BtfParam(_Frozen):
    __slots__ = ("name", "type_id")
    _fields: ClassVar[tuple[str, ...]] = ("name", "type_id")

    name: str
    type_id: int

    def __init__(self, name: str, type_id: int) -> None:
        _set(self, "name", name)
        _set(self, "type_id", type_id)


class BtfFuncProto(BtfType):
    __slots__ = ("params", "return_type_id")
    _fields: ClassVar[tuple[str, ...]] = ("id", "kind", "name", "size", "kind_flag", "return_type_id", "params")

    return_type_id: int
    params: tuple[BtfParam, ...]

    def __init__(  # noqa: PLR0917 - positional, as the parser builds them
        self,
        id: int,
        kind: Kind,
        name: str,
        size: int | None,
        kind_flag: bool,
        return_type_id: int,
        params: tuple[BtfParam, ...],
    ) -> None:
        _set(self, "id", id)
        _set(self, "kind", kind)
        _set(self, "name", name)
        _set(self, "size", size)
        _set(self, "kind_flag", kind_flag)
        _set(self, "return_type_id", return_type_id)
        _set(self, "params", params)


class BtfVar(BtfType):
    __slots__ = ("linkage", "type_id")
    _fields: ClassVar[tuple[str, ...]] = ("id", "kind", "name", "size", "kind_flag", "type_id", "linkage")

    type_id: int
    linkage: int

    def __init__(  # noqa: PLR0917 - positional, as the parser builds them
        self, id: int, kind: Kind, name: str, size: int | None, kind_flag: bool, type_id: int, linkage: int
    ) -> None:
        _set(self, "id", id)
        _set(self, "kind", kind)
        _set(self, "name", name)
        _set(self, "size", size)
        _set(self, "kind_flag", kind_flag)
        _set(self, "type_id", type_id)
        _set(self, "linkage", linkage)


class BtfVarSecinfo(_Frozen):
    __slots__ = ("offset", "size", "type_id")
    _fields: ClassVar[tuple[str, ...]] = ("type_id", "offset", "size")

    type_id: int
    offset: int
    size: int

    def __init__(self, type_id: int, offset: int, size: int) -> None:
        _set(self, "type_id", type_id)
        _set(self, "offset", offset)
        _set(self, "size", size)


class BtfDatasec(BtfType):
    __slots__ = ("vars",)
    _fields: ClassVar[tuple[str, ...]] = ("id", "kind", "name", "size", "kind_flag", "vars")

    vars: tuple[BtfVarSecinfo, ...]

    def __init__(  # noqa: PLR0917 - positional, as the parser builds them
        self, id: int, kind: Kind, name: str, size: int | None, kind_flag: bool, vars: tuple[BtfVarSecinfo, ...]
    ) -> None:
        _set(self, "id", id)
        _set(self, "kind", kind)
        _set(self, "name", name)
        _set(self, "size", size)
        _set(self, "kind_flag", kind_flag)
        _set(self, "vars", vars)


class BtfFloat(BtfType):
    __slots__ = ()


class BtfDeclTag(BtfType):
    __slots__ = ("component_idx", "type_id")
    _fields: ClassVar[tuple[str, ...]] = ("id", "kind", "name", "size", "kind_flag", "type_id", "component_idx")

    type_id: int
    component_idx: int
    """-1 when the tag applies to the type itself, else the member or parameter index."""

    def __init__(  # noqa: PLR0917 - positional, as the parser builds them
        self, id: int, kind: Kind, name: str, size: int | None, kind_flag: bool, type_id: int, component_idx: int
    ) -> None:
        _set(self, "id", id)
        _set(self, "kind", kind)
        _set(self, "name", name)
        _set(self, "size", size)
        _set(self, "kind_flag", kind_flag)
        _set(self, "type_id", type_id)
        _set(self, "component_idx", component_idx)


# -- the parser --------------------------------------------------------------------------------------------------


class Btf:
    """Parsed BTF: ``btf.types[id]`` is the type with that id (``types[0]`` is void)."""

    endian: str
    """``"<"`` or ``">"``: the byte order of the BTF, and so of the target's data."""

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        data = bytes(data)
        if len(data) < 24:
            raise ObjectError(f"truncated BTF: {len(data)} bytes, the header alone needs 24")
        if data[:2] == b"\x9f\xeb":
            self.endian = "<"
        elif data[:2] == b"\xeb\x9f":
            self.endian = ">"
        else:
            raise ObjectError(f"not BTF (magic {data[:2].hex(' ')}, expected 9f eb or eb 9f)")
        _, version, flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
            self.endian + _HEADER.format, data
        )
        if version != 1:
            raise ObjectError(f"unsupported BTF version {version}")
        if hdr_len < 24 or hdr_len > len(data):
            raise ObjectError(f"bad BTF header length {hdr_len} ({len(data)} bytes of data)")
        self.flags = flags
        type_start, str_start = hdr_len + type_off, hdr_len + str_off
        if type_start + type_len > len(data):
            raise ObjectError(f"truncated BTF: type section ends at byte {type_start + type_len} of {len(data)}")
        if str_start + str_len > len(data):
            raise ObjectError(f"truncated BTF: string section ends at byte {str_start + str_len} of {len(data)}")
        if type_len % 4:
            raise ObjectError(f"BTF type section length {type_len} is not a multiple of 4")
        self._strings = data[str_start : str_start + str_len]
        if self._strings and self._strings[-1] != 0:
            raise ObjectError("BTF string section is not NUL-terminated")
        words = array("I")
        words.frombytes(data[type_start : type_start + type_len])
        if (self.endian == "<") != (sys.byteorder == "little"):
            words.byteswap()
        self._words = words
        self._starts = self._index(words)
        self._cache: dict[int, BtfType] = {}

    @staticmethod
    def _index(words: array[int]) -> array[int]:
        """One pass over the type section: the word index where each type (from id 1) starts."""
        starts = array("I", [0])  # id 0 (void) has no record
        append = starts.append
        fixed, per_vlen = _EXTRA_FIXED, _EXTRA_PER_VLEN
        n = len(words)
        i = 0
        while i < n:
            if i + 3 > n:
                raise ObjectError(f"truncated BTF type {len(starts)} at byte {i * 4}")
            info = words[i + 1]
            kind = (info >> 24) & 0x1F
            if kind == 0 or kind > _MAX_KIND:
                raise ObjectError(f"BTF type {len(starts)} has unknown kind {kind}")
            append(i)
            i += 3 + fixed.get(kind, 0) + per_vlen.get(kind, 0) * (info & 0xFFFF)  # type: ignore[call-overload]
        if i != n:
            raise ObjectError(f"truncated BTF: type {len(starts) - 1} runs past the type section")
        return starts

    # -- constructors ----------------------------------------------------------------------------------------------

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Btf:
        return cls(data)

    @classmethod
    def from_elf(cls, elf: Elf) -> Btf:
        """The ``.BTF`` section of an object; :class:`ObjectError` if it has none."""
        section = elf.section(".BTF")
        if section is None:
            raise ObjectError("the object has no .BTF section (build with -Clink-arg=--btf and debuginfo)")
        return cls(elf.section_data(section))

    @classmethod
    def from_path(cls, path: str | Path) -> Btf:
        """A raw BTF file (like vmlinux's) or an ELF object with a ``.BTF`` section."""
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise ObjectError(f"{path}: {error.strerror or error}") from None
        if data[:4] == b"\x7fELF":
            from pyaya.elf import Elf  # noqa: PLC0415 (elf imports nothing from here; keep btf importable alone)

            return cls.from_elf(Elf(data))
        return cls(data)

    @classmethod
    def vmlinux(cls, path: str | Path = VMLINUX_PATH) -> Btf:
        """The running kernel's BTF (``/sys/kernel/btf/vmlinux``); :class:`ObjectError` when it is absent."""
        return cls.from_path(path)

    # -- strings ---------------------------------------------------------------------------------------------------

    @cached_property
    def _string_map(self) -> dict[int, str] | None:
        """Offset -> string for every string, when the section is ASCII (vmlinux is); else None (decode one by one)."""
        raw = self._strings
        if not raw.isascii():
            return None
        parts = raw.decode("ascii").split("\0")
        offsets = accumulate((len(p) + 1 for p in parts), initial=0)
        return dict(zip(offsets, parts, strict=False))

    def string(self, offset: int) -> str:
        """The string at ``offset`` in the string section."""
        table = self._string_map
        if table is not None:
            found = table.get(offset)
            if found is not None:
                return found
        if offset >= len(self._strings):
            raise ObjectError(f"BTF string offset {offset} is outside the string section ({len(self._strings)} bytes)")
        end = self._strings.index(b"\0", offset)
        return self._strings[offset:end].decode("utf-8", errors="replace")

    # -- types -----------------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of type ids, void included (the largest id is ``len(btf) - 1``)."""
        return len(self._starts)

    def type(self, type_id: int) -> BtfType:
        """The type with id ``type_id``; :class:`NotFoundError` if there is none."""
        found = self._cache.get(type_id)
        if found is None:
            if not 0 <= type_id < len(self._starts):
                raise NotFoundError(f"no BTF type with id {type_id} (ids go up to {len(self._starts) - 1})")
            found = self._build(type_id)
            self._cache[type_id] = found
        return found

    __getitem__ = type

    def __iter__(self) -> Iterator[BtfType]:
        return (self.type(i) for i in range(len(self._starts)))

    @cached_property
    def types(self) -> list[BtfType]:
        """Every type, index == id (``types[0]`` is :class:`BtfVoid`)."""
        return list(self)

    def _build(self, type_id: int) -> BtfType:
        if type_id == 0:
            return BtfVoid(0, Kind.UNKN, "void", 0, False)
        w = self._words
        i = self._starts[type_id]
        name_off, info, size_or_type = w[i], w[i + 1], w[i + 2]
        kind = Kind((info >> 24) & 0x1F)
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        name = self.string(name_off)
        j = i + 3
        if kind == Kind.INT:
            enc = w[j]
            return BtfInt(type_id, kind, name, size_or_type, kflag, (enc >> 24) & 0x0F, (enc >> 16) & 0xFF, enc & 0xFF)
        if kind == Kind.PTR:
            return BtfPtr(type_id, kind, name, None, kflag, size_or_type)
        if kind in _MODIFIERS:
            return BtfRef(type_id, kind, name, None, kflag, size_or_type)
        if kind == Kind.ARRAY:
            return BtfArray(type_id, kind, name, None, kflag, w[j], w[j + 1], w[j + 2])
        if kind in (Kind.STRUCT, Kind.UNION):
            members = []
            for k in range(j, j + 3 * vlen, 3):
                offset = w[k + 2]
                if kflag:
                    bit_offset, bitfield = offset & 0xFFFFFF, offset >> 24
                else:
                    bit_offset, bitfield = offset, 0
                members.append(BtfMember(self.string(w[k]), w[k + 1], bit_offset, bitfield))
            return BtfComposite(type_id, kind, name, size_or_type, kflag, tuple(members))
        if kind == Kind.ENUM:
            values = tuple(
                BtfEnumValue(self.string(w[k]), w[k + 1] - (1 << 32) if kflag and w[k + 1] >> 31 else w[k + 1])
                for k in range(j, j + 2 * vlen, 2)
            )
            return BtfEnum(type_id, kind, name, size_or_type, kflag, values)
        if kind == Kind.ENUM64:
            values64 = []
            for k in range(j, j + 3 * vlen, 3):
                value = w[k + 1] | (w[k + 2] << 32)
                if kflag and value >> 63:
                    value -= 1 << 64
                values64.append(BtfEnumValue(self.string(w[k]), value))
            return BtfEnum(type_id, kind, name, size_or_type, kflag, tuple(values64))
        if kind == Kind.FWD:
            return BtfFwd(type_id, kind, name, None, kflag)
        if kind == Kind.FUNC:
            return BtfFunc(type_id, kind, name, None, kflag, size_or_type, vlen)
        if kind == Kind.FUNC_PROTO:
            params = tuple(BtfParam(self.string(w[k]), w[k + 1]) for k in range(j, j + 2 * vlen, 2))
            return BtfFuncProto(type_id, kind, name, None, kflag, size_or_type, params)
        if kind == Kind.VAR:
            return BtfVar(type_id, kind, name, None, kflag, size_or_type, w[j])
        if kind == Kind.DATASEC:
            secinfo = tuple(BtfVarSecinfo(w[k], w[k + 1], w[k + 2]) for k in range(j, j + 3 * vlen, 3))
            return BtfDatasec(type_id, kind, name, size_or_type, kflag, secinfo)
        if kind == Kind.FLOAT:
            return BtfFloat(type_id, kind, name, size_or_type, kflag)
        if kind == Kind.DECL_TAG:
            idx = w[j]
            return BtfDeclTag(type_id, kind, name, None, kflag, size_or_type, idx - (1 << 32) if idx >> 31 else idx)
        raise ObjectError(f"BTF type {type_id} has unknown kind {kind}")  # pragma: no cover (rejected by _index)

    def kind_of(self, type_id: int) -> Kind:
        """The kind of a type without building it."""
        if type_id == 0:
            return Kind.UNKN
        return Kind((self._words[self._starts[type_id] + 1] >> 24) & 0x1F)

    def name_of(self, type_id: int) -> str:
        """The name of a type without building it."""
        if type_id == 0:
            return "void"
        return self.string(self._words[self._starts[type_id]])

    @cached_property
    def _by_name(self) -> dict[str, list[int]]:
        index: dict[str, list[int]] = {}
        w, string = self._words, self.string
        for type_id, start in enumerate(self._starts):
            if type_id == 0 or w[start] == 0:
                continue
            index.setdefault(string(w[start]), []).append(type_id)
        return index

    def find_all(self, name: str, kind: Kind | None = None) -> list[BtfType]:
        """Every type called ``name`` (optionally of one kind), by id."""
        ids = self._by_name.get(name, [])
        return [self.type(i) for i in ids if kind is None or self.kind_of(i) == kind]

    def find(self, name: str, kind: Kind | None = None) -> BtfType:
        """The first type called ``name`` (of ``kind`` if given); a complete STRUCT/UNION wins over a FWD.

        Raises :class:`NotFoundError` when there is none.
        """
        found = self.find_all(name, kind)
        if not found:
            what = f"{kind.name} {name!r}" if kind is not None else repr(name)
            raise NotFoundError(f"no BTF type {what}")
        for candidate in found:
            if candidate.kind != Kind.FWD:
                return candidate
        return found[0]

    def resolve(self, type_id: int) -> BtfType:
        """The type behind ``type_id`` with TYPEDEF, CONST, VOLATILE, RESTRICT and TYPE_TAG skipped."""
        seen = 0
        t = self.type(type_id)
        while t.kind in _MODIFIERS:
            assert isinstance(t, BtfRef)
            t = self.type(t.type_id)
            seen += 1
            if seen > 64:
                raise ObjectError(f"BTF type {type_id}: modifier chain too long (a loop?)")
        return t

    def size_of(self, type_id: int) -> int | None:
        """Byte size of a value of this type, or None for types without one (void, FUNC, FWD...)."""
        t = self.resolve(type_id)
        if t.size is not None and t.kind not in (Kind.UNKN,):
            return t.size
        if isinstance(t, BtfPtr):
            return 8
        if isinstance(t, BtfArray):
            elem = self.size_of(t.type_id)
            return None if elem is None else elem * t.nelems
        if isinstance(t, BtfVar):
            return self.size_of(t.type_id)
        return None

    # -- members ---------------------------------------------------------------------------------------------------

    def _composite(self, type_id: int, context: str) -> BtfComposite:
        t = self.resolve(type_id)
        if not isinstance(t, BtfComposite):
            raise NotFoundError(f"{context} is a {t.kind.name}, not a struct or union")
        return t

    def _lookup_member(self, composite: BtfComposite, name: str) -> tuple[int, BtfMember] | None:
        """(bit offset relative to ``composite``, member), searching anonymous members depth-first."""
        for member in composite.members:
            if member.name == name:
                return member.bit_offset, member
        for member in composite.members:
            if member.name:
                continue
            inner = self.resolve(member.type_id)
            if isinstance(inner, BtfComposite):
                found = self._lookup_member(inner, name)
                if found is not None:
                    return member.bit_offset + found[0], found[1]
        return None

    def member_bit_offset(self, struct_name: str | int, member_path: str) -> tuple[int, BtfMember]:
        """(bit offset from the start of the struct, the member) for a dotted ``member_path``.

        ``struct_name`` is a struct or union name (or a type id). Anonymous structs and unions are searched
        transparently, as C does; ``a.b`` descends into member ``a``'s struct type.
        """
        if isinstance(struct_name, int):
            current = self._composite(struct_name, f"type {struct_name}")
            label = current.name or f"type {struct_name}"
        else:
            candidates = [t for t in self.find_all(struct_name) if isinstance(t, BtfComposite)]
            if not candidates:
                raise NotFoundError(f"no BTF struct or union {struct_name!r}")
            current, label = candidates[0], struct_name
        total = 0
        parts = member_path.split(".")
        member: BtfMember | None = None
        for depth, part in enumerate(parts):
            found = self._lookup_member(current, part)
            if found is None:
                names = ", ".join(m.name or "<anon>" for m in current.members)
                raise NotFoundError(f"{label} has no member {part!r} (members: {names})")
            offset, member = found
            total += offset
            label = f"{label}.{part}"
            if depth + 1 < len(parts):
                current = self._composite(member.type_id, label)
        assert member is not None
        return total, member

    def member_offset(self, struct_name: str | int, member_path: str) -> int:
        """Byte offset of dotted ``member_path`` in ``struct_name``; for a bitfield, the byte holding its first bit."""
        return self.member_bit_offset(struct_name, member_path)[0] // 8

    # -- decoding --------------------------------------------------------------------------------------------------

    def decode(self, type_id: int, data: bytes | bytearray | memoryview, offset: int = 0) -> Any:
        """Decode one value of type ``type_id`` from ``data[offset:]`` in the BTF's byte order.

        Structs become dicts (member name -> value; anonymous members are merged in), unions dicts of every member
        read over the same bytes, ints of any width ints (BTF_INT_BOOL ones bools), enums ints, floats floats,
        pointers ints, arrays lists. Arrays of C chars are text up to the first NUL; arrays of one-byte ints (Rust's
        ``[u8; N]``, N >= 8) are text too when they hold a NUL-terminated printable string, else lists of ints.
        Raises :class:`ObjectError` when ``data`` is too short for the type.
        """
        view = memoryview(data).cast("B")
        size = self.size_of(type_id)
        if size is not None and offset + size > len(view):
            raise ObjectError(
                f"{len(view) - offset} bytes are too few for {self.describe(type_id)} ({size} bytes)",
            )
        return self._decode(type_id, view, offset * 8, 0)

    def describe(self, type_id: int) -> str:
        """A short label like ``struct event`` or ``u32`` for messages."""
        t = self.type(type_id)
        if t.kind in (Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64):
            return f"{t.kind.name.lower()} {t.name or '<anon>'}"
        return t.name or f"{t.kind.name} #{type_id}"

    def _read_int(self, view: memoryview, bit_offset: int, bits: int, size: int, signed: bool) -> int:
        if bit_offset % 8 == 0 and bits == size * 8:
            start = bit_offset // 8
            return int.from_bytes(view[start : start + size], "little" if self.endian == "<" else "big", signed=signed)
        # A bitfield: read the bytes that hold it, then shift (bit numbering follows the byte order).
        first = bit_offset // 8
        last = (bit_offset + bits - 1) // 8
        chunk = int.from_bytes(view[first : last + 1], "little" if self.endian == "<" else "big")
        nbytes = last - first + 1
        if self.endian == "<":
            value = (chunk >> (bit_offset % 8)) & ((1 << bits) - 1)
        else:
            value = (chunk >> (nbytes * 8 - (bit_offset % 8) - bits)) & ((1 << bits) - 1)
        if signed and value >> (bits - 1):
            value -= 1 << bits
        return value

    def _decode(self, type_id: int, view: memoryview, bit_offset: int, bitfield: int) -> Any:
        t = self.resolve(type_id)
        if isinstance(t, BtfInt):
            bits = bitfield or t.bits
            value = self._read_int(view, bit_offset + t.bit_offset, bits, t.size or 0, t.signed)
            return bool(value) if t.is_bool else value
        if isinstance(t, BtfEnum):
            return self._read_int(view, bit_offset, bitfield or (t.size or 0) * 8, t.size or 0, t.signed)
        if isinstance(t, BtfPtr):
            return self._read_int(view, bit_offset, 64, 8, False)
        if isinstance(t, BtfFloat):
            start = bit_offset // 8
            code = {2: "e", 4: "f", 8: "d"}.get(t.size or 0)
            if code is None:
                return bytes(view[start : start + (t.size or 0)]).hex()
            return struct.unpack_from(self.endian + code, view, start)[0]
        if isinstance(t, BtfComposite):
            result: dict[str, Any] = {}
            for member in t.members:
                value = self._decode(member.type_id, view, bit_offset + member.bit_offset, member.bitfield_size)
                if not member.name and isinstance(value, dict):
                    result.update(value)
                else:
                    result[member.name] = value
            return result
        if isinstance(t, BtfArray):
            elem = self.resolve(t.type_id)
            elem_size = self.size_of(t.type_id) or 0
            start = bit_offset // 8
            if isinstance(elem, BtfInt) and elem_size == 1 and not elem.is_bool:
                raw = bytes(view[start : start + t.nelems])
                if elem.is_char:
                    return _as_text(raw, always=True)
                text = _as_text(raw, always=False) if t.nelems >= 8 else None
                if text is not None:
                    return text
                return list(raw) if not elem.signed else [b - 256 if b > 127 else b for b in raw]
            return [self._decode(t.type_id, view, bit_offset + k * elem_size * 8, 0) for k in range(t.nelems)]
        if isinstance(t, BtfVar):
            return self._decode(t.type_id, view, bit_offset, bitfield)
        if isinstance(t, BtfDatasec):
            return {self.name_of(v.type_id): self._decode(v.type_id, view, v.offset * 8, 0) for v in t.vars}
        if isinstance(t, BtfVoid):
            return None
        raise ObjectError(f"cannot decode a value of BTF kind {t.kind.name} ({self.describe(type_id)})")


def _as_text(raw: bytes, *, always: bool) -> str | None:
    """``raw`` up to its first NUL as text; when not ``always``, only if it is NUL-terminated printable UTF-8."""
    end = raw.find(b"\0")
    if always:
        return raw[: end if end >= 0 else len(raw)].decode("utf-8", errors="backslashreplace")
    if end < 0:
        return None
    try:
        text = raw[:end].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None
