"""The map base class, the registry of typed classes, per-CPU values, and the key/value containers (hash maps,
arrays) with batch operations."""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from itertools import chain

from pyaya import _args, _native
from pyaya._typing import overload
from pyaya.errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidIndexError,
    MapError,
    UnsupportedError,
)
from pyaya.maps._codec import BYTE_ORDER, BulkCodec, Codec, IntCodec, all_ints, bulk_codec, codec_for

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, ClassVar, TypeAlias, TypeVar

    from pyaya.loader import Ebpf

    MapT = TypeVar("MapT", bound="type[Map]")
    KeyValueT = TypeVar("KeyValueT", bound="KeyValueMap")

__all__ = [
    "Array",
    "HashMap",
    "KeyValueMap",
    "LruHashMap",
    "Map",
    "PerCpuArray",
    "PerCpuHashMap",
    "PerCpuLruHashMap",
    "PerCpuValues",
    "register",
    "wrap_map",
]

NativeMap: TypeAlias = "_native.Map | _native.RingBuf | _native.PerfEventArray"

# Kernel `enum bpf_map_type` numbers of the map classes `create` can make.
_CREATE_TYPES = {
    "HashMap": 1,
    "Array": 2,
    "PerCpuHashMap": 5,
    "PerCpuArray": 6,
    "LruHashMap": 9,
    "PerCpuLruHashMap": 10,
}


def _spec_size(spec: Any, size: int | None, what: str, default: int) -> int:
    """The byte size of a key or value: ``size`` when given, else the size of the codec ``spec`` names (a ctypes
    type, a struct format, a Codec), else ``default``."""
    if size is not None:
        return _args.integer(size, what, low=1, high=_args.U32)
    if spec is None or spec is int or spec is bytes:
        return default
    known = codec_for(spec, None).size
    if known <= 0:
        raise InvalidArgumentError(f"{what}: {spec!r} has no fixed size; pass the size too")
    return known


_CLASSES: dict[str, type[Map]] = {}

# The native class under another name: inside classes, ``_native`` is the attribute holding the handle.
NativeKeyValueMap: TypeAlias = _native.Map

# A batch as the native batch reads return it: (count, the keys back to back, the values back to back).
_Packed: TypeAlias = tuple[int, bytes, bytes]


def _pack(pairs: list[tuple[bytes, bytes]]) -> _Packed:
    """Key-by-key results in the layout of a batch read."""
    return len(pairs), b"".join([key for key, _ in pairs]), b"".join([value for _, value in pairs])


def _pairs(value: object, what: str) -> list[tuple[Any, Any]]:
    """``value`` (a mapping, or an iterable of ``(key, value)`` pairs) as a list of pairs."""
    if isinstance(value, Mapping):
        return list(value.items())
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidArgumentTypeError(f"{what} must be a mapping or (key, value) pairs, not {type(value).__name__}")
    pairs = list(value)
    for pair in pairs:
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise InvalidArgumentError(f"{what} holds {pair!r}, which is not a (key, value) pair")
    return [(key, item) for key, item in pairs]


def register(cls: MapT) -> MapT:
    """Class decorator: ``cls`` is the Python face of maps whose native ``kind`` is in ``cls.kinds``."""
    for kind in cls.kinds:
        _CLASSES[kind] = cls
    return cls


def wrap_map(native: Any, ebpf: Ebpf | None = None) -> Map:
    """The typed Python class for a native map (``ebpf`` is the owning object, ``None`` for a pinned map)."""
    cls = _CLASSES.get(native.kind, Map)
    return cls._from_native(native, ebpf)


class Map:
    """A map of a loaded object (or opened from a pin). Subclasses give each map type the behaviour of a Python
    container; this base class offers the kernel's facts about the map, pinning and closing."""

    kinds: ClassVar[tuple[str, ...]] = ()

    def __init__(self, native: Any, ebpf: Ebpf | None = None) -> None:
        self._native: Any = native
        self._ebpf = ebpf

    @classmethod
    def _from_native(cls, native: Any, ebpf: Ebpf | None) -> Map:
        return cls(native, ebpf)

    @classmethod
    def from_pin(cls, path: str | os.PathLike[str]) -> Map:
        """Open the map pinned at ``path`` in bpffs, as the typed class for its kind (``HashMap``, ...)."""
        return wrap_map(_native.Map.from_pin(_args.path(path, "path")), None)

    @classmethod
    def from_id(cls, map_id: int) -> Map:
        """Open the map with kernel id ``map_id`` (``pyaya.loaded_maps()`` lists them; a program's are in
        ``prog.info()["map_ids"]``), created by this or another process, as the typed class for its kind. The
        handle keeps the map while it lives.

        >>> counts = pyaya.Map.from_id(prog.info()["map_ids"][0])  # doctest: +SKIP
        """
        return wrap_map(_native.Map.from_id(_args.integer(map_id, "map id", low=1, high=_args.U32)), None)

    @property
    def name(self) -> str:
        return str(self._native.name)

    @property
    def type(self) -> str:
        """The map type's name, e.g. ``"HashMap"``."""
        return str(self._native.kind)

    @property
    def id(self) -> int:
        """The kernel's id of the map."""
        return int(self._native.id)

    @property
    def key_size(self) -> int:
        return int(getattr(self._native, "key_size", 0))

    @property
    def value_size(self) -> int:
        return int(getattr(self._native, "value_size", 0))

    @property
    def max_entries(self) -> int:
        return int(self._native.max_entries)

    @property
    def closed(self) -> bool:
        return bool(self._native.closed)

    @property
    def pinned_path(self) -> Path | None:
        """Where this handle pinned the map (or the pin it was opened from, or its ``pin_maps`` pin), or ``None``."""
        path = self._native.pinned_path
        if path is None:
            return None
        import pathlib  # noqa: PLC0415 - ~9 ms with re and urllib, for this property only

        return pathlib.Path(path)

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin the map at ``path`` in bpffs: it outlives this process until :meth:`unpin` or ``os.unlink(path)``.
        Another process (or object) opens it with :meth:`Map.from_pin`. ``path`` must be in a folder on bpffs
        (e.g. under ``/sys/fs/bpf``); the pin gets mode 0600."""
        self._native.pin(_args.path(path, "path"))

    def unpin(self) -> None:
        """Remove this handle's pin (see :attr:`pinned_path`); the map lives on while handles on it remain."""
        self._native.unpin()

    def close(self) -> None:
        self._native.close()

    def __enter__(self: Any) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<pyaya.{type(self).__name__} {self.name!r}: key {self.key_size} B, value {self.value_size} B, "
            f"max {self.max_entries}>"
        )


class PerCpuValues(list["Any"]):
    """One value per possible CPU (index = CPU number), as per-CPU maps return them."""

    def sum(self) -> Any:
        """The values added up: numbers, and struct values field by field (nested structs and arrays included),
        as per-CPU stats such as xdp-tutorial's ``struct datarec {rx_packets, rx_bytes}`` are summed. A field that
        is not a number (text, bytes, a bool or an enum) raises :class:`~pyaya.errors.InvalidArgumentTypeError`
        naming it."""
        values = list(self)
        if not values:
            return 0
        total = values[0]
        for value in values[1:]:
            total = _added(total, value, "")
        return total


def _added(left: Any, right: Any, where: str) -> Any:
    """``left + right`` for per-CPU values: numbers added, records and arrays element by element."""
    # A decoded struct (pyaya.types.Record, a tuple with its type in `_type`), told apart without importing
    # pyaya.types, which imports this package.
    names = getattr(left, "_fields", None)
    if (
        isinstance(left, tuple)
        and type(left) is type(right)
        and getattr(left, "_type", None) is not None
        and names is not None
    ):
        fields = [
            _added(a, b, f"{where}.{name}" if where else name) for name, a, b in zip(names, left, right, strict=True)
        ]
        return type(left)(fields)
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        return [_added(a, b, f"{where}[{i}]") for i, (a, b) in enumerate(zip(left, right, strict=True))]
    numbers = (int, float)
    if (
        isinstance(left, numbers)
        and isinstance(right, numbers)
        and not isinstance(left, (bool, enum.Enum))
        and not isinstance(right, (bool, enum.Enum))
    ):
        return left + right
    raise InvalidArgumentTypeError(
        f"sum(): {'field ' + where if where else 'the value'} is {type(left).__name__}, not a number, so per-CPU "
        "values cannot be added up; add the fields you want yourself"
    )


class _PerCpuCodec:
    """Splits a per-CPU buffer (one 8-byte-aligned slot per possible CPU) into :class:`PerCpuValues`."""

    def __init__(self, inner: Codec, value_size: int, buffer_len: int) -> None:
        self.inner = inner
        self.slot = (value_size + 7) // 8 * 8
        self.cpus = buffer_len // self.slot if self.slot else 0
        self.size = buffer_len

    def encode(self, value: Any) -> bytes:
        if isinstance(value, list):
            if len(value) != self.cpus:
                raise MapError(f"per-CPU values need one value per possible CPU ({self.cpus}), got {len(value)}")
            values = value
        else:
            values = [value] * self.cpus
        pad = bytes(self.slot - self.inner.size)
        return b"".join(self.inner.encode(item) + pad for item in values)

    def decode(self, data: bytes) -> PerCpuValues:
        return PerCpuValues(
            self.inner.decode(data[cpu * self.slot : cpu * self.slot + self.inner.size]) for cpu in range(self.cpus)
        )


class _PerCpuBulk(BulkCodec):
    """A batch of per-CPU values: every slot of every entry decoded (or encoded) by the inner codec at once."""

    def __init__(self, codec: _PerCpuCodec) -> None:
        super().__init__(codec)
        self.per_cpu = codec
        self.inner = bulk_codec(codec.inner)

    def decode_many(self, data: bytes, count: int, stride: int, width: int | None = None) -> list[Any]:
        codec, cpus = self.per_cpu, self.per_cpu.cpus
        if width not in (None, stride) or stride != cpus * codec.slot or not cpus:
            return super().decode_many(data, count, stride, width)
        flat = self.inner.decode_many(data, count * cpus, codec.slot, codec.inner.size)
        # One iterator zipped with itself: consecutive runs of ``cpus`` values, one entry each.
        return list(map(PerCpuValues, zip(*[iter(flat)] * cpus, strict=False)))

    def encode_many(self, values: Sequence[Any], stride: int | None = None) -> bytes:
        codec, cpus = self.per_cpu, self.per_cpu.cpus
        if stride not in (None, codec.size) or codec.size != cpus * codec.slot:
            return super().encode_many(values, stride)
        if any(issubclass(kind, list) for kind in set(map(type, values))):
            flat: list[Any] = []
            for value in values:
                if isinstance(value, list):
                    if len(value) != cpus:
                        codec.encode(value)  # raises the per-entry error
                    flat.extend(value)
                else:
                    flat.extend([value] * cpus)
        elif codec.slot == 8:  # each value written to every CPU: encoded once, then copied slot by slot
            once = memoryview(self.inner.encode_many(values, 8))
            if len(once) != 8 * len(values):  # a codec's bytes of the wrong size: as entry by entry
                return super().encode_many(values, stride)
            slots = bytearray(len(once) * cpus)
            spread = memoryview(slots).cast("Q")
            for cpu in range(cpus):
                spread[cpu::cpus] = once.cast("Q")
            return bytes(slots)
        else:
            flat = list(chain.from_iterable(zip(*[values] * cpus, strict=True)))
        return self.inner.encode_many(flat, codec.slot)


def _bulk(codec: Codec) -> BulkCodec:
    return _PerCpuBulk(codec) if isinstance(codec, _PerCpuCodec) else bulk_codec(codec)


def _value_codec(native: _native.Map, spec: Any) -> Codec:
    inner = codec_for(spec, native.value_size)
    if native.value_buffer_len != native.value_size:
        return _PerCpuCodec(inner, native.value_size, native.value_buffer_len)
    return inner


class KeyValueMap(Map):
    """A map with fixed-size keys and values, decoded by codecs chosen with :meth:`typed`."""

    _native: NativeKeyValueMap

    def __init__(
        self,
        native: NativeKeyValueMap,
        ebpf: Ebpf | None = None,
        key: Any = None,
        value: Any = None,
    ) -> None:
        super().__init__(native, ebpf)
        self._key_spec = key
        self._value_spec = value
        self._keys: Codec = self._key_codec(key)
        self._values: Codec = _value_codec(native, value)
        self._bulk_keys = _bulk(self._keys)
        self._bulk_values = _bulk(self._values)

    def _key_codec(self, spec: Any) -> Codec:
        return codec_for(spec, self._native.key_size)

    @classmethod
    def create(
        cls: type[KeyValueT],
        max_entries: int,
        *,
        key: Any = None,
        value: Any = None,
        key_size: int | None = None,
        value_size: int | None = None,
        flags: int = 0,
        name: str = "",
    ) -> KeyValueT:
        """Create a new map of this class's type, outside any object (``BPF_MAP_CREATE``): for user space only, a
        map of maps' inner map, or a program array's... It lives while a handle, a pin or a program holds it.

        ``key`` and ``value`` are codecs as :meth:`typed` takes them; the sizes come from them (a ctypes type, a
        :mod:`struct` format, a :class:`Codec`), from ``key_size``/``value_size``, or default to 8 bytes (an
        array's key is always 4). ``flags`` are the kernel's ``BPF_F_*`` map flags; ``name`` is kept to 15 bytes.
        Types: HashMap, LruHashMap, PerCpuHashMap, PerCpuLruHashMap, Array, PerCpuArray.

        >>> counts = pyaya.HashMap.create(1024, key=ctypes.c_uint32, value=ctypes.c_uint64)  # doctest: +SKIP
        >>> counts[7] = 1  # doctest: +SKIP
        """
        kind = cls.kinds[0] if cls.kinds else cls.__name__
        map_type = _CREATE_TYPES.get(kind)
        if map_type is None:
            raise UnsupportedError(
                f"{cls.__name__}.create is not supported; pyaya creates {', '.join(sorted(_CREATE_TYPES))} maps"
            )
        _args.integer(max_entries, "max_entries", low=1, high=_args.U32)
        is_array = kind in ("Array", "PerCpuArray")
        if is_array and key_size not in (None, 4):
            raise InvalidArgumentError(f"an array's key is a 4-byte index, not {key_size} bytes")
        keys = 4 if is_array else _spec_size(key, key_size, "key_size", 8)
        values = _spec_size(value, value_size, "value_size", 8)
        _args.integer(flags, "flags", low=0, high=_args.U32)
        native = _native.Map.create(map_type, keys, values, max_entries, flags, _args.string(name, "name", empty=True))
        made = wrap_map(native, None)
        if not isinstance(made, cls):
            raise MapError(f"the kernel made a {made.type} map, not a {kind}")
        if key is None and value is None:
            return made
        typed: KeyValueT = made.typed(key, value)
        return typed

    def typed(
        self,
        key: Any = None,
        value: Any = None,
        *,
        key_type: Any = None,
        value_type: Any = None,
    ) -> Any:
        """The same map with keys decoded as ``key`` and values as ``value`` (each: None, ``int``, ``bytes``, a
        ctypes type, a :mod:`struct` format or a :class:`Codec`). ``key_type``/``value_type`` are older names."""
        return type(self)(
            self._native,
            self._ebpf,
            key if key is not None else key_type,
            value if value is not None else value_type,
        )

    @property
    def key_codec(self) -> Codec:
        return self._keys

    @property
    def value_codec(self) -> Codec:
        return self._values

    @property
    def value_buffer_len(self) -> int:
        return int(self._native.value_buffer_len)

    # -- batch helpers: the kernel's batch commands where it has them for this map type, else key by key ------------

    def _batched(self, batch: bool | None, fast: Callable[[], Any], slow: Callable[[], Any]) -> Any:
        # The native side remembers a command the kernel refused and then refuses at once, without a syscall.
        if batch is not None:
            _args.flag(batch, "batch")
        if batch is not False:
            try:
                return fast()
            except UnsupportedError:
                if batch:
                    raise
        return slow()

    def _raw_keys(self) -> list[bytes]:
        return self._native.keys()

    def _raw_batch(self, batch: bool | None = None) -> _Packed:
        """Every entry, read with the batch command where possible (see :meth:`_batched`), packed."""
        return self._batched(  # type: ignore[no-any-return]
            batch, self._native.lookup_batch_packed, lambda: _pack(self._native.items())
        )

    def items_array(self, *, batch: bool | None = None) -> tuple[Any, Any]:
        """Every entry as two numpy arrays, keys and values (dtypes from the map's codecs: BTF types as structured
        dtypes, ints as integers, bytes as ``V<n>``), read with the batch command where the kernel has it (see
        :meth:`_batched`), else key by key. Needs numpy (``pip install 'pyaya[numpy]'``)."""
        import importlib  # noqa: PLC0415 - ~0.4 ms, not loaded at start-up: numpy and pyarrow paths only

        _dtypes = importlib.import_module("pyaya.dtypes")  # after pyaya.types, which imports this package
        np = _dtypes.numpy()
        if self.value_buffer_len != self.value_size:
            raise UnsupportedError(
                f"{self.name} holds one value per CPU: read it with items() (columnar per-CPU reads are not "
                "supported yet)"
            )
        key_dtype = _dtypes.dtype_of(self._keys, self.key_size)
        value_dtype = _dtypes.dtype_of(self._values, self.value_size)
        count, keys, values = self._raw_batch(batch)
        return (
            np.frombuffer(keys, dtype=key_dtype, count=count),
            np.frombuffer(values, dtype=value_dtype, count=count),
        )

    def update_array(self, keys: Any, values: Any, *, batch: bool | None = None) -> int:
        """Write ``keys[i] -> values[i]`` for every ``i`` from two numpy arrays (or anything numpy takes as one:
        lists of ints, structured arrays of :meth:`items_array`'s dtypes), in one ``BPF_MAP_UPDATE_BATCH`` where
        the kernel has it (see :meth:`_batched`), else key by key; returns how many were written. Each array is
        converted to the map's dtype (ints that do not fit raise :class:`~pyaya.InvalidArgumentError`). Needs
        numpy (``pip install 'pyaya[numpy]'``)."""
        import importlib  # noqa: PLC0415 - ~0.4 ms, not loaded at start-up: numpy and pyarrow paths only

        _dtypes = importlib.import_module("pyaya.dtypes")
        np = _dtypes.numpy()
        if self.value_buffer_len != self.value_size:
            raise UnsupportedError(
                f"{self.name} holds one value per CPU: write it with update() (columnar per-CPU writes are not "
                "supported yet)"
            )
        packed = []
        for label, given, codec, size in (
            ("keys", keys, self._keys, self.key_size),
            ("values", values, self._values, self.value_size),
        ):
            dtype = _dtypes.dtype_of(codec, size)
            try:
                array = np.asarray(given)
                if array.dtype != dtype:
                    if array.dtype.kind in "iu" and dtype.kind in "iu":
                        info = np.iinfo(dtype)
                        if array.size and (array.min() < info.min or array.max() > info.max):
                            raise InvalidArgumentError(
                                f"{label} of update_array() on {self.name} do not fit its {size}-byte "
                                f"{'signed' if dtype.kind == 'i' else 'unsigned'} integers ({info.min}..{info.max})"
                            )
                    array = array.astype(dtype, casting="unsafe" if array.dtype.kind in "iu" else "same_kind")
            except (TypeError, ValueError) as error:
                raise InvalidArgumentTypeError(
                    f"{label} of update_array() on {self.name} cannot be read as {dtype}: {error}"
                ) from None
            if array.ndim != 1:
                raise InvalidArgumentError(f"{label} of update_array() must be one-dimensional, not {array.shape}")
            packed.append(np.ascontiguousarray(array))
        key_array, value_array = packed
        if len(key_array) != len(value_array):
            raise InvalidArgumentError(
                f"update_array() on {self.name} got {len(key_array)} keys and {len(value_array)} values: give one "
                "value per key"
            )
        count = len(key_array)
        if not count:
            return 0
        key_bytes, value_bytes = key_array.tobytes(), value_array.tobytes()

        def slow() -> int:
            key_size, value_size = self.key_size, self.value_size
            for index in range(count):
                self._native.update(
                    key_bytes[index * key_size : (index + 1) * key_size],
                    value_bytes[index * value_size : (index + 1) * value_size],
                    0,
                )
            return count

        return int(self._batched(batch, lambda: self._native.update_batch(key_bytes, value_bytes, 0), slow))

    def to_array(self, *, batch: bool | None = None) -> Any:
        """Every value as one numpy array, in the order of :meth:`items_array`'s keys (see there)."""
        return self.items_array(batch=batch)[1]

    def to_arrow(self, *, batch: bool | None = None) -> Any:
        """Every entry as one ``pyarrow.RecordBatch`` with two columns, ``key`` and ``value`` (structs as Arrow
        structs, char arrays as strings: :mod:`pyaya.arrow`), read as :meth:`items_array` reads. Needs pyarrow
        (``pip install 'pyaya[arrow]'``)."""
        import importlib  # noqa: PLC0415 - ~0.4 ms, not loaded at start-up: numpy and pyarrow paths only

        arrow = importlib.import_module("pyaya.arrow")
        pa = arrow.pyarrow()
        keys, values = self.items_array(batch=batch)
        return pa.RecordBatch.from_arrays(
            [arrow.record_column(keys), arrow.record_column(values)], names=["key", "value"]
        )

    def _decode_keys(self, packed: _Packed) -> list[Any]:
        count, keys, _ = packed
        return self._bulk_keys.decode_many(keys, count, self.key_size)

    def _decode_values(self, packed: _Packed) -> list[Any]:
        count, _, values = packed
        return self._bulk_values.decode_many(values, count, self.value_buffer_len)

    def _decode_items(self, packed: _Packed) -> list[tuple[Any, Any]]:
        return list(zip(self._decode_keys(packed), self._decode_values(packed), strict=True))

    def _encode_columns(self, keys: list[Any], values: list[Any]) -> tuple[bytes, bytes]:
        """``keys`` and ``values`` (as many of each), each encoded back to back."""
        try:
            return self._bulk_keys.encode_many(keys), self._bulk_values.encode_many(values)
        except Exception:
            # Encode pair by pair, as one entry at a time would, so the error raised is the first pair's.
            for key, value in zip(keys, values, strict=True):
                self._keys.encode(key)
                self._values.encode(value)
            raise

    def _write_many(self, pairs: Iterable[tuple[Any, Any]], batch: bool | None, flags: int = 0) -> int:
        items = list(pairs)
        return self._write_columns([key for key, _ in items], [value for _, value in items], batch, flags)

    def _write_columns(self, key_list: list[Any], value_list: list[Any], batch: bool | None, flags: int = 0) -> int:
        """Write ``key_list[i] -> value_list[i]`` for every ``i``: every entry encoded first, then one batch."""
        if not key_list:
            return 0
        keys, values = self._encode_columns(key_list, value_list)
        count = len(key_list)

        def fast() -> int:
            return self._native.update_batch(keys, values, flags)

        def slow() -> int:
            key_size, value_len = self.key_size, self.value_buffer_len
            if len(keys) != count * key_size or len(values) != count * value_len:
                # A codec gave an entry of the wrong size: write entry by entry, so the native check names it.
                for key, value in zip(key_list, value_list, strict=True):
                    self._native.update(self._keys.encode(key), self._values.encode(value), flags)
                return count
            for index in range(count):
                key = keys[index * key_size : (index + 1) * key_size]
                self._native.update(key, values[index * value_len : (index + 1) * value_len], flags)
            return count

        return int(self._batched(batch, fast, slow))


class HashMap(KeyValueMap, MutableMapping["Any", "Any"]):
    """A hash map (``BPF_MAP_TYPE_HASH``, kernel 3.19) as a ``MutableMapping``.

    Keys and values of 1, 2, 4 or 8 bytes are ints (native byte order), others bytes; :meth:`typed` picks other
    codecs. :meth:`items`, :meth:`values`, :meth:`clear`, :meth:`update` and :meth:`pop_all` use the kernel's
    batch commands (kernel 5.6) when it has them, key by key otherwise.

    >>> counts = bpf.maps["EXEC_COUNTS"].typed(key=int, value="q")  # doctest: +SKIP
    >>> dict(counts)  # doctest: +SKIP
    {0: 12, 1000: 3}
    """

    kinds: ClassVar[tuple[str, ...]] = ("HashMap",)

    def __getitem__(self, key: object) -> Any:
        value = self._native.lookup(self._keys.encode(key))
        if value is None:
            raise KeyError(key)
        return self._values.decode(value)

    def __setitem__(self, key: object, value: object) -> None:
        self._native.update(self._keys.encode(key), self._values.encode(value))

    def __delitem__(self, key: object) -> None:
        if not self._native.delete(self._keys.encode(key)):
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        try:
            encoded = self._keys.encode(key)
        except (MapError, TypeError):
            return False
        return self._native.lookup(encoded) is not None

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._raw_keys())

    def items(self, *, batch: bool | None = None) -> list[tuple[Any, Any]]:  # type: ignore[override]
        """Every ``(key, value)`` pair. ``batch``: None picks batch commands where the kernel has them, True
        insists (``UnsupportedError`` otherwise), False reads key by key. The batch reads run on a thread of their
        own while the chunks read before are decoded."""

        def chunked() -> list[tuple[Any, Any]]:
            items: list[tuple[Any, Any]] = []
            for packed in self._native.lookup_batch_chunks():
                items.extend(zip(self._decode_keys(packed), self._decode_values(packed), strict=True))
            return items

        return self._batched(batch, chunked, lambda: self._decode_items(_pack(self._native.items())))  # type: ignore[no-any-return]

    def to_dict(self, *, batch: bool | None = None) -> dict[Any, Any]:
        """Every entry as a ``dict`` (what ``dict(m.items())`` gives, without the list between; see :meth:`items`
        for ``batch``): for a large map, the decoding of each chunk overlaps the kernel's reading of the next."""

        def chunked() -> dict[Any, Any]:
            entries: dict[Any, Any] = {}
            for packed in self._native.lookup_batch_chunks():
                entries.update(zip(self._decode_keys(packed), self._decode_values(packed), strict=True))
            return entries

        return self._batched(batch, chunked, lambda: dict(self._decode_items(_pack(self._native.items()))))  # type: ignore[no-any-return]

    def values(self, *, batch: bool | None = None) -> list[Any]:  # type: ignore[override]
        """Every value (see :meth:`items` for ``batch``)."""
        return self._decode_values(self._raw_batch(batch))

    def keys(self) -> list[Any]:  # type: ignore[override]
        """Every key, in the kernel's order."""
        keys = self._raw_keys()
        return self._bulk_keys.decode_many(b"".join(keys), len(keys), self.key_size)

    def update_many(self, pairs: Mapping[Any, Any] | Iterable[tuple[Any, Any]], *, batch: bool | None = None) -> int:
        """Write many entries (one ``BPF_MAP_UPDATE_BATCH`` where possible); returns how many were written."""
        if isinstance(pairs, Mapping):
            # A mapping's keys and values are taken as two lists: no list of pairs between.
            return self._write_columns(list(pairs), list(pairs.values()), batch)
        return self._write_many(_pairs(pairs, "pairs"), batch)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Like ``dict.update``, in one batch command where the kernel has it."""
        if kwargs:
            raise InvalidArgumentTypeError("map keys are not strings: pass a mapping or (key, value) pairs")
        if isinstance(other, Mapping):
            self._write_columns(list(other), list(other.values()), None)
            return
        self._write_many(_pairs(other, "the argument of update()"), None)

    def pop_all(self, *, batch: bool | None = None) -> dict[Any, Any]:
        """Read and remove every entry (``BPF_MAP_LOOKUP_AND_DELETE_BATCH`` where possible): a drain of counters
        without losing increments that land between the read and the delete of one key."""

        def fast() -> _Packed:
            return self._native.lookup_batch_packed(None, True)

        def slow() -> _Packed:
            taken = []
            for key in self._raw_keys():
                value = self._native.lookup(key)
                if value is not None and self._native.delete(key):
                    taken.append((key, value))
            return _pack(taken)

        return dict(self._decode_items(self._batched(batch, fast, slow)))

    drain = pop_all

    def clear(self, *, batch: bool | None = None) -> None:
        """Remove every entry (one batch traversal where possible)."""

        def fast() -> None:
            self._native.lookup_and_delete_batch()

        def slow() -> None:
            for key in self._raw_keys():
                self._native.delete(key)

        self._batched(batch, fast, slow)


register(HashMap)


@register
class LruHashMap(HashMap):
    """A hash map that evicts its least recently used entries when full (``BPF_MAP_TYPE_LRU_HASH``, kernel 4.10).

    >>> recent = bpf.maps["RECENT"]  # doctest: +SKIP
    >>> recent[42] = 1  # doctest: +SKIP
    """

    kinds: ClassVar[tuple[str, ...]] = ("LruHashMap",)


@register
class PerCpuHashMap(HashMap):
    """A hash map with one value per possible CPU (``BPF_MAP_TYPE_PERCPU_HASH``, kernel 4.6).

    Values come back as :class:`PerCpuValues`; writes take one value (copied to every CPU) or one per CPU.

    >>> bpf.maps["PER_CPU_COUNTS"][0].sum()  # doctest: +SKIP
    17
    """

    kinds: ClassVar[tuple[str, ...]] = ("PerCpuHashMap",)


@register
class PerCpuLruHashMap(HashMap):
    """A per-CPU hash map with LRU eviction (``BPF_MAP_TYPE_LRU_PERCPU_HASH``, kernel 4.10).

    >>> bpf.maps["PER_CPU_RECENT"][7]  # doctest: +SKIP
    [3, 0]
    """

    kinds: ClassVar[tuple[str, ...]] = ("PerCpuLruHashMap",)


# Array indices: the kernel's u32 keys, whatever key codec the array was typed with.
_INDEX_CODEC = bulk_codec(IntCodec(4))


class Array(KeyValueMap, Sequence["Any"]):
    """An array map (``BPF_MAP_TYPE_ARRAY``, kernel 3.19): a fixed-length sequence indexed by ``int``.

    Every index exists (zero-filled at creation). Iterating and :meth:`values` read the whole array in one
    ``BPF_MAP_LOOKUP_BATCH`` where the kernel has it (5.6).

    >>> totals = bpf.maps["TOTALS"].typed(value="Q")  # doctest: +SKIP
    >>> totals[0], len(totals)  # doctest: +SKIP
    (12, 4)
    """

    kinds: ClassVar[tuple[str, ...]] = ("Array",)

    def _position(self, index: int) -> int:
        """``index`` checked, negative ones counted from the end."""
        if not isinstance(index, int) or isinstance(index, bool):
            raise InvalidArgumentTypeError(f"array indices are ints, not {type(index).__name__}")
        given = index
        if index < 0:
            index += self.max_entries
        if not 0 <= index < self.max_entries:
            raise InvalidIndexError(
                f"index {given} out of range for array {self.name!r} of {self.max_entries}: give 0 to "
                f"{self.max_entries - 1} (or -{self.max_entries} to -1 from the end)"
            )
        return index

    def _index(self, index: int) -> bytes:
        return self._position(index).to_bytes(4, BYTE_ORDER)

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.max_entries))]
        value = self._native.lookup(self._index(index))
        if value is None:
            raise IndexError(index)
        return self._values.decode(value)

    def __setitem__(self, index: int, value: object) -> None:
        self._native.update(self._index(index), self._values.encode(value))

    def __len__(self) -> int:
        return self.max_entries

    def __iter__(self) -> Iterator[Any]:
        return iter(self.values())

    def items(self, *, batch: bool | None = None) -> list[tuple[int, Any]]:
        """Every ``(index, value)`` pair (see :meth:`HashMap.items` for ``batch``)."""
        packed = self._raw_batch(batch)
        return list(zip(_INDEX_CODEC.decode_many(packed[1], packed[0], 4), self._decode_values(packed), strict=True))

    def values(self, *, batch: bool | None = None) -> list[Any]:
        """Every value, by index."""
        return self._decode_values(self._raw_batch(batch))

    def update(self, pairs: Mapping[int, Any] | Iterable[tuple[int, Any]], *, batch: bool | None = None) -> int:
        """Set many indices at once (one ``BPF_MAP_UPDATE_BATCH`` where possible); returns how many."""
        items = _pairs(pairs, "pairs")
        positions = self._positions([index for index, _ in items])
        return self._write_many(zip(positions, [value for _, value in items], strict=True), batch)

    def _positions(self, indices: list[Any]) -> list[int]:
        """:meth:`_position` of every index (the same errors, for the first bad index), checked all at once when
        they are ints in range."""
        if indices and all_ints(indices) and min(indices) >= 0 and max(indices) < self.max_entries:
            return indices
        return [self._position(index) for index in indices]

    def _key_codec(self, spec: Any) -> Codec:
        return codec_for(spec if spec is not None else int, self._native.key_size)


@register
class PerCpuArray(Array):
    """An array with one value per possible CPU (``BPF_MAP_TYPE_PERCPU_ARRAY``, kernel 4.6).

    >>> bpf.maps["HITS"][0].sum()  # doctest: +SKIP
    128
    """

    kinds: ClassVar[tuple[str, ...]] = ("PerCpuArray",)


register(Array)
