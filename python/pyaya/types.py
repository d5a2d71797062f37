"""Typed data from the object's BTF: ``#[repr(C)]`` structs of a project's ``-common`` crate as Python types.

``bpf-linker --btf`` writes every type the kernel side's maps and globals use into the object's ``.BTF`` section.
:class:`Types` (``Ebpf.types``) turns each named struct, union, enum and typedef into a codec that decodes bytes to
a :class:`Record` with named attributes and encodes records (or dicts) back, and :func:`map_types` finds the key and
value types of each map, so maps and ring buffers come back typed without the user declaring anything again:

* ``#[btf_map]`` maps (``.maps`` section): their definition struct points at the key and value types, as libbpf's
  ``__type(key, ...)`` does;
* ``#[map]`` maps (``maps`` section): the static's type name carries them (``HashMap<u32, FlowStats>``, escaped by
  bpf-linker as ``HashMap_3C_u32_2C__20_FlowStats_3E_``); primitives are decoded from the name, structs looked
  up by name in the BTF (present when the kernel side uses them in a BTF-described place).

>>> event = bpf.types["ExecEvent"](record_bytes)  # doctest: +SKIP
>>> event.pid, event.comm  # doctest: +SKIP
(4242, 'bash')
"""

from __future__ import annotations

import collections
import keyword
import operator
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from enum import IntEnum
from functools import cached_property

from pyaya import _native
from pyaya.btf import (
    Btf,
    BtfArray,
    BtfComposite,
    BtfDatasec,
    BtfEnum,
    BtfFloat,
    BtfInt,
    BtfPtr,
    BtfRef,
    BtfType,
    BtfVar,
    Kind,
)
from pyaya.errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    MapError,
    NotFoundError,
    ObjectError,
    UnsupportedError,
)
from pyaya.maps import LpmTrie, Map
from pyaya.maps._codec import record_codec
from pyaya.maps._streams import Stream

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar, Protocol

__all__ = [
    "MISSING",
    "Codec",
    "EnumCodec",
    "MapTypes",
    "Record",
    "RecordType",
    "Types",
    "apply_btf_types",
    "asdict",
    "map_types",
    "record_codec",
]

_NAMED_KINDS = (Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.TYPEDEF)
# Shortest byte array shown as text: shorter ones (addresses, MACs) are more often numbers than words.
_MIN_TEXT_LEN = 8
_NO_PLAN: Any = object()


if TYPE_CHECKING:

    class Codec(Protocol):
        """What maps need to convert keys and values: ``size`` bytes, ``encode(value)``, ``decode(data)``."""

        size: int

        def encode(self, value: Any) -> bytes: ...

        def decode(self, data: bytes) -> Any: ...

else:

    class Codec:  # typing.Protocol's class at run time would import typing (~9 ms) for a name used in annotations
        """What maps need to convert keys and values: ``size`` bytes, ``encode(value)``, ``decode(data)``."""


class _Missing:
    """The value of a field a short record does not reach (see :meth:`RecordType.variant`)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""A field of a record shorter than its type that the record's bytes do not reach; falsy, ``None`` in JSON."""


# -- the codec tree: one node per BTF type, reading at an offset of a shared buffer ------------------------------


class _PlanDecoder:
    """``node.decode(data)``: the value ``data`` holds (ObjectError when it is shorter than the type).

    Reading the attribute compiles the node's plan once and stores the generated decoder in the node's
    ``__dict__``, where it shadows this descriptor: ``node.decode`` is then the plain generated function, even when
    a caller (a stream, a map) keeps it before the first record."""

    def __get__(self, node: _Node | None, owner: type | None = None) -> Callable[[bytes | bytearray | memoryview], Any]:
        if node is None:
            return self  # type: ignore[return-value]
        return node._compiled()[1]


class _Node:
    size: int = 0

    def read(self, view: memoryview, offset: int) -> Any:
        """The value at ``offset`` of ``view``, through the node's compiled decoding plan."""
        return self._reader()(view, offset)

    def write(self, buffer: bytearray, offset: int, value: Any) -> None:
        raise NotImplementedError

    def zero(self) -> Any:
        return self.read(memoryview(bytes(self.size)), 0)

    def encode(self, value: Any) -> bytes:
        buffer = bytearray(self.size)
        self.write(buffer, 0, value)
        return bytes(buffer)

    decode = _PlanDecoder()

    def _reader(self) -> Callable[[Any, int], Any]:
        return self._compiled()[0]

    def _compiled(self) -> tuple[Callable[[Any, int], Any], Callable[[Any], Any]]:
        plan: tuple[Callable[[Any, int], Any], Callable[[Any], Any]] | None = vars(self).get("_plan")
        if plan is None:
            plan = _compile(self)
            vars(self)["_plan"] = plan
            vars(self)["decode"] = plan[1]
        return plan

    def _too_few(self, data: Any) -> ObjectError:
        have = len(memoryview(data).cast("B"))
        return ObjectError(f"{have} bytes are too few for {self.label()} ({self.size} bytes)")

    def label(self) -> str:
        return type(self).__name__


class _Int(_Node):
    def __init__(self, size: int, signed: bool, byteorder: str, *, boolean: bool = False, char: bool = False):
        self.size, self.signed, self.byteorder = size, signed, byteorder
        self.boolean, self.char = boolean, char

    def read(self, view: memoryview, offset: int) -> Any:
        value = int.from_bytes(view[offset : offset + self.size], self.byteorder, signed=self.signed)  # type: ignore[arg-type]
        if self.boolean:
            return bool(value)
        if self.char:
            try:
                return chr(value)
            except (ValueError, OverflowError):
                return value
        return value

    def write(self, buffer: bytearray, offset: int, value: Any) -> None:
        if self.char and isinstance(value, str):
            if len(value) != 1:
                raise MapError(f"a char holds one character, got {value!r}")
            value = ord(value)
        if not isinstance(value, int):
            raise MapError(f"expected an int for a {self.size}-byte integer, got {type(value).__name__}")
        try:
            buffer[offset : offset + self.size] = int(value).to_bytes(self.size, self.byteorder, signed=self.signed)  # type: ignore[arg-type]
        except OverflowError:
            kind = "signed" if self.signed else "unsigned"
            raise MapError(f"{value} does not fit in a {kind} {self.size * 8}-bit integer") from None

    def label(self) -> str:
        return f"{'i' if self.signed else 'u'}{self.size * 8}"


class _Float(_Node):
    _CODES: ClassVar[dict[int, str]] = {2: "e", 4: "f", 8: "d"}

    def __init__(self, size: int, endian: str) -> None:
        self.size = size
        code = self._CODES.get(size)
        if code is None:
            raise UnsupportedError(f"pyaya cannot decode {size * 8}-bit floats")
        self.format = struct.Struct(endian + code)

    def read(self, view: memoryview, offset: int) -> Any:
        return self.format.unpack_from(view, offset)[0]

    def write(self, buffer: bytearray, offset: int, value: Any) -> None:
        if not isinstance(value, (int, float)):
            raise MapError(f"expected a float for a {self.size * 8}-bit float, got {type(value).__name__}")
        try:
            self.format.pack_into(buffer, offset, value)
        except (struct.error, OverflowError):
            raise MapError(f"{value} does not fit in a {self.size * 8}-bit float") from None


class _Opaque(_Node):
    """Types with nothing to show (zero-sized `PhantomData`, `()`): read as None, written as zeros."""

    def __init__(self, size: int) -> None:
        self.size = size

    def read(self, view: memoryview, offset: int) -> Any:
        return None if self.size == 0 else bytes(view[offset : offset + self.size])

    def write(self, buffer: bytearray, offset: int, value: Any) -> None:
        if value is None or not self.size:
            return
        data = _as_bytes(value, f"None or bytes for {self.size} opaque bytes")[: self.size]
        buffer[offset : offset + len(data)] = data


def _as_bytes(value: Any, expected: str) -> bytes:
    """``value`` as bytes: bytes-like, or a list or tuple of ints from 0 to 255; MapError saying what was expected."""
    if isinstance(value, (bytes, bytearray, memoryview, list, tuple)):
        try:
            return bytes(value)
        except (TypeError, ValueError):
            pass
    raise MapError(f"expected {expected}, got {type(value).__name__} {value!r:.60}")


class _ByteArray(_Node):
    """``[u8; N]`` / ``char[N]``: text when it holds NUL-terminated printable UTF-8, else bytes."""

    def __init__(self, size: int, *, always_text: bool) -> None:
        self.size, self.always_text = size, always_text

    def read(self, view: memoryview, offset: int) -> Any:
        raw = bytes(view[offset : offset + self.size])
        end = raw.find(b"\0")
        if self.always_text:
            return raw[: end if end >= 0 else len(raw)].decode("utf-8", errors="backslashreplace")
        if end < 0 or self.size < _MIN_TEXT_LEN:
            return raw
        try:
            text = raw[:end].decode("utf-8")
        except UnicodeDecodeError:
            return raw
        return text if text.isprintable() else raw

    def write(self, buffer: bytearray, offset: int, value: Any) -> None:
        if isinstance(value, str):
            data = value.encode()
        else:
            data = _as_bytes(value, f"str or bytes for a {self.size}-byte array")
        if len(data) > self.size:
            raise MapError(f"{len(data)} bytes do not fit in a {self.size}-byte array")
        buffer[offset : offset + self.size] = data.ljust(self.size, b"\0")


class _Array(_Node):
    def __init__(self, element: _Node, count: int, endian: str = "<") -> None:
        self.element, self.count, self.endian = element, count, endian
        self.size = element.size * count

    def write(self, buffer: bytearray, offset: int, value: Any) -> None:
        if isinstance(value, (str, bytes, bytearray, Mapping)) or not isinstance(value, Iterable):
            raise MapError(f"expected a list of up to {self.count} items, got {type(value).__name__}")
        items = list(value)
        if len(items) > self.count:
            raise MapError(f"{len(items)} items do not fit in an array of {self.count}")
        for i, item in enumerate(items):
            self.element.write(buffer, offset + i * self.element.size, item)


class _Bitfield(_Node):
    """An integer member narrower than its type (C bitfields; Rust has none)."""

    def __init__(self, bit_offset: int, bits: int, signed: bool, byteorder: str) -> None:
        self.bit_offset, self.bits, self.signed, self.byteorder = bit_offset, bits, signed, byteorder
        self.first = bit_offset // 8
        self.span = (bit_offset + bits - 1) // 8 - self.first + 1

    def _shift(self) -> int:
        if self.byteorder == "little":
            return self.bit_offset % 8
        return self.span * 8 - (self.bit_offset % 8) - self.bits

    def read(self, view: memoryview, offset: int) -> Any:
        start = offset + self.first
        chunk = int.from_bytes(view[start : start + self.span], self.byteorder)  # type: ignore[arg-type]
        value = (chunk >> self._shift()) & ((1 << self.bits) - 1)
        if self.signed and value >> (self.bits - 1):
            value -= 1 << self.bits
        return value

    def write(self, buffer: bytearray, offset: int, value: Any) -> None:
        if not isinstance(value, int):
            raise MapError(f"expected an int for a {self.bits}-bit bitfield, got {type(value).__name__}")
        low, high = (-(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1) if self.signed else (0, (1 << self.bits) - 1)
        if not low <= value <= high:
            raise MapError(
                f"{value} does not fit in a {'signed' if self.signed else 'unsigned'} {self.bits}-bit bitfield"
            )
        start = offset + self.first
        mask = ((1 << self.bits) - 1) << self._shift()
        chunk = int.from_bytes(buffer[start : start + self.span], self.byteorder)  # type: ignore[arg-type]
        chunk = (chunk & ~mask) | ((int(value) << self._shift()) & mask)
        buffer[start : start + self.span] = chunk.to_bytes(self.span, self.byteorder)  # type: ignore[arg-type]


def _python_name(name: str, default: str) -> str:
    """A BTF name usable as a Python class name (BTF names come from the object, so they may be anything)."""
    return name if name.isidentifier() else default


def _int_enum(name: str, values: Mapping[str, int]) -> type[IntEnum]:
    """An ``IntEnum`` of the enumerators whose names Python's enum accepts (not empty, not ``_sunder_`` or
    ``__dunder__``, not ``mro``); values of the others still decode, as plain ints."""
    members = {
        member: value
        for member, value in values.items()
        if member.isidentifier() and not (member.startswith("_") and member.endswith("_")) and member != "mro"
    }
    try:
        return IntEnum(_python_name(name, "Enum"), members)  # type: ignore[return-value]
    except (ValueError, TypeError):
        return IntEnum(_python_name(name, "Enum"), {})  # type: ignore[return-value]


class EnumCodec(_Node):
    """A BTF enum: values decode to members of :attr:`enum` (an ``IntEnum``), unknown values to plain ints."""

    def __init__(self, name: str, size: int, signed: bool, values: Mapping[str, int], byteorder: str) -> None:
        self.name, self.size = name, size
        self._int = _Int(size, signed, byteorder)
        self.enum: type[IntEnum] = _int_enum(name, values)

    def read(self, view: memoryview, offset: int) -> Any:
        return self.member(self._int.read(view, offset))

    def member(self, value: int) -> Any:
        """The enum member with this value, or the int itself when the enum has none."""
        try:
            return self.enum(value)
        except (ValueError, TypeError):  # TypeError: an enum whose names Python refused has no members at all
            return value

    def write(self, buffer: bytearray, offset: int, value: Any) -> None:
        if isinstance(value, str):
            try:
                value = self.enum[value]
            except KeyError:
                names = ", ".join(self.enum.__members__)
                raise MapError(f"{self.name} has no member {value!r} (members: {names})") from None
        self._int.write(buffer, offset, value)

    def __call__(self, value: int | str) -> IntEnum:
        """The enum member for a value or a name; :class:`NotFoundError` when the enum has none."""
        try:
            return self.enum[value] if isinstance(value, str) else self.enum(value)
        except (KeyError, ValueError, TypeError):
            names = ", ".join(f"{m.name}={m.value}" for m in self.enum)
            raise NotFoundError(f"{self.name} has no member {value!r} (members: {names})") from None

    def label(self) -> str:
        return f"enum {self.name}"

    def __repr__(self) -> str:
        members = ", ".join(f"{m.name}={m.value}" for m in self.enum)
        return f"<pyaya type enum {self.name} ({self.size} B): {members}>"


# -- records -----------------------------------------------------------------------------------------------------


class Record(tuple):  # type: ignore[type-arg]
    """A decoded struct or union: fields as attributes (and, like a named tuple, by position), ``asdict()`` for
    JSON, ``bytes(record)`` to encode.

    Every field keeps its real name in ``_fields``, ``repr``, ``asdict()`` and encoding, whatever it is. As an
    attribute, a field is under its own name unless that name is one of the record's own (``_type``,
    ``_fields``, ``_asdict``, ``asdict``), a ``__dunder__`` or a Python keyword: then it is under the name with
    ``_`` appended (``record.class_``, ``record.asdict_``; one more ``_`` while that is taken), and a keyword
    field also under its real name (``getattr(record, "class")``). ``RecordType.attributes`` maps each field to
    its attribute."""

    __slots__ = ()
    _type: ClassVar[RecordType]
    _fields: ClassVar[tuple[str, ...]]

    def _asdict(self) -> dict[str, Any]:
        """Fields by name, nested records as dicts, enum members and bytes kept as they are."""
        return {name: _plain(value, json=False) for name, value in zip(self._fields, self, strict=True)}

    def asdict(self) -> dict[str, Any]:
        """Fields by name ready for ``json.dumps``: nested records as dicts, enums as their member names, bytes
        as hex."""
        return {name: _plain(value, json=True) for name, value in zip(self._fields, self, strict=True)}

    def __bytes__(self) -> bytes:
        return self._type.encode(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Record):
            return other._type is self._type and tuple.__eq__(self, other)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash(tuple(_hashable(value) for value in self))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in zip(self._fields, self, strict=True))
        return f"{self._type.name}({fields})"


def _hashable(value: Any) -> Any:
    return tuple(_hashable(v) for v in value) if isinstance(value, list) else value


def _plain(value: Any, *, json: bool) -> Any:
    if value is MISSING:
        return None if json else value
    if isinstance(value, Record):
        return value.asdict() if json else value._asdict()
    if isinstance(value, list):
        return [_plain(item, json=json) for item in value]
    if json and isinstance(value, IntEnum):
        return value.name
    if json and isinstance(value, bytes):
        return value.hex()
    return value


def asdict(value: Any) -> Any:
    """A record (or list of records) as JSON-ready dicts; other values unchanged (enums become names)."""
    return _plain(value, json=True)


_STRUCT_CODES = {
    (1, False): "B",
    (1, True): "b",
    (2, False): "H",
    (2, True): "h",
    (4, False): "I",
    (4, True): "i",
    (8, False): "Q",
    (8, True): "q",
}


# -- decoding plans: one struct.Struct and one generated function per type ----------------------------------------
#
# Records arrive by the hundred thousand per second from ring buffers, so each type compiles once into a plan: the
# plain fields of the whole value (numbers, byte arrays as ``Ns``, numeric arrays as repeated codes, nested
# structs flattened) are laid out in one ``struct.Struct`` read by a single ``unpack_from``, and a generated
# function builds the record from the unpacked values in one expression. Only what a flat layout cannot express
# (bitfields, union members after the first, overlapping members) is read per field, by the field's own plan.

# Arrays of compound elements up to this long are unrolled into the record's expression; longer ones are read
# element by element through the element's plan, so a huge array does not make a huge function.
_UNROLL_LIMIT = 32
# How many values unrolled arrays may add to one type's expression in all (nested unrolled arrays multiply), so
# that no BTF makes a plan whose source takes long to compile.
_UNROLL_BUDGET = 4096


def _text_or_bytes(raw: bytes) -> str | bytes:
    """A byte array as text when it holds NUL-terminated printable UTF-8, else as it is."""
    head, nul, _ = raw.partition(b"\0")
    if nul:
        try:
            text = head.decode()
        except UnicodeDecodeError:
            return raw
        if text.isprintable():
            return text
    return raw


def _always_text(raw: bytes) -> str:
    return raw.partition(b"\0")[0].decode("utf-8", "backslashreplace")


def _char(value: int) -> str | int:
    try:
        return chr(value)
    except (ValueError, OverflowError):
        return value


def _as_bytes_view(data: Any) -> memoryview:
    return memoryview(data).cast("B")


class _PlanBuilder:
    """Lays out the flat ``struct`` format of one value and writes the expression that builds the value from the
    unpacked tuple ``v``; ``BASE+`` marks the byte offsets of the fields read one by one (from ``view``)."""

    def __init__(self) -> None:
        self.codes: list[str] = []
        self.position = 0
        self.count = 0
        self.slow = False
        self.statements: list[str] = []  # run before the expression, after the unpack
        self.env: dict[str, Any] = {}
        self._names: dict[int, str] = {}
        self.budget = _UNROLL_BUDGET
        self._costs: dict[int, int] = {}

    def cost(self, node: _Node) -> int:
        """An upper bound of how many values ``node``'s expression holds when its short arrays are unrolled."""
        while isinstance(node, _Named):
            node = node.target
        found = self._costs.get(id(node))
        if found is None:
            if isinstance(node, RecordType):
                found = 1 + sum(self.cost(field.node) for field in node.fields)
            elif isinstance(node, _Array) and self.leaf(node.element) is None and node.count <= _UNROLL_LIMIT:
                found = 1 + node.count * self.cost(node.element)
            else:
                found = 1
            self._costs[id(node)] = found
        return found

    def name(self, value: Any) -> str:
        """A global of the generated code holding ``value`` (one per distinct object)."""
        found = self._names.get(id(value))
        if found is None:
            found = f"_g{len(self.env)}"
            self.env[found] = value
            self._names[id(value)] = found
        return found

    def take(self, offset: int, code: str, size: int, values: int = 1) -> int:
        """Adds ``code`` at ``offset`` (padding from the current position); the index of its first value."""
        padding = offset - self.position
        self.codes.append(f"{padding}x{code}" if padding else code)
        self.position = offset + size
        first = self.count
        self.count += values
        return first

    def per_field(self, node: _Node, offset: int) -> str:
        self.slow = True
        reader = node.read if isinstance(node, _Bitfield) else node._reader()
        return f"{self.name(reader)}(view, BASE+{offset})"

    def leaf(self, node: _Node) -> tuple[str, Callable[[str], str]] | None:
        """The struct code of a node read as one value, and how its expression wraps the unpacked value."""
        if isinstance(node, _Named):
            return self.leaf(node.target)
        if type(node) is _Int:
            code = _STRUCT_CODES.get((node.size, node.signed))
            if code is not None and node.boolean and node.size == 1:
                return "?", str  # '?' is `byte != 0`, as bool(int) is
            plain: Callable[[str], str] = str
            if code is None:  # no struct code this wide (u128): the bytes, turned into an int
                from_bytes, order, signed = self.name(int.from_bytes), repr(node.byteorder), node.signed
                code = f"{node.size}s"

                def wide(x: str) -> str:
                    return f"{from_bytes}({x}, {order}, signed={signed})"

                plain = wide
            if node.boolean:
                return code, lambda x: f"bool({plain(x)})"
            if node.char:
                char = self.name(_char)
                return code, lambda x: f"{char}({plain(x)})"
            return code, plain
        if type(node) is EnumCodec:
            members = self.name({member.value: member for member in node.enum})
            inner = self.leaf(node._int)
            assert inner is not None
            code, plain = inner
            return code, lambda x: f"{members}.get({plain(x)}, {plain(x)})"
        if type(node) is _Float:
            return node.format.format[-1], str
        if type(node) is _ByteArray:
            code = f"{node.size}s"
            if node.always_text:
                text = self.name(_always_text)
                return code, lambda x: f"{text}({x})"
            if node.size < _MIN_TEXT_LEN:
                return code, str
            text = self.name(_text_or_bytes)
            return code, lambda x: f"{text}({x})"
        if type(node) is _Opaque and node.size:
            return f"{node.size}s", str
        return None

    def emit(self, node: _Node, offset: int) -> str:
        """The expression of ``node``'s value at byte ``offset`` of the whole value."""
        if isinstance(node, _Named):
            return self.emit(node.target, offset)
        if type(node) is _Opaque and node.size == 0:
            return "None"
        if offset < self.position or isinstance(node, _Bitfield):
            return self.per_field(node, offset)  # overlaps what the flat layout already covers
        if type(node) is _ByteArray and not node.always_text and node.size >= _MIN_TEXT_LEN:
            return self._text_or_bytes(node, offset)
        leaf = self.leaf(node)
        if leaf is not None:
            code, wrap = leaf
            return wrap(f"v[{self.take(offset, code, node.size)}]")
        if isinstance(node, RecordType):
            return self._record(node, offset)
        if isinstance(node, _Array):
            return self._array(node, offset)
        return self.per_field(node, offset)

    def _text_or_bytes(self, node: _ByteArray, offset: int) -> str:
        # _text_or_bytes written out in the generated function: the call would cost as much as the checks.
        index = self.take(offset, f"{node.size}s", node.size)
        self.statements.append(
            f"t{index} = v[{index}]\n"
            f"_head, _nul, _ = t{index}.partition(b'\\0')\n"
            "if _nul:\n"
            "    try:\n"
            "        _text = _head.decode()\n"
            "    except UnicodeDecodeError:\n"
            "        pass\n"
            "    else:\n"
            "        if _text.isprintable():\n"
            f"            t{index} = _text\n"
        )
        return f"t{index}"

    def _record(self, record: RecordType, offset: int) -> str:
        parts = [""] * len(record.fields)
        for index, field in sorted(enumerate(record.fields), key=lambda pair: pair[1].offset):
            parts[index] = self.emit(field.node, offset + field.offset)
        cls = self.name(record.record_class)
        values = f"({', '.join(parts)},)" if parts else "()"
        if any(name.startswith("__") for name in record.field_names):  # a field could shadow __new__ / __init__
            return f"{self.name(tuple.__new__)}({cls}, {values})"
        # cls(values): records define no __new__, so this is tuple's, called faster than tuple.__new__(cls, ...).
        return f"{cls}({values})"

    def _array(self, array: _Array, offset: int) -> str:
        element, count, step = array.element, array.count, array.element.size
        if count == 0:
            return "[]"
        leaf = self.leaf(element)
        if leaf is not None and step:
            code, wrap = leaf
            if code.endswith("s") and count > _UNROLL_BUDGET:
                return self._per_element(array, offset)  # "16s" repeats in the format: keep formats short
            repeated = code * count if code.endswith("s") else f"{count}{code}"  # "16s" * 2, not "216s"
            first = self.take(offset, repeated, array.size, count)
            values = f"v[{first}:{first + count}]"
            return f"list({values})" if wrap("_x") == "_x" else f"[{wrap('_x')} for _x in {values}]"
        unrolled = count * self.cost(element)
        if count <= _UNROLL_LIMIT and unrolled <= self.budget:
            self.budget -= unrolled
            return f"[{', '.join(self.emit(element, offset + i * step) for i in range(count))}]"
        return self._per_element(array, offset)

    def _per_element(self, array: _Array, offset: int) -> str:
        self.slow = True
        reader = self.name(array.element._reader())
        self.take(offset, f"{array.size}x", array.size, values=0)  # the bytes are read per element, not unpacked
        return f"[{reader}(view, BASE+{offset} + _i * {array.element.size}) for _i in range({array.count})]"


def _endian(node: _Node) -> str:
    if isinstance(node, _Named):
        return _endian(node.target)
    if isinstance(node, (_Int, _Bitfield)):
        return "<" if node.byteorder == "little" else ">"
    if isinstance(node, EnumCodec):
        return _endian(node._int)
    if isinstance(node, _Float):
        return node.format.format[0]
    if isinstance(node, (RecordType, _Array)):
        return node.endian
    return "<"


def _compile(node: _Node) -> tuple[Callable[[Any, int], Any], Callable[[Any], Any]]:
    """``node``'s plan: ``read(buffer, offset)`` and ``decode(data)`` (which checks the size)."""
    builder = _PlanBuilder()
    expression = builder.emit(node, 0)
    if isinstance(node, RecordType) and builder.count == len(node.fields) and not builder.statements:
        cls = builder.name(node.record_class)
        if expression == f"{cls}(({', '.join(f'v[{i}]' for i in range(builder.count))},))":
            expression = f"{cls}(v)"  # every field is one unpacked value, in order: the tuple is the record
    # Padding up to the full size: unpack_from then fails exactly when the data is shorter than the type.
    tail = node.size - builder.position
    layout = struct.Struct(_endian(node) + "".join(builder.codes) + (f"{tail}x" if tail else ""))
    builder.env.update(
        _unpack_from=layout.unpack_from,
        _struct_error=struct.error,
        _too_few=node._too_few,
        _as_view=_as_bytes_view,
    )
    view = "    view = _as_view({})\n" if builder.slow else ""
    statements = "".join(
        "".join(f"    {line}\n" for line in statement.splitlines()) for statement in builder.statements
    )
    source = (
        "def read(buffer, base):\n"
        + ("    v = _unpack_from(buffer, base)\n" if builder.count else "")
        + view.format("buffer")
        + statements
        + f"    return {expression.replace('BASE+', 'base + ')}\n"
        "def decode(data):\n"
        "    try:\n"
        "        v = _unpack_from(data)\n"
        "    except _struct_error:\n"
        "        raise _too_few(data) from None\n"
        + view.format("data")
        + statements
        + f"    return {expression.replace('BASE+', '')}\n"
    )
    namespace = dict(builder.env)
    exec(compile(source, f"<pyaya plan for {node.label()}>", "exec"), namespace)
    return namespace["read"], namespace["decode"]


def _field_getter(index: int, doc: str) -> Any:
    """The attribute reading a record's field ``index``: namedtuple's C descriptor where this Python has it (about
    twice as fast as a property), else a property."""
    if _tuplegetter is not None:
        return _tuplegetter(index, doc)
    return property(operator.itemgetter(index), doc=doc)


# namedtuple's own field descriptor (CPython's _collections); not public API, so looked up with a fallback.
_tuplegetter: Any = getattr(collections, "_tuplegetter", None)


#: Names a field's attribute may not take: the record's own, which its methods and pyaya rely on.
_RECORD_NAMES = frozenset({"_type", "_fields", "_asdict", "asdict"})


def _attribute_names(names: tuple[str, ...]) -> dict[str, str]:
    """The attribute of each field: its name, or (for the record's own names, dunders and Python keywords) the
    name with ``_`` appended until it is no field's name and no other field's attribute."""
    taken = set(names)
    attributes: dict[str, str] = {}
    for name in names:
        if (
            name not in _RECORD_NAMES
            and not keyword.iskeyword(name)
            and not (len(name) > 4 and name.startswith("__") and name.endswith("__"))
        ):
            attributes[name] = name
            continue
        alias = f"{name}_"
        while alias in taken or alias in _RECORD_NAMES:
            alias += "_"
        taken.add(alias)
        attributes[name] = alias
    return attributes


class _Field:
    __slots__ = ("name", "node", "offset")

    def __init__(self, name: str, offset: int, node: _Node) -> None:
        self.name, self.offset, self.node = name, offset, node


_RECORD_ATTRIBUTES = frozenset({"_type", "_fields", "_asdict", "asdict"})

#: struct codes of the signed integers by size (upper case: unsigned).
_INT_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}


class RecordType(_Node):
    """The codec of one struct or union: ``decode(bytes)`` (or calling it with bytes) gives a :class:`Record`,
    calling it with keyword arguments builds one (missing fields are zero), ``encode`` turns a record or a dict
    into bytes. ``record_class`` is the class of its records, for ``isinstance``."""

    # Set on the first encode (see _packer); unset until then, so that reading them raises AttributeError.
    _pack: Callable[..., bytes] | None
    _names: tuple[str, ...]
    _field_set: frozenset[str]
    _zeros: tuple[int, ...]

    def __init__(self, name: str, size: int, union: bool, endian: str = "<") -> None:
        self.name, self.size, self.union, self.endian = name, size, union, endian
        self.fields: tuple[_Field, ...] = ()
        self.record_class: type[Record] = Record

    def _complete(self, fields: list[_Field]) -> None:
        self.fields = tuple(fields)
        names = tuple(field.name for field in fields)
        namespace: dict[str, Any] = {"__slots__": (), "_type": self, "_fields": names, "__module__": "pyaya.types"}
        self.attributes: dict[str, str] = _attribute_names(names)
        for index, name in enumerate(names):
            getter = _field_getter(index, f"Field {name!r} of {self.label()}.")
            namespace[self.attributes[name]] = getter
            if keyword.iskeyword(name):  # not writable as record.class, but getattr(record, "class") works
                namespace[name] = getter
        self.record_class = type(_python_name(self.name, "anonymous"), (Record,), namespace)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(field.name for field in self.fields)

    def encode(self, value: Any) -> bytes:
        """``value`` (a record of this type, a dict of fields, or bytes) as the struct's bytes."""
        try:
            pack = self._pack
        except AttributeError:
            pack = self._pack = self._packer()
        if pack is not None:
            # A struct of plain integers (a flow key, a counter pair) packs in one call; anything the packer
            # refuses goes through the per-field path, which says what is wrong.
            try:
                if type(value) is self.record_class:
                    return pack(*value)
                if type(value) is dict and value.keys() <= self._field_set:
                    return pack(*map(value.get, self._names, self._zeros))
            except struct.error:
                pass
        return super().encode(value)

    def _packer(self) -> Callable[..., bytes] | None:
        """``struct.Struct(...).pack`` for a struct whose fields are all plain integers laid out in order, else
        None (worked out on first use: the fields are completed after construction)."""
        if self.union or not self.fields:
            return None
        layout = [self.endian]
        position = 0
        byteorder = "little" if self.endian == "<" else "big"
        for field in self.fields:
            node = field.node
            while isinstance(node, _Named):
                node = node.target
            if not (
                type(node) is _Int
                and node.size in _INT_CODES
                and not node.boolean
                and not node.char
                and node.byteorder == byteorder
                and field.offset >= position
            ):
                return None
            layout.append(f"{field.offset - position}x" if field.offset > position else "")
            layout.append(_INT_CODES[node.size] if node.signed else _INT_CODES[node.size].upper())
            position = field.offset + node.size
        if position > self.size:
            return None
        layout.append(f"{self.size - position}x" if self.size > position else "")
        self._names = tuple(field.name for field in self.fields)
        self._field_set = frozenset(self._names)
        self._zeros = (0,) * len(self._names)
        return struct.Struct("".join(layout)).pack

    def write(self, buffer: bytearray, offset: int, value: Any) -> None:
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            if len(data) != self.size:
                raise MapError(f"{self.name} is {self.size} bytes, got {len(data)}")
            buffer[offset : offset + self.size] = data
            return
        if type(value) is self.record_class:
            # Positionally: a record's field names are unique, but reading them back by name is not needed.
            for field, item in zip(self.fields, value, strict=True):
                self._write_field(buffer, offset, field, item)
            return
        if isinstance(value, Record):
            values = dict(zip(value._fields, value, strict=True))
        elif isinstance(value, Mapping):
            unknown = set(value) - set(self.field_names)
            if unknown:
                raise MapError(
                    f"{self.name} has no field {sorted(unknown)[0]!r} (fields: {', '.join(self.field_names)})"
                )
            values = dict(value)
        else:
            raise MapError(f"expected a {self.name} record, a dict or bytes, got {type(value).__name__}")
        for field in self.fields:
            if field.name in values:
                self._write_field(buffer, offset, field, values[field.name])

    def _write_field(self, buffer: bytearray, offset: int, field: _Field, value: Any) -> None:
        # In a union every member covers the same bytes: write only those that differ from what is there.
        if self.union and field.node.read(memoryview(buffer), offset + field.offset) == value:
            return
        field.node.write(buffer, offset + field.offset, value)

    def __call__(self, data: bytes | bytearray | memoryview | None = None, /, **fields: Any) -> Record:
        """``T(data)`` decodes ``data``; ``T(field=value, ...)`` builds a record (other fields zero)."""
        if data is not None:
            if fields:
                raise TypeError(f"{self.name}() takes either bytes or fields, not both")
            decoded: Record = self.decode(data)
            return decoded
        built: Record = self.decode(self.encode(fields)) if fields else self.zero()
        return built

    def label(self) -> str:
        return f"{'union' if self.union else 'struct'} {self.name or '<anon>'}"

    def __repr__(self) -> str:
        return f"<pyaya type {self.label()} ({self.size} B): {', '.join(self.field_names)}>"

    def native_plan(self) -> Any:
        """This type's records decoded in Rust (:class:`pyaya._native.RecordPlan`, built once), giving what
        :meth:`decode` gives; None when a field is of a kind only the Python plan reads, or for a partial type."""
        cached = vars(self).get("_native_plan", _NO_PLAN)
        if cached is _NO_PLAN:
            spec = _native_op(self) if type(self) is RecordType else None
            try:
                cached = None if spec is None else _native.RecordPlan(spec)
            except ValueError:
                cached = None  # a layout the Rust plan does not take: the Python plan reads it
            vars(self)["_native_plan"] = cached
        return cached

    def variant(
        self, *, partial: bool = False, as_bytes: Iterable[str] = (), as_text: Iterable[str] = ()
    ) -> RecordType:
        """The same struct decoded otherwise (records keep this type's class):

        - ``partial``: a record shorter than the type (a C program sending a prefix, as execsnoop sends
          ``offsetof(struct event, args) + args_size`` bytes) decodes instead of raising: the fields it holds
          whole decode as usual, a byte array it holds in part gives the bytes (or text) present, and every other
          field is :data:`MISSING`.
        - ``as_bytes``: these byte-array (``char[N]``/``[u8; N]``) fields decode as their raw bytes, all N of
          them (a NUL-separated argv stays whole), instead of text cut at the first NUL when printable.
        - ``as_text``: these byte-array fields always decode as text up to the first NUL (undecodable bytes
          backslash-escaped), never as bytes.

        A name that is not a byte-array field raises :class:`~pyaya.InvalidArgumentError` listing those that are.
        """
        chosen: dict[str, _Node] = {}
        arrays = {field.name for field in self.fields if isinstance(_unnamed(field.node), _ByteArray | _Opaque)}
        for names, what, make in (
            (as_bytes, "as_bytes", _Opaque),
            (as_text, "as_text", lambda size: _ByteArray(size, always_text=True)),
        ):
            if isinstance(names, str | bytes):
                raise InvalidArgumentTypeError(f"{what} must be an iterable of field names, not a single string")
            for name in names:
                if name not in arrays:
                    known = ", ".join(sorted(arrays)) or "none"
                    raise InvalidArgumentError(
                        f"{what}: {self.label()} has no byte-array field {name!r}; its byte arrays are: {known}"
                    )
                if name in chosen:
                    raise InvalidArgumentError(f"field {name!r} is in both as_bytes and as_text: choose one")
                chosen[name] = make(_unnamed(next(f for f in self.fields if f.name == name).node).size)
        variant: RecordType = (
            _PartialRecordType(self.name, self.size, self.union, self.endian)
            if partial
            else (RecordType(self.name, self.size, self.union, self.endian))
        )
        variant.fields = tuple(
            _Field(field.name, field.offset, chosen.get(field.name, field.node)) for field in self.fields
        )
        variant.attributes = self.attributes
        variant.record_class = self.record_class
        return variant


def _native_op(node: _Node) -> tuple[Any, ...] | None:
    """How :class:`pyaya._native.RecordPlan` reads ``node``'s value as the Python plan does, or None for a kind it
    leaves to Python (enums, bitfields, chars, ints wider than 8 bytes, big-endian values)."""
    node = _unnamed(node)
    kind = type(node)
    if kind is _Int:
        assert isinstance(node, _Int)
        if node.byteorder != "little" or node.char or node.size not in (1, 2, 4, 8):
            return None
        return ("bool", node.size) if node.boolean else ("int", node.size, node.signed)
    if kind is _Float:
        assert isinstance(node, _Float)
        return ("float", node.size) if node.format.format.startswith("<") and node.size in (4, 8) else None
    if kind is _ByteArray:
        assert isinstance(node, _ByteArray)
        if node.always_text:
            return ("text", node.size)
        return ("bytes", node.size) if node.size < _MIN_TEXT_LEN else ("text_or_bytes", node.size)
    if kind is _Opaque:
        return ("bytes", node.size) if node.size else ("none",)
    if kind is _Array:
        assert isinstance(node, _Array)
        element = _native_op(node.element)
        return None if element is None else ("array", node.count, node.element.size, element)
    if kind is RecordType:
        assert isinstance(node, RecordType)
        if node.endian != "<":
            return None
        fields = []
        for field in node.fields:
            op = _native_op(field.node)
            if op is None:
                return None
            fields.append((field.offset, op))
        return ("record", node.record_class, node.size, tuple(fields))
    return None


def _unnamed(node: _Node) -> _Node:
    while isinstance(node, _Named):
        node = node.target
    return node


class _PartialRecordType(RecordType):
    """A :class:`RecordType` whose short records decode as far as their bytes go (:meth:`RecordType.variant`)."""

    def _compiled(self) -> tuple[Callable[[Any, int], Any], Callable[[Any], Any]]:
        plan: tuple[Callable[[Any, int], Any], Callable[[Any], Any]] | None = vars(self).get("_plan")
        if plan is None:
            read, whole = _compile(self)
            short = self._decode_short

            def decode(data: Any) -> Any:
                try:
                    return whole(data)
                except ObjectError:
                    return short(read, data)

            plan = (read, decode)
            vars(self)["_plan"] = plan
            vars(self)["decode"] = decode
        return plan

    def _decode_short(self, read: Callable[[Any, int], Any], data: Any) -> Record:
        present = memoryview(data).cast("B")
        have = len(present)
        values = list(read(bytes(present) + bytes(self.size - have), 0))
        for index, field in enumerate(self.fields):
            node = field.node
            if field.offset + node.size <= have:
                continue
            if field.offset < have and isinstance(_unnamed(node), _ByteArray | _Opaque):
                values[index] = node.read(present, field.offset)  # the part that is there
            else:
                values[index] = MISSING
        record: Record = tuple.__new__(self.record_class, values)
        return record


class _Named(_Node):
    """A typedef: the target's codec under the typedef's name."""

    def __init__(self, name: str, target: _Node) -> None:
        self.name, self.target, self.size = name, target, target.size

    def read(self, view: memoryview, offset: int) -> Any:
        return self.target.read(view, offset)

    def write(self, buffer: bytearray, offset: int, value: Any) -> None:
        self.target.write(buffer, offset, value)

    def __call__(self, data: bytes | bytearray | memoryview) -> Any:
        return self.decode(data)

    def __repr__(self) -> str:
        return f"<pyaya type {self.name} = {self.target.label()}>"


# -- building codecs from BTF ------------------------------------------------------------------------------------


class _Builder:
    def __init__(self, btf: Btf) -> None:
        self.btf = btf
        self.byteorder = "little" if btf.endian == "<" else "big"
        self.nodes: dict[int, _Node] = {}

    def node(self, type_id: int) -> _Node:
        """The codec of ``type_id``, after the native check that its values can be decoded (no type containing
        itself, bounded nesting and size), which bounds the recursion below."""
        found = self.nodes.get(type_id)
        if found is not None:
            return found
        self.btf.check_value(type_id)
        return self._node(type_id)

    def _node(self, type_id: int) -> _Node:
        found = self.nodes.get(type_id)
        if found is not None:
            return found
        t = self.btf.type(type_id)
        node: _Node
        if isinstance(t, BtfComposite):
            record = RecordType(t.name, t.size or 0, t.kind == Kind.UNION, self.btf.endian)
            self.nodes[type_id] = record  # before the members: a struct may point at itself
            try:
                record._complete(self._fields(t))
            except BaseException:
                del self.nodes[type_id]  # a member cannot be decoded: keep no half-built record for later lookups
                raise
            return record
        if t.kind == Kind.TYPEDEF and isinstance(t, BtfRef):
            node = _Named(t.name, self._node(t.type_id))
        elif isinstance(t, BtfRef) and not isinstance(t, BtfPtr):
            node = self._node(t.type_id)  # const, volatile, restrict, type tags
        else:
            node = self._plain(t)
        self.nodes[type_id] = node
        return node

    def _plain(self, t: BtfType) -> _Node:
        if isinstance(t, BtfInt):
            if not t.size or t.size > _MAX_INT_SIZE:  # () has size 0; wider ints are no numbers anyone prints
                return _Opaque(t.size or 0)
            return _Int(t.size or 0, t.signed, self.byteorder, boolean=t.is_bool, char=t.name == "char" and t.size == 4)
        if isinstance(t, BtfEnum):
            if not t.size or t.size > 8:
                return _Opaque(t.size or 0)
            return EnumCodec(t.name, t.size or 0, t.signed, {v.name: v.value for v in t.values}, self.byteorder)
        if isinstance(t, BtfPtr):
            return _Int(8, False, self.byteorder)
        if isinstance(t, BtfFloat):
            return _Float(t.size or 0, self.btf.endian)
        if isinstance(t, BtfArray):
            element = self.btf.resolve(t.type_id)
            if isinstance(element, BtfInt) and element.size == 1 and not element.is_bool:
                return _ByteArray(t.nelems, always_text=element.is_char and element.name != "u8")
            node = self._node(t.type_id)
            if node.size == 0:  # an array of zero-sized elements holds nothing, however many
                return _Opaque(0)
            return _Array(node, t.nelems, self.btf.endian)
        if isinstance(t, BtfVar):
            return self._node(t.type_id)
        if t.kind in (Kind.UNKN, Kind.FWD):
            return _Opaque(0)
        raise UnsupportedError(f"pyaya cannot decode values of BTF kind {t.kind.name} ({self.btf.describe(t.id)})")

    def _fields(self, t: BtfComposite) -> list[_Field]:
        fields: list[_Field] = []
        taken: set[str] = set()
        for index, member in enumerate(t.members):
            inner = self.btf.resolve(member.type_id)
            if not member.name and isinstance(inner, BtfComposite):
                # Anonymous struct/union members: their fields belong to the outer record, as in C.
                nested = self._node(inner.id)
                assert isinstance(nested, RecordType)  # a composite's node is always its RecordType
                for field in nested.fields:
                    name = _unique(field.name, index, taken)
                    fields.append(_Field(name, member.offset + field.offset, field.node))
                continue
            name = _unique(member.name or f"_{index}", index, taken)
            node: _Node
            if isinstance(inner, BtfInt) and (member.bitfield_size or member.bit_offset % 8):
                bits = member.bitfield_size or inner.bits
                node = _Bitfield(member.bit_offset % 8, bits, inner.signed, self.byteorder) if bits else _Opaque(0)
            elif member.bitfield_size and isinstance(inner, BtfEnum):
                node = _Bitfield(member.bit_offset % 8, member.bitfield_size, inner.signed, self.byteorder)
            else:
                node = self._node(member.type_id)
            fields.append(_Field(name, member.bit_offset // 8, node))
        return fields


def _unique(name: str, index: int, taken: set[str]) -> str:
    """``name``, or ``name_<index>`` (underscores added until free) when a field already has it: records keep every
    field, and asdict() one key per field."""
    unique = name if name not in taken else f"{name}_{index}"
    while unique in taken:
        unique += "_"
    taken.add(unique)
    return unique


def _is_escaped(name: str) -> bool:
    return "_" in name and _native.unescape_name(name) != name


def unescape(name: str) -> str:
    """A BTF name with bpf-linker's ``_XX_`` escapes turned back into characters (``HashMap<u32, u64>``)."""
    return _native.unescape_name(name)


class Types(Mapping[str, "Any"]):
    """The object's named types: ``types["ExecEvent"]`` is a :class:`RecordType` (structs, unions), an
    :class:`EnumCodec` (enums) or the target's codec (typedefs).

    Listed are the types a program's own code declares: Rust generic instantiations (``HashMap<u32, u64>``,
    whose BTF names bpf-linker escapes) and the map definition structs of ``#[map]`` statics are left out, but
    still reachable through :meth:`by_id`.
    """

    def __init__(self, btf: Btf, dwarf: Callable[[], bytes | None] | None = None) -> None:
        self.btf = btf
        self._builder = _Builder(btf)
        # The object's DWARF as BTF (``_native.btf_from_dwarf``), asked for only when a name is missing from the
        # BTF: names only the DWARF has (types of local variables) come from it.
        self._dwarf_source = dwarf

    @cached_property
    def _dwarf(self) -> Types | None:
        blob = self._dwarf_source() if self._dwarf_source is not None else None
        return Types(Btf.from_bytes(blob)) if blob is not None else None

    def _all_names(self) -> dict[str, None]:
        names = dict.fromkeys(self._names)
        if self._dwarf is not None:
            names.update(dict.fromkeys(self._dwarf._names))
        return names

    def __contains__(self, name: object) -> bool:
        if name in self._names:
            return True
        return isinstance(name, str) and self._dwarf is not None and name in self._dwarf._names

    @cached_property
    def _names(self) -> dict[str, int]:
        hidden = _map_definition_types(self.btf)
        names: dict[str, int] = {}
        for t in self.btf:
            if t.kind not in _NAMED_KINDS or not t.name or t.id in hidden or _is_escaped(t.name):
                continue
            if t.name == "c_void":
                continue
            names.setdefault(t.name, t.id)
        return names

    def __getitem__(self, name: str) -> Any:
        type_id = self._names.get(name)
        if type_id is None:
            dwarf = self._dwarf
            if dwarf is not None and name in dwarf._names:
                return dwarf[name]
            known = ", ".join(sorted(self._all_names())) or "none"
            where = "BTF and DWARF have" if dwarf is not None else "BTF has"
            raise NotFoundError(f"the object's {where} no type named {name!r} (known: {known})")
        return self._builder.node(type_id)

    # Listed are the BTF's names: a Rust object's DWARF also describes standard-library types (core's `Range`...),
    # which no listing should show. Names only the DWARF has are found by lookup (``in``, ``[]``, ``typed()``) and
    # named by the NotFoundError.
    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def by_id(self, type_id: int) -> Any:
        """The codec of any BTF type by id."""
        return self._builder.node(type_id)

    def parse(self, rust_type: str) -> _Node | None:
        """The codec for a Rust type as written in a generic argument (``u32``, ``[u8; 16]``,
        ``my_common::FlowKey``), or None when it cannot be known (a struct absent from the BTF, a tuple)."""
        return _spec_node(_native.parse_rust_type(rust_type), self)

    def __repr__(self) -> str:
        return f"<pyaya.types.Types: {', '.join(self._names)}>"


# Integers wider than this (u128 is the widest Rust has) are kept as bytes.
_MAX_INT_SIZE = 16
# The largest value a codec is made for: as pyaya-core's check_value, so no codec's zero() allocates more.
_MAX_SIZE = 1 << 26


def _spec_node(spec: Any, types: Types) -> _Node | None:
    """The codec of a Rust type parsed natively (``("int", 4, False)``, ``("array", spec, 16)``,
    ``("named", "FlowKey")``...), or None when it cannot be known. Arrays nest at most 16 deep in a spec."""
    if spec is None:
        return None
    byteorder, endian = types._builder.byteorder, types.btf.endian
    tag = spec[0]
    if tag == "int":
        return _Int(spec[1], spec[2], byteorder)
    if tag == "bool":
        return _Int(1, False, byteorder, boolean=True)
    if tag == "char":
        return _Int(4, False, byteorder, char=True)
    if tag == "float":
        return _Float(spec[1], endian)
    if tag == "array":
        inner = _spec_node(spec[1], types)
        count = spec[2]
        if inner is None or inner.size * count > _MAX_SIZE:
            return None
        if isinstance(inner, _Int) and inner.size == 1 and not inner.boolean:
            return _ByteArray(count, always_text=False)
        return _Array(inner, count, endian)
    for candidate in types.btf.find_all(spec[1]):
        if candidate.kind in _NAMED_KINDS:
            return types._builder.node(candidate.id)
    return None


# -- the maps' key and value types -------------------------------------------------------------------------------


class MapTypes:
    """What the BTF says about one map's keys and values (either may be None: unknown)."""

    __slots__ = ("key", "value")

    def __init__(self, key: _Node | None, value: _Node | None) -> None:
        self.key, self.value = key, value

    def __repr__(self) -> str:
        key = self.key.label() if self.key is not None else None
        value = self.value.label() if self.value is not None else None
        return f"MapTypes(key={key}, value={value})"


def _map_sections(btf: Btf) -> Iterator[tuple[str, BtfVar]]:
    for t in btf:
        if isinstance(t, BtfDatasec) and t.name in ("maps", ".maps"):
            for info in t.vars:
                var = btf.type(info.type_id)
                if isinstance(var, BtfVar):
                    yield t.name, var


#: Map kinds whose values are kernel objects the map's class sets and reads itself (program, socket, device, cgroup
#: and perf event fds, a CPU's queue settings), not the program's data: a BTF definition's value type (aya-ebpf's
#: ``btf_maps`` point it at a u32 slot, or at the kernel's ``bpf_devmap_val``/``bpf_cpumap_val``) types no record. A
#: ``btf_maps::PerfEventArray``'s records have no type in the BTF at all.
_KERNEL_SLOT_KINDS = frozenset(
    {
        "ProgramArray", "PerfEventArray", "CgroupArray", "DevMap", "DevMapHash", "SockMap", "SockHash", "CpuMap",
        "XskMap", "ReusePortSockArray",
    }
)  # fmt: skip
#: Those of them keyed by an index, which the map's class checks itself (the BTF's u32 key adds nothing to that).
_INDEXED_SLOT_KINDS = _KERNEL_SLOT_KINDS - {"SockHash", "DevMapHash"}


def _btf_map_kind(btf: Btf, definition: BtfComposite) -> str | None:
    """The map kind (aya's name) a ``.maps`` definition declares: its ``type`` member is ``int (*type)[KIND]``."""
    for member in definition.members:
        if member.name != "type":
            continue
        pointer = btf.resolve(member.type_id)
        target = btf.resolve(pointer.type_id) if isinstance(pointer, BtfPtr) else None
        if isinstance(target, BtfArray) and target.nelems < len(_native.MAP_TYPES):
            return _native.MAP_TYPES[target.nelems]
    return None


def _data_members(btf: Btf, definition: BtfComposite) -> tuple[str, ...]:
    """Which of a ``.maps`` definition's ``key`` and ``value`` point at the program's data (see
    :data:`_KERNEL_SLOT_KINDS`)."""
    kind = _btf_map_kind(btf, definition)
    if kind in _INDEXED_SLOT_KINDS:
        return ()
    if kind in _KERNEL_SLOT_KINDS:
        return ("key",)
    return ("key", "value")


def _map_definition_types(btf: Btf) -> set[int]:
    """Types reachable from map statics, except through a `#[btf_map]` definition's key/value pointers to the
    program's data."""
    seen: set[int] = set()
    stack: list[int] = []
    for section, var in _map_sections(btf):
        definition = btf.resolve(var.type_id)
        if section == ".maps" and isinstance(definition, BtfComposite):
            seen.update((var.type_id, definition.id))
            data = _data_members(btf, definition)
            stack.extend(m.type_id for m in definition.members if m.name not in data)
        else:
            stack.append(var.type_id)
    while stack:
        type_id = stack.pop()
        if type_id in seen or type_id == 0:
            continue
        seen.add(type_id)
        t = btf.type(type_id)
        if isinstance(t, BtfComposite):
            stack.extend(m.type_id for m in t.members)
        elif isinstance(t, (BtfRef, BtfArray)):
            stack.append(t.type_id)
    return seen


def map_types(types: Types) -> dict[str, MapTypes]:
    """Key and value codecs of every map whose definition in the BTF reveals them, by map name."""
    btf = types.btf
    found: dict[str, MapTypes] = {}
    for section, var in _map_sections(btf):
        definition = btf.resolve(var.type_id)
        if not isinstance(definition, BtfComposite):
            continue
        if section == ".maps":
            data = _data_members(btf, definition)
            members = {m.name: m.type_id for m in definition.members if m.name in data}
            found[var.name] = MapTypes(_pointee(types, members.get("key")), _pointee(types, members.get("value")))
            continue
        parsed = _native.rust_type_arguments(definition.name)
        if parsed is None:
            continue
        base, specs = parsed
        arguments = [_spec_node(spec, types) for spec in specs]
        if base == "LpmTrie":  # K is the data part of the key (lpm's Key<K> adds the prefix length)
            found[var.name] = MapTypes(arguments[0], arguments[1] if len(arguments) > 1 else None)
        elif len(arguments) >= 2:
            found[var.name] = MapTypes(arguments[0], arguments[1])
        elif len(arguments) == 1:
            found[var.name] = MapTypes(None, arguments[0])
    return found


def _lpm_data(key: _Node | None) -> _Node | None:
    """The data part of an LPM trie key type: the ``data`` field of aya's ``Key<K>`` (or libbpf's
    ``struct { __u32 prefixlen; ... }``) when the type is the whole key; else the type itself (already the data)."""
    if isinstance(key, RecordType) and len(key.fields) == 2 and key.fields[0].offset == 0:
        prefix, data = key.fields
        if prefix.node.size == 4 and data.offset == 4:
            return data.node
    return key


def _pointee(types: Types, member_type: int | None) -> _Node | None:
    if member_type is None:
        return None
    pointer = types.btf.resolve(member_type)
    if not isinstance(pointer, BtfPtr):
        return None
    target = types.btf.resolve(pointer.type_id)
    if isinstance(target, BtfArray) and target.nelems == 0:
        # `T[0]`: a ring buffer's record type, sized 0 for libbpf by pyaya's build (pyaya._btf_fixups).
        node = types.by_id(target.type_id)
    else:
        node = types.by_id(pointer.type_id)
    return None if isinstance(node, _Opaque) else node


# -- typed maps --------------------------------------------------------------------------------------------------


def apply_btf_types(map_: Map, found: MapTypes | None) -> Map:
    """``map_`` with the BTF's key and value codecs applied where their sizes match the map's; the one place that
    knows how maps take codecs."""
    if isinstance(map_, Stream):
        value = found.value if found is not None else None
        return map_ if value is None else map_.typed(value)
    if found is None:
        return map_
    key_node, key_size = found.key, map_.key_size
    if isinstance(map_, LpmTrie):  # the map takes the data part of its keys: K of aya's Key<K> (prefix_len, data)
        key_node, key_size = _lpm_data(key_node), key_size - 4
    key = key_node if key_node is not None and key_node.size == key_size else None
    value = found.value if found.value is not None and found.value.size == map_.value_size else None
    if key is None and value is None:
        return map_
    typed = getattr(map_, "typed", None)  # every key/value map class: typed(key=..., value=...)
    return map_ if typed is None else typed(key=key, value=value)
