"""BTF, the kernel's type format (``include/uapi/linux/btf.h``), as Python objects.

:class:`Btf` holds the ``.BTF`` section of a BPF object or the kernel's own BTF (``/sys/kernel/btf/vmlinux``), in
either byte order. The parsing and every walk across types (modifier chains, sizes, members through anonymous
structs) are native (``pyaya-core``'s bounds-checked reader): malformed BTF raises :class:`ObjectError` saying
what is wrong, and no input makes a lookup recurse without bound. :class:`BtfType` objects are built on first
access, so the kernel's ~130k types cost nothing until asked for; the kernel's BTF is parsed once per process.
Decoding values is :mod:`pyaya.types`' job (``Types(btf)``).
"""

from __future__ import annotations

import os
from enum import IntEnum
from functools import cached_property

from pyaya import _native
from pyaya.errors import NotFoundError, ObjectError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import ClassVar

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

_VMLINUX = "/sys/kernel/btf/vmlinux"

if TYPE_CHECKING:
    #: Where the running kernel exposes its BTF.
    VMLINUX_PATH: Path
else:

    def __getattr__(name: str) -> object:
        # VMLINUX_PATH is a Path, made on first use: pathlib costs ~9 ms to import, and the load path needs none.
        if name == "VMLINUX_PATH":
            from pathlib import Path  # noqa: PLC0415

            return Path(_VMLINUX)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


# -- the parsed BTF -----------------------------------------------------------------------------------------------


class Btf:
    """Parsed BTF: ``btf.types[id]`` is the type with that id (``types[0]`` is void)."""

    endian: str
    """``"<"`` or ``">"``: the byte order of the BTF, and so of the target's data."""

    def __init__(self, data: bytes | bytearray | memoryview | _native.Btf) -> None:
        """Parse a raw BTF blob (``ObjectError`` when it is malformed), or wrap an already parsed one."""
        self._native = data if isinstance(data, _native.Btf) else _native.Btf.parse(bytes(data))
        self.endian = self._native.endian
        self._cache: dict[int, BtfType] = {}

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Btf:
        return cls(data)

    @classmethod
    def from_object(cls, data: bytes | bytearray | memoryview) -> Btf | None:
        """The ``.BTF`` section of a BPF ELF object, None when it has none (``ObjectError`` when it is malformed)."""
        found = _native.Btf.from_object(bytes(data))
        return None if found is None else cls(found)

    @classmethod
    def from_elf(cls, elf: Elf) -> Btf:
        """The ``.BTF`` section of a parsed object; :class:`ObjectError` if it has none."""
        section = elf.section(".BTF")
        if section is None:
            raise ObjectError("the object has no .BTF section (build with -Clink-arg=--btf and debuginfo)")
        return cls(elf.section_data(section))

    @classmethod
    def from_path(cls, path: str | Path) -> Btf:
        """A raw BTF file (like vmlinux's) or an ELF object with a ``.BTF`` section."""
        try:
            with open(path, "rb") as file:
                data = file.read()
        except OSError as error:
            raise ObjectError(f"{path}: {error.strerror or error}") from None
        if data[:4] == b"\x7fELF":
            found = cls.from_object(data)
            if found is None:
                raise ObjectError(f"{path}: the object has no .BTF section (build with -Clink-arg=--btf)")
            return found
        return cls(data)

    @classmethod
    def vmlinux(cls, path: str | Path = _VMLINUX) -> Btf:
        """The running kernel's BTF, parsed once per process (or the BTF file at ``path``, parsed each call);
        :class:`NotFoundError` when the kernel exposes none."""
        global _kernel  # noqa: PLW0603 - one parsed kernel BTF per process, built on first use
        if os.path.normpath(os.fspath(path)) != _VMLINUX:
            return cls(_native.Btf.kernel(os.fspath(path)))
        if _kernel is None:
            _kernel = cls(_native.Btf.kernel())
        return _kernel

    # -- types -----------------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of type ids, void included (the largest id is ``len(btf) - 1``)."""
        return len(self._native)

    def to_c_header(self) -> str:
        """Every type as C declarations, as ``bpftool btf dump ... format c`` writes them (for the kernel's BTF:
        ``vmlinux.h``); :class:`ObjectError` when the BTF cannot be written as C (a type containing itself)."""
        return self._native.to_c_header()

    def to_bytes(self) -> bytes:
        """These types as a raw BTF blob (header, types, strings, in :attr:`endian` order) that
        :meth:`from_bytes`, ``bpftool btf dump file`` and ``Ebpf.load(btf=...)`` read back."""
        return self._native.to_bytes()

    def _id(self, type_id: int) -> int:
        """``type_id`` if this BTF has such a type, else :class:`NotFoundError` (not the OverflowError a negative
        or huge int would meet on its way to the native reader)."""
        if not isinstance(type_id, int) or not 0 <= type_id < len(self._native):
            raise NotFoundError(f"no BTF type with id {type_id!r} (ids go up to {len(self._native) - 1})")
        return type_id

    def type(self, type_id: int) -> BtfType:
        """The type with id ``type_id``; :class:`NotFoundError` if there is none."""
        found = self._cache.get(type_id)
        if found is None:
            found = self._build(self._id(type_id))
            self._cache[type_id] = found
        return found

    __getitem__ = type

    def __iter__(self) -> Iterator[BtfType]:
        return (self.type(i) for i in range(len(self._native)))

    @cached_property
    def types(self) -> list[BtfType]:
        """Every type, index == id (``types[0]`` is :class:`BtfVoid`)."""
        return list(self)

    def _build(self, type_id: int) -> BtfType:
        if type_id == 0:
            return BtfVoid(0, Kind.UNKN, "void", 0, False)
        number, name, size, kflag, detail = self._native.record(type_id)
        kind = Kind(number)
        if kind == Kind.INT:
            encoding, bit_offset, bits = detail
            return BtfInt(type_id, kind, name, size, kflag, encoding, bit_offset, bits)
        if kind == Kind.PTR:
            return BtfPtr(type_id, kind, name, None, kflag, detail[0])
        if kind in _MODIFIERS:
            return BtfRef(type_id, kind, name, None, kflag, detail[0])
        if kind == Kind.ARRAY:
            element, index, count = detail
            return BtfArray(type_id, kind, name, None, kflag, element, index, count)
        if kind in (Kind.STRUCT, Kind.UNION):
            members = tuple(BtfMember(*member) for member in detail)
            return BtfComposite(type_id, kind, name, size, kflag, members)
        if kind in (Kind.ENUM, Kind.ENUM64):
            return BtfEnum(type_id, kind, name, size, kflag, tuple(BtfEnumValue(*value) for value in detail))
        if kind == Kind.FUNC:
            return BtfFunc(type_id, kind, name, None, kflag, *detail)
        if kind == Kind.FUNC_PROTO:
            returns, params = detail
            return BtfFuncProto(type_id, kind, name, None, kflag, returns, tuple(BtfParam(*p) for p in params))
        if kind == Kind.VAR:
            return BtfVar(type_id, kind, name, None, kflag, *detail)
        if kind == Kind.DATASEC:
            return BtfDatasec(type_id, kind, name, size, kflag, tuple(BtfVarSecinfo(*v) for v in detail))
        if kind == Kind.DECL_TAG:
            return BtfDeclTag(type_id, kind, name, None, kflag, *detail)
        if kind == Kind.FLOAT:
            return BtfFloat(type_id, kind, name, size, kflag)
        return BtfFwd(type_id, kind, name, None, kflag)

    def kind_of(self, type_id: int) -> Kind:
        """The kind of a type without building it."""
        return Kind(self._native.kind_of(self._id(type_id)))

    def name_of(self, type_id: int) -> str:
        """The name of a type without building it."""
        return "void" if self._id(type_id) == 0 else self._native.name_of(type_id)

    def names(self, kind: Kind) -> list[str]:
        """The names of every type of ``kind``, each once, sorted (without building the types)."""
        return self._native.names(kind)

    def find_all(self, name: str, kind: Kind | None = None) -> list[BtfType]:
        """Every type called ``name`` (optionally of one kind), by id."""
        return [self.type(i) for i in self._native.find(name, None if kind is None else int(kind))]

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
        """The type behind ``type_id`` with TYPEDEF, CONST, VOLATILE, RESTRICT and TYPE_TAG skipped
        (:class:`ObjectError` for a chain that loops)."""
        return self.type(self._native.resolve(self._id(type_id)))

    def size_of(self, type_id: int) -> int | None:
        """Byte size of a value of this type, or None for types without one (void, FUNC, FWD...)."""
        return self._native.size_of(self._id(type_id))

    def check_value(self, type_id: int) -> int:
        """The size of values of ``type_id`` after checking they can be decoded: :class:`ObjectError` when a type
        contains itself, nests too deeply or is too large."""
        return self._native.check_value(self._id(type_id))

    def describe(self, type_id: int) -> str:
        """A short label like ``struct event`` or ``u32`` for messages."""
        return self._native.describe(self._id(type_id))

    # -- members ---------------------------------------------------------------------------------------------------

    def member_bit_offset(self, struct_name: str | int, member_path: str) -> tuple[int, BtfMember]:
        """(bit offset from the start of the struct, the member) for a dotted ``member_path``.

        ``struct_name`` is a struct or union name (or a type id). Anonymous structs and unions are searched
        transparently, as C does; ``a.b`` descends into member ``a``'s struct type.
        """
        if isinstance(struct_name, int):
            type_id = self._id(struct_name)
            label = self.name_of(type_id) or f"type {type_id}"
        else:
            candidates = [t for t in self.find_all(struct_name) if isinstance(t, BtfComposite)]
            if not candidates:
                raise NotFoundError(f"no BTF struct or union {struct_name!r}")
            type_id, label = candidates[0].id, struct_name
        bits, member = self._native.member(type_id, label, member_path)
        return bits, BtfMember(*member)

    def member_offset(self, struct_name: str | int, member_path: str) -> int:
        """Byte offset of dotted ``member_path`` in ``struct_name``; for a bitfield, the byte holding its first bit."""
        return self.member_bit_offset(struct_name, member_path)[0] // 8

    def member_offsets(self, struct_name: str, *members: str) -> dict[str, int]:
        """Byte offsets of several members of the struct or union ``struct_name`` (when several types have that
        name, the first that has the member wins), in one native call."""
        return dict(zip(members, self._native.member_offsets(struct_name, list(members)), strict=True))


_kernel: Btf | None = None
