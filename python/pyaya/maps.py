"""Map types as Python containers: hash maps as ``MutableMapping``, arrays as sequences, ring buffers as streams."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from pyaya import _native
from pyaya.errors import MapError

if TYPE_CHECKING:
    from pyaya.loader import Ebpf

__all__ = ["Array", "Buffer", "Codec", "HashMap", "Map", "RingBuf", "as_bytes", "wrap_map"]

Buffer: TypeAlias = bytes | bytearray | memoryview
KeyT = TypeVar("KeyT")

_BYTE_ORDER = sys.byteorder  # "little" or "big": the kernel's, hence every map's, byte order


def as_bytes(value: object) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    try:
        return bytes(memoryview(value))  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"expected bytes or a buffer (e.g. a ctypes value), got {type(value).__name__}") from None


class Codec(Generic[KeyT]):
    """Converts between Python values and a map's fixed-size key or value bytes."""

    def __init__(self, size: int, kind: type[Any] | None) -> None:
        self.size = size
        if kind is None:
            kind = int if size in (1, 2, 4, 8) else bytes
        self.kind = kind

    def encode(self, value: object) -> bytes:
        if isinstance(value, bool) or not isinstance(value, int):
            data = as_bytes(value)
        else:
            try:
                data = value.to_bytes(self.size, _BYTE_ORDER, signed=value < 0)
            except OverflowError:
                raise MapError(f"{value} does not fit in {self.size} bytes") from None
        if len(data) != self.size:
            raise MapError(f"expected {self.size} bytes, got {len(data)}")
        return data

    def decode(self, data: bytes) -> Any:
        if self.kind is int:
            return int.from_bytes(data, _BYTE_ORDER)
        if self.kind is bytes:
            return data
        from_buffer_copy: Callable[[bytes], Any] | None = getattr(self.kind, "from_buffer_copy", None)
        if from_buffer_copy is not None:
            return from_buffer_copy(data)
        return self.kind(data)


class Map:
    """A map of the object. Subclasses give each map type the behaviour of a Python container."""

    def __init__(self, native: _native.Map) -> None:
        self._native = native

    @property
    def name(self) -> str:
        return self._native.name

    @property
    def type(self) -> str:
        """The map type's name, e.g. ``"HashMap"``."""
        return self._native.kind

    @property
    def key_size(self) -> int:
        return self._native.key_size

    @property
    def value_size(self) -> int:
        return self._native.value_size

    @property
    def max_entries(self) -> int:
        return self._native.max_entries

    @property
    def closed(self) -> bool:
        return self._native.closed

    def close(self) -> None:
        self._native.close()

    def __repr__(self) -> str:
        return (
            f"<pyaya.{self.type} {self.name!r}: key {self.key_size} B, value {self.value_size} B, "
            f"max {self.max_entries}>"
        )


class HashMap(Map, MutableMapping[Any, Any]):
    """A hash map (``BPF_MAP_TYPE_HASH``, kernel 3.19; ``LRU_HASH``, kernel 4.10) as a ``MutableMapping``.

    Keys and values of 1, 2, 4 or 8 bytes are ints (native byte order), others bytes; pass ``key_type`` /
    ``value_type`` (``int``, ``bytes`` or a ``ctypes.Structure`` subclass) through :meth:`typed` to choose.

    >>> counts = bpf.maps["EXEC_COUNTS"]  # doctest: +SKIP
    >>> dict(counts)  # doctest: +SKIP
    {0: 12, 1000: 3}
    """

    def __init__(self, native: _native.Map, key_type: type[Any] | None = None, value_type: type[Any] | None = None):
        super().__init__(native)
        self._keys = Codec[Any](native.key_size, key_type)
        self._values = Codec[Any](native.value_size, value_type)

    def typed(self, key_type: type[Any] | None = None, value_type: type[Any] | None = None) -> HashMap:
        """The same map with keys and values decoded as ``key_type`` and ``value_type``."""
        return type(self)(self._native, key_type, value_type)

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

    def __iter__(self) -> Iterator[Any]:
        # _native.Map is not a dict: keys() is the native call that walks the map, and the only way to iterate it.
        return (self._keys.decode(key) for key in self._native.keys())  # noqa: SIM118

    def __len__(self) -> int:
        return len(self._native.keys())

    def items(self) -> list[tuple[Any, Any]]:  # type: ignore[override]
        """Every ``(key, value)`` pair, read in one pass."""
        return [(self._keys.decode(k), self._values.decode(v)) for k, v in self._native.items()]


class Array(Map):
    """An array map (``BPF_MAP_TYPE_ARRAY``, kernel 3.19) as a fixed-length sequence indexed by ``int``."""

    def __init__(self, native: _native.Map, value_type: type[Any] | None = None) -> None:
        super().__init__(native)
        self._values = Codec[Any](native.value_size, value_type)

    def _key(self, index: int) -> bytes:
        if index < 0:
            index += self.max_entries
        if not 0 <= index < self.max_entries:
            raise IndexError(f"index {index} out of range for array {self.name!r} of {self.max_entries}")
        return index.to_bytes(4, _BYTE_ORDER)

    def __getitem__(self, index: int) -> Any:
        value = self._native.lookup(self._key(index))
        if value is None:
            raise IndexError(index)
        return self._values.decode(value)

    def __setitem__(self, index: int, value: object) -> None:
        self._native.update(self._key(index), self._values.encode(value))

    def __len__(self) -> int:
        return self.max_entries

    def __iter__(self) -> Iterator[Any]:
        return (self[index] for index in range(self.max_entries))


_MAP_CLASSES: dict[str, type[Map]] = {"HashMap": HashMap, "LruHashMap": HashMap, "Array": Array}


class RingBuf(Map):
    """A ring buffer (``BPF_MAP_TYPE_RINGBUF``, kernel 5.8) read as a stream of records.

    Iterating blocks (with the GIL released, Ctrl-C works) and yields each record as ``bytes``;
    :meth:`drain` returns many records per call; :meth:`records` stops after a time limit.

    >>> for record in bpf.maps["EVENTS"].records(timeout=5):  # doctest: +SKIP
    ...     print(ExecEvent.from_buffer_copy(record).pid)
    """

    def __init__(self, native: _native.RingBuf, ebpf: Ebpf) -> None:
        self._ring = native
        self._ebpf = ebpf

    @property
    def name(self) -> str:
        return self._ring.name

    @property
    def type(self) -> str:
        return "RingBuf"

    @property
    def size(self) -> int:
        """The ring's size in bytes."""
        return self._ring.size

    @property
    def max_entries(self) -> int:
        return self._ring.size

    @property
    def key_size(self) -> int:
        return 0

    @property
    def value_size(self) -> int:
        return 0

    @property
    def closed(self) -> bool:
        return self._ring.closed

    def close(self) -> None:
        self._ring.close()

    def drain(self, max_records: int | None = None, timeout: float | None = 0) -> list[bytes]:
        """Return the records that are ready (at most ``max_records``).

        When none is ready, wait up to ``timeout`` seconds (``None``: until one arrives). Kernel-side log records
        that arrive meanwhile are delivered to :mod:`logging`.
        """
        return self._ring.drain(max_records, timeout)

    def records(self, timeout: float | None = None, *, until: float | None = None) -> Iterator[bytes]:
        """Yield records as they arrive, for ``timeout`` seconds (or until ``time.monotonic()`` reaches ``until``);
        forever when both are ``None``."""
        deadline = until if until is not None else (None if timeout is None else time.monotonic() + timeout)
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            batch = self._ring.drain(None, left)
            yield from batch
            if deadline is not None and time.monotonic() >= deadline:
                return

    def fileno(self) -> int:
        """The ring's fd, for ``selectors``/asyncio readiness. pyaya owns it: never close it."""
        return self._ring.fileno()

    def __iter__(self) -> Iterator[bytes]:
        return self.records()

    def __repr__(self) -> str:
        return f"<pyaya.RingBuf {self.name!r}: {self.size} bytes>"


def wrap_map(native: _native.Map | _native.RingBuf, ebpf: Ebpf) -> Map:
    """The typed Python class for a native map."""
    if isinstance(native, _native.RingBuf):
        return RingBuf(native, ebpf)
    return _MAP_CLASSES.get(native.kind, Map)(native)
