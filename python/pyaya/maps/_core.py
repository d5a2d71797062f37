"""The map base class, the registry of typed classes, per-CPU values, and the key/value containers (hash maps,
arrays) with batch operations."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias, TypeVar, overload

from pyaya import _native
from pyaya.errors import MapError, UnsupportedError
from pyaya.maps._codec import BYTE_ORDER, Codec, codec_for

if TYPE_CHECKING:
    from pyaya.loader import Ebpf

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
MapT = TypeVar("MapT", bound="type[Map]")

_CLASSES: dict[str, type[Map]] = {}

# The native class under another name: inside classes, ``_native`` is the attribute holding the handle.
NativeKeyValueMap: TypeAlias = _native.Map


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
        return wrap_map(_native.Map.from_pin(Path(path)), None)

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
        """Where this handle pinned the map (or the pin it was opened from), or ``None``."""
        path = self._native.pinned_path
        return None if path is None else Path(path)

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin the map at ``path`` in bpffs: it outlives this process until :meth:`unpin` or ``os.unlink(path)``.
        Another process (or object) opens it with :meth:`Map.from_pin`."""
        self._native.pin(Path(path))

    def unpin(self) -> None:
        """Remove the pin this handle made; the map lives on while handles on it remain."""
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


class PerCpuValues(list[Any]):
    """One value per possible CPU (index = CPU number), as per-CPU maps return them."""

    def sum(self) -> Any:
        """The values added up (numbers only)."""
        total: Any = 0
        for value in self:
            total = total + value
        return total


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

    def _key_codec(self, spec: Any) -> Codec:
        return codec_for(spec, self._native.key_size)

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
        if batch is not False:
            try:
                return fast()
            except UnsupportedError:
                if batch:
                    raise
        return slow()

    def _raw_keys(self) -> list[bytes]:
        return self._native.keys()

    def _raw_items(self, batch: bool | None = None) -> list[tuple[bytes, bytes]]:
        return self._batched(batch, self._native.lookup_batch, self._native.items)  # type: ignore[no-any-return]

    def _write_many(self, pairs: Iterable[tuple[Any, Any]], batch: bool | None, flags: int = 0) -> int:
        encoded = [(self._keys.encode(k), self._values.encode(v)) for k, v in pairs]
        if not encoded:
            return 0

        def fast() -> int:
            keys = b"".join(k for k, _ in encoded)
            values = b"".join(v for _, v in encoded)
            return self._native.update_batch(keys, values, flags)

        def slow() -> int:
            for key, value in encoded:
                self._native.update(key, value, flags)
            return len(encoded)

        return int(self._batched(batch, fast, slow))


class HashMap(KeyValueMap, MutableMapping[Any, Any]):
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
        return (self._keys.decode(key) for key in self._raw_keys())

    def __len__(self) -> int:
        return len(self._raw_keys())

    def items(self, *, batch: bool | None = None) -> list[tuple[Any, Any]]:  # type: ignore[override]
        """Every ``(key, value)`` pair. ``batch``: None picks batch commands where the kernel has them, True
        insists (``UnsupportedError`` otherwise), False reads key by key."""
        return [(self._keys.decode(k), self._values.decode(v)) for k, v in self._raw_items(batch)]

    def values(self, *, batch: bool | None = None) -> list[Any]:  # type: ignore[override]
        """Every value (see :meth:`items` for ``batch``)."""
        return [self._values.decode(v) for _, v in self._raw_items(batch)]

    def keys(self) -> list[Any]:  # type: ignore[override]
        """Every key, in the kernel's order."""
        return [self._keys.decode(k) for k in self._raw_keys()]

    def update_many(self, pairs: Mapping[Any, Any] | Iterable[tuple[Any, Any]], *, batch: bool | None = None) -> int:
        """Write many entries (one ``BPF_MAP_UPDATE_BATCH`` where possible); returns how many were written."""
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        return self._write_many(items, batch)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Like ``dict.update``, in one batch command where the kernel has it."""
        pairs = list(other.items() if isinstance(other, Mapping) else other)
        if kwargs:
            raise TypeError("map keys are not strings: pass a mapping or (key, value) pairs")
        self._write_many(pairs, None)

    def pop_all(self, *, batch: bool | None = None) -> dict[Any, Any]:
        """Read and remove every entry (``BPF_MAP_LOOKUP_AND_DELETE_BATCH`` where possible): a drain of counters
        without losing increments that land between the read and the delete of one key."""

        def slow() -> list[tuple[bytes, bytes]]:
            taken = []
            for key in self._raw_keys():
                value = self._native.lookup(key)
                if value is not None and self._native.delete(key):
                    taken.append((key, value))
            return taken

        raw = self._batched(batch, self._native.lookup_and_delete_batch, slow)
        return {self._keys.decode(k): self._values.decode(v) for k, v in raw}

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


class Array(KeyValueMap, Sequence[Any]):
    """An array map (``BPF_MAP_TYPE_ARRAY``, kernel 3.19): a fixed-length sequence indexed by ``int``.

    Every index exists (zero-filled at creation). Iterating and :meth:`values` read the whole array in one
    ``BPF_MAP_LOOKUP_BATCH`` where the kernel has it (5.6).

    >>> totals = bpf.maps["TOTALS"].typed(value="Q")  # doctest: +SKIP
    >>> totals[0], len(totals)  # doctest: +SKIP
    (12, 4)
    """

    kinds: ClassVar[tuple[str, ...]] = ("Array",)

    def _index(self, index: int) -> bytes:
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"array indices are ints, not {type(index).__name__}")
        if index < 0:
            index += self.max_entries
        if not 0 <= index < self.max_entries:
            raise IndexError(f"index {index} out of range for array {self.name!r} of {self.max_entries}")
        return index.to_bytes(4, BYTE_ORDER)

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
        return [(int.from_bytes(k, BYTE_ORDER), self._values.decode(v)) for k, v in self._raw_items(batch)]

    def values(self, *, batch: bool | None = None) -> list[Any]:
        """Every value, by index."""
        return [value for _, value in self.items(batch=batch)]

    def update(self, pairs: Mapping[int, Any] | Iterable[tuple[int, Any]], *, batch: bool | None = None) -> int:
        """Set many indices at once (one ``BPF_MAP_UPDATE_BATCH`` where possible); returns how many."""
        items = list(pairs.items() if isinstance(pairs, Mapping) else pairs)
        for index, _ in items:
            self._index(index)
        encoded = [(index, value) for index, value in items]
        return self._write_many(encoded, batch)

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
