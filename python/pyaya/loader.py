"""The Python face of the loader: objects, programs and maps with the shapes Python users expect.

``pyaya._native`` (Rust over aya) owns every fd and does every syscall; this module gives it mappings, context
managers, iteration and typed keys and values.
"""

from __future__ import annotations

import logging
import os
import platform
import resource
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Generic, TypeAlias, TypeVar

from pyaya import _native
from pyaya.errors import MapError, ObjectError

__all__ = [
    "Array",
    "Ebpf",
    "HashMap",
    "Link",
    "Map",
    "Program",
    "RawTracePoint",
    "RingBuf",
    "TracePoint",
    "loaded_programs",
]

Buffer: TypeAlias = bytes | bytearray | memoryview
KeyT = TypeVar("KeyT")
ValueT = TypeVar("ValueT")

_BYTE_ORDER = sys.byteorder  # "little" or "big": the kernel's, hence every map's, byte order
_ebpf_log = logging.getLogger("pyaya.ebpf")


def _forward_log(level: int, target: str, message: str) -> None:
    """Hands one aya-log record from the kernel to Python's logging, under ``pyaya.ebpf.<target>``."""
    logger = _ebpf_log.getChild(target) if target else _ebpf_log
    logger.log(level, message)


def _kernel_needs_memlock() -> bool:
    """Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones use the memory cgroup."""
    release = platform.release().split("-")[0].split(".")
    try:
        major, minor = int(release[0]), int(release[1])
    except (IndexError, ValueError):
        return True
    return (major, minor) < (5, 11)


def _raise_memlock_limit() -> None:
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError) as error:
        warnings.warn(
            f"could not raise RLIMIT_MEMLOCK ({error}); this kernel ({platform.release()}) may fail to create "
            "large maps: run as root with CAP_SYS_RESOURCE or raise the limit with `ulimit -l unlimited`",
            RuntimeWarning,
            stacklevel=3,
        )


def _as_bytes(value: object) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    try:
        return bytes(memoryview(value))  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"expected bytes or a buffer (e.g. a ctypes value), got {type(value).__name__}") from None


class Ebpf:
    """A loaded BPF object: its maps exist in the kernel, its programs are ready to load and attach.

    Use it as a context manager: leaving the block detaches every link, unloads every program and closes every map.

    >>> with Ebpf.load_file("target/bpfel-unknown-none/release/execwatch") as bpf:  # doctest: +SKIP
    ...     bpf.programs["execwatch"].load()
    """

    def __init__(self, native: _native.Ebpf, path: Path | None = None) -> None:
        self._native = native
        self.path = path
        native.set_log_handler(_forward_log)
        self.programs: Programs = Programs(self)
        self.maps: Maps = Maps(self)

    @classmethod
    def load(
        cls,
        data: Buffer,
        *,
        globals: Mapping[str, object] | None = None,
        max_entries: Mapping[str, int] | None = None,
    ) -> Ebpf:
        """Load an object from its bytes.

        ``globals`` overrides read-only globals (``#[no_mangle] static`` items) by name with bytes or ctypes
        values of the global's size; ``max_entries`` resizes maps by name before they are created.
        """
        if _kernel_needs_memlock():
            _raise_memlock_limit()
        native = _native.Ebpf.load(
            bytes(data),
            globals={name: _as_bytes(value) for name, value in (globals or {}).items()},
            max_entries=dict(max_entries or {}),
        )
        return cls(native)

    @classmethod
    def load_file(
        cls,
        path: str | os.PathLike[str],
        *,
        globals: Mapping[str, object] | None = None,
        max_entries: Mapping[str, int] | None = None,
    ) -> Ebpf:
        """Load an object from a file (``pyaya build`` prints the paths of the objects it builds)."""
        file = Path(path)
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            raise ObjectError(f"no object at {file}: build it first with `pyaya build`") from None
        except IsADirectoryError:
            raise ObjectError(f"{file} is a folder, not a BPF object file") from None
        ebpf = cls.load(data, globals=globals, max_entries=max_entries)
        ebpf.path = file
        return ebpf

    def flush_logs(self) -> int:
        """Deliver pending kernel-side log records to :mod:`logging`; returns how many there were."""
        return self._native.flush_logs()

    @property
    def closed(self) -> bool:
        return self._native.closed

    def close(self) -> None:
        """Detach every link, unload every program and close every map. Safe to call twice."""
        if not self._native.closed:
            try:
                self._native.flush_logs()
            finally:
                self._native.close()

    def __enter__(self) -> Ebpf:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self.programs)} programs, {len(self.maps)} maps"
        where = f" from {self.path}" if self.path else ""
        return f"<pyaya.Ebpf{where}: {state}>"


class Programs(Mapping[str, "Program"]):
    """The object's programs by name, each as its typed class (:class:`TracePoint`, ...)."""

    def __init__(self, ebpf: Ebpf) -> None:
        self._ebpf = ebpf
        self._cache: dict[str, Program] = {}

    def __getitem__(self, name: str) -> Program:
        if name not in self._cache:
            native = self._ebpf._native.program(name)
            cls = _PROGRAM_CLASSES.get(native.kind, Program)
            self._cache[name] = cls(native)
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._ebpf._native.programs())

    def __len__(self) -> int:
        return len(self._ebpf._native.programs())

    def __contains__(self, name: object) -> bool:
        return any(name == existing for existing, _ in self._ebpf._native.programs())


class Maps(Mapping[str, "Map"]):
    """The object's maps by name, each as its typed class (:class:`HashMap`, :class:`RingBuf`, ...)."""

    def __init__(self, ebpf: Ebpf) -> None:
        self._ebpf = ebpf
        self._cache: dict[str, Map] = {}

    def __getitem__(self, name: str) -> Map:
        if name not in self._cache:
            native = self._ebpf._native.map(name)
            if isinstance(native, _native.RingBuf):
                self._cache[name] = RingBuf(native, self._ebpf)
            else:
                cls = _MAP_CLASSES.get(native.kind, Map)
                self._cache[name] = cls(native)
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._ebpf._native.maps())

    def __len__(self) -> int:
        return len(self._ebpf._native.maps())

    def __contains__(self, name: object) -> bool:
        return any(name == existing for existing, _ in self._ebpf._native.maps())


class Link:
    """One attachment of a program; a context manager that detaches on exit.

    Links are fd-based: if the process dies, the kernel detaches them.
    """

    def __init__(self, native: _native.Link) -> None:
        self._native = native

    @property
    def program(self) -> str:
        return self._native.program

    @property
    def attached(self) -> bool:
        return self._native.attached

    def detach(self) -> None:
        """Detach the program from this attach point. Safe to call twice."""
        self._native.detach()

    def __enter__(self) -> Link:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.detach()

    def __repr__(self) -> str:
        return f"<pyaya.Link of {self.program!r}: {'attached' if self.attached else 'detached'}>"


class Program:
    """A program of a loaded object. Load it with :meth:`load`, then attach it with its type's ``attach``."""

    kind: ClassVar[str] = "Program"

    def __init__(self, native: _native.Program) -> None:
        self._native = native

    @property
    def name(self) -> str:
        return self._native.name

    @property
    def type(self) -> str:
        """The program type's name, e.g. ``"TracePoint"``."""
        return self._native.kind

    @property
    def loaded(self) -> bool:
        return self._native.loaded

    def load(self) -> None:
        """Verify and load the program into the kernel.

        Raises :class:`~pyaya.VerifierError` (with ``.log``) when the verifier rejects it and
        :class:`~pyaya.PermissionDeniedError` without the needed privilege.
        """
        self._native.load()

    def unload(self) -> None:
        """Unload the program, detaching all its links."""
        self._native.unload()

    def info(self) -> dict[str, int | str]:
        """The kernel's view: ``id``, ``tag``, ``type``, ``name``, ``run_count``, ``run_time_ns``."""
        return self._native.info()

    def _ensure_loaded(self) -> None:
        if not self._native.loaded:
            self._native.load()

    def __repr__(self) -> str:
        return f"<pyaya.{self.type} {self.name!r}{' loaded' if self.loaded else ''}>"


class TracePoint(Program):
    """A program attached to a kernel tracepoint (``/sys/kernel/tracing/events/<category>/<name>``).

    Kernel 4.7 or later. Needs tracefs mounted.

    >>> prog = bpf.programs["execwatch"]  # doctest: +SKIP
    >>> link = prog.attach("syscalls", "sys_enter_execve")  # doctest: +SKIP
    """

    kind = "TracePoint"

    def attach(self, category: str, name: str) -> Link:
        """Attach to tracepoint ``category/name``, loading the program first if needed."""
        self._ensure_loaded()
        return Link(self._native.attach_tracepoint(category, name))


class RawTracePoint(Program):
    """A program attached to a raw tracepoint (its arguments are the tracepoint's raw arguments).

    Kernel 4.17 or later.

    >>> bpf.programs["sched"].attach("sched_switch")  # doctest: +SKIP
    """

    kind = "RawTracePoint"

    def attach(self, name: str) -> Link:
        """Attach to the raw tracepoint ``name``, loading the program first if needed."""
        self._ensure_loaded()
        return Link(self._native.attach_raw_tracepoint(name))


_PROGRAM_CLASSES: dict[str, type[Program]] = {"TracePoint": TracePoint, "RawTracePoint": RawTracePoint}


class Codec(Generic[KeyT]):
    """Converts between Python values and a map's fixed-size key or value bytes."""

    def __init__(self, size: int, kind: type[Any] | None) -> None:
        self.size = size
        if kind is None:
            kind = int if size in (1, 2, 4, 8) else bytes
        self.kind = kind

    def encode(self, value: object) -> bytes:
        if isinstance(value, bool) or not isinstance(value, int):
            data = _as_bytes(value)
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


def loaded_programs() -> list[tuple[int, str, int]]:
    """``(id, name, type number)`` of every BPF program loaded in the kernel, by anyone. Needs privilege."""
    return _native.loaded_programs()
