"""Streams: ring buffers and perf event arrays, read by iteration, batches, callbacks or ``async for``."""

from __future__ import annotations

import gc
import struct
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator

from pyaya import _args
from pyaya.errors import ClosedError, InvalidArgumentError, InvalidArgumentTypeError, MapError, RecordError
from pyaya.maps._codec import Codec, codec_for, record_codec
from pyaya.maps._core import Map, register

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from typing import Any, ClassVar, NoReturn

    from pyaya.loader import Ebpf

__all__ = ["PerfEventArray", "RingBuf", "Stream", "lost_counter_name"]


def _is_struct_format(text: str) -> bool:
    try:
        struct.calcsize(text)
    except struct.error:
        return False
    return True


_GC_PAUSE_MIN = 1024
# How long an asyncio reader waits on the fd before looking again: a perf event array's fd turns readable only
# once a CPU's buffer is a quarter full, so fewer records are picked up by looking (as drain() does every 100 ms).
_ASYNC_POLL_S = 0.1
_NOT_LOOKED_UP: Any = object()


def _native_plan_of(codec: Codec | None) -> Any:
    """The record type's Rust decoder, where it has one (:meth:`pyaya.types.RecordType.native_plan`), else None."""
    native_plan = getattr(codec, "native_plan", None)
    return native_plan() if callable(native_plan) else None


def _label(codec: Codec) -> str:
    label = getattr(codec, "label", None)
    return str(label()) if callable(label) else type(codec).__name__


def lost_counter_name(stream: str) -> str:
    """The name of the map that counts what the kernel side could not write into the stream ``stream``:
    ``NAME_LOST`` (``EVENTS_LOST``), or ``name_lost`` when the stream's name has lower-case letters (``events_lost``
    in a C object). It is an array or a per-CPU array of ``u64``; entry 0 is the count (per-CPU: summed)."""
    return stream + ("_lost" if any(char.islower() for char in stream) else "_LOST")


def _check_wait(max_records: object, timeout: object) -> None:
    """``drain``'s arguments, checked only when they are not plain (a hot path)."""
    if max_records is not None and (type(max_records) is not int or max_records < 1):
        _args.integer(max_records, "max_records", low=1, high=_args.U32)
    if timeout is not None and type(timeout) is not float and type(timeout) is not int:
        raise InvalidArgumentTypeError(f"timeout must be a number of seconds or None, not {type(timeout).__name__}")


class Stream(Map):
    """What ring buffers and perf event arrays share: records as ``bytes`` (or decoded by :meth:`typed`),
    read by iteration, :meth:`drain`, :meth:`records`, :meth:`on` + :meth:`poll`, or ``async for``."""

    def __init__(self, native: Any, ebpf: Ebpf | None = None, record: Any = None) -> None:
        super().__init__(native, ebpf)
        self._record_spec = record
        if isinstance(record, str) and record.isidentifier() and ebpf is not None:
            # A type name from the object's BTF (e.g. "ExecEvent"); other strings are struct formats ("<II").
            if record in ebpf.types:
                record = ebpf.types[record]
            elif not _is_struct_format(record):
                record = record_codec(record, ebpf)  # raises NotFoundError listing the BTF's types
        self._codec: Codec | None = None if record is None else codec_for(record, None)
        self._plan: Any = _native_plan_of(self._codec)
        self._callbacks: list[Callable[[Any], object]] = []
        self._lost_counter: Any = _NOT_LOOKED_UP
        self._lost_counted = 0
        self._backlog: list[Any] = []
        self.undecoded = 0
        """Records that did not decode as the stream's type (each raised a :class:`~pyaya.RecordError`)."""

    def _counted_lost(self) -> int | None:
        """The sum of the companion counter (:func:`lost_counter_name`), or None when the object has none. After
        the object is closed, the last sum read."""
        if self._lost_counter is _NOT_LOOKED_UP:
            self._lost_counter = self._find_lost_counter()
        counter = self._lost_counter
        if counter is None:
            return None
        try:
            raw = counter.lookup(b"\0\0\0\0")
        except ClosedError:
            return self._lost_counted
        if raw is not None:
            # One u64 per CPU for a per-CPU array (8-byte slots), one u64 for an array.
            self._lost_counted = max(self._lost_counted, sum(memoryview(raw).cast("Q")))
        return self._lost_counted

    def _find_lost_counter(self) -> Any:
        ebpf = self._ebpf
        if ebpf is None or ebpf.closed:
            return None
        name = lost_counter_name(self.name)
        if name not in ebpf.maps:
            return None
        native = ebpf.maps[name]._native
        if native.kind not in ("Array", "PerCpuArray") or native.key_size != 4 or native.value_size != 8:
            raise MapError(
                f"map {name} counts the records {self.name} could not take, so it must be an array or a per-CPU "
                f"array of u64 (the count in entry 0), not a {native.kind} of {native.key_size}-byte keys and "
                f"{native.value_size}-byte values: change its type, or rename it if it counts something else"
            )
        return native

    def typed(
        self,
        record: Any = None,
        *,
        partial: bool = False,
        as_bytes: Iterable[str] = (),
        as_text: Iterable[str] = (),
    ) -> Any:
        """The same stream with records decoded as ``record`` (the name of a type in the object's BTF such as
        ``"ExecEvent"``, a ctypes type, a struct format, a Codec, ...).
        Records longer than the type (perf samples carry padding) are cut to its size.

        For a struct of the object's BTF (or, with ``record`` None, the type this stream already decodes as):
        ``partial=True`` decodes records shorter than the type (C programs that send a prefix, such as
        execsnoop's ``offsetof(struct event, args) + args_size`` bytes) instead of raising, the fields they do not
        reach being :data:`pyaya.types.MISSING`; ``as_bytes`` names byte-array fields to decode as their raw bytes
        (a NUL-separated argv stays whole), ``as_text`` those to decode as text always
        (:meth:`pyaya.types.RecordType.variant`)."""
        stream = type(self)(self._native, self._ebpf, record)
        if not partial and not as_bytes and not as_text:
            return stream
        codec = stream._codec if record is not None else self._codec
        variant = getattr(codec, "variant", None)
        if variant is None:
            raise InvalidArgumentError(
                "partial, as_bytes and as_text apply to struct types of the object's BTF (a name such as "
                f'"event", or bpf.types[...]); {"this stream decodes no struct" if codec is None else repr(codec)}'
            )
        stream._codec = variant(partial=partial, as_bytes=as_bytes, as_text=as_text)
        stream._plan = _native_plan_of(stream._codec)
        return stream

    def _decode(self, data: bytes) -> Any:
        return data if self._codec is None else self._codec.decode(data)

    #: Whether the native drain gives ``(cpu, record)`` pairs (a perf event array) rather than records.
    _paired: ClassVar[bool] = False

    def _drain_items(self, max_records: int | None, timeout: float | None) -> list[Any]:
        raise NotImplementedError

    def _take(self, max_records: int | None, timeout: float | None) -> list[Any]:
        """What is left over from a batch with an undecodable record first (without waiting), else fresh items."""
        backlog = self._backlog
        if not backlog:
            return self._drain_items(max_records, timeout)
        count = len(backlog) if max_records is None else min(max_records, len(backlog))
        taken = backlog[:count]
        del backlog[:count]
        return taken

    def drain(self, max_records: int | None = None, timeout: float | None = 0) -> list[Any]:
        """Return the records that are ready (at most ``max_records``).

        When none is ready, wait up to ``timeout`` seconds (``None``: until one arrives) with the GIL released;
        Ctrl-C interrupts the wait. Kernel-side log records that arrive meanwhile go to :mod:`logging`.

        A record that does not decode as the stream's type (shorter than it) raises
        :class:`~pyaya.RecordError` for that record alone, with its bytes: the records before it in the batch are
        returned first, and those after it by the next calls, so no good record is lost.
        """
        _check_wait(max_records, timeout)
        plan = self._plan
        if plan is not None and not self._backlog:
            decoded = self._drain_decoded(plan, max_records, timeout)
            if decoded is not None:
                return decoded
        items = self._take(max_records, timeout)
        records = [record for _, record in items] if self._paired else items
        # One map over the batch, not a method call per record: this is the event loop's hot path.
        codec = self._codec
        if codec is None:
            return records
        paused = len(records) >= _GC_PAUSE_MIN and gc.isenabled()
        if paused:
            # Thousands of new records would trigger collections of everything alive, for nothing: none is garbage.
            gc.disable()
        try:
            return list(map(codec.decode, records))
        except Exception:
            return self._decode_until_bad(items, records, codec)
        finally:
            if paused:
                gc.enable()

    def drain_array(self, max_records: int | None = None, timeout: float | None = 0) -> Any:
        """The records that are ready (as :meth:`drain`) as one numpy structured array, whose dtype comes from the
        stream's BTF type (:meth:`typed`; nested structs, arrays, ``char[N]`` as ``S<N>``, padding kept by the
        fields' offsets and the itemsize). Needs numpy (``pip install 'pyaya[numpy]'``).

        Records longer than the type (perf samples carry padding) are cut to its size. A record shorter than the
        type raises :class:`~pyaya.RecordError` for that record alone, as :meth:`drain` does: the records before
        it are returned first, those after it by the next calls, so none is lost silently.
        """
        import importlib  # noqa: PLC0415 - ~0.4 ms, not loaded at start-up: numpy and pyarrow paths only

        _dtypes = importlib.import_module("pyaya.dtypes")  # after pyaya.types, which imports this package
        np = _dtypes.numpy()
        if self._codec is None:
            raise InvalidArgumentTypeError(
                f"{self.name} has no record type: call .typed('TypeName').drain_array() with the type of its records"
            )
        dtype = _dtypes.dtype_of(self._codec, int(getattr(self._codec, "size", 0)))
        _check_wait(max_records, timeout)
        size = dtype.itemsize
        if not self._backlog and size:
            # The native drain copies each record's first `size` bytes straight from the stream into one buffer.
            data, count, short = self._native.drain_packed(size, max_records, timeout)
            if short is not None:
                self._backlog.append(short)  # raised by the next call (or this one, when it is alone)
                if not count:
                    self._raise_short(self._take(1, 0), size)
            return np.frombuffer(data, dtype=dtype, count=count)
        items = self._take(max_records, timeout)
        records = [record for _, record in items] if self._paired else items
        for index, record in enumerate(records):
            if len(record) < size:
                if index:  # the good records first; the short one is raised by the next call
                    self._backlog[:0] = items[index:]
                    records = records[:index]
                    break
                self._raise_short(items, size)
        # One copy of the batch into one buffer; numpy reads it in place.
        joined = b"".join(records) if all(len(r) == size for r in records) else b"".join(r[:size] for r in records)
        return np.frombuffer(joined, dtype=dtype, count=len(records))

    def _raise_short(self, items: list[Any], size: int) -> NoReturn:
        """Raise the RecordError of ``items[0]``, a record shorter than the stream's type; the rest waits."""
        self._backlog[:0] = items[1:]
        self.undecoded += 1
        record = items[0][1] if self._paired else items[0]
        label = "its type" if self._codec is None else _label(self._codec)
        raise RecordError(
            f"a {len(record)}-byte record of {self.name} is shorter than {label} "
            f"({size} bytes) (the stream goes on with the next record; its bytes are this error's .data)",
            data=bytes(record),
            stream=self.name,
        )

    def drain_arrow(self, max_records: int | None = None, timeout: float | None = 0) -> Any:
        """The records that are ready (as :meth:`drain_array`, whose rules it follows) as one
        ``pyarrow.RecordBatch``: a column per field, char arrays as strings, nested structs as Arrow structs
        (:mod:`pyaya.arrow`). ``polars.from_arrow(batch)`` and ``batch.to_pandas()`` take it as it is. Needs
        pyarrow (``pip install 'pyaya[arrow]'``)."""
        import importlib  # noqa: PLC0415 - ~0.4 ms, not loaded at start-up: numpy and pyarrow paths only

        arrow = importlib.import_module("pyaya.arrow")
        arrow.pyarrow()  # says what to install before any record is taken from the stream
        return arrow.record_batch(self.drain_array(max_records, timeout))

    def _drain_decoded(self, plan: Any, max_records: int | None, timeout: float | None) -> list[Any] | None:
        """The ready records, copied at the type's size into one buffer and decoded there in Rust; None when the
        batch is only a record shorter than the type, which :meth:`drain`'s own path then raises."""
        size = plan.size
        data, count, short = self._native.drain_packed(size, max_records, timeout)
        if short is not None:
            self._backlog.append(short)  # the good records first: the short one is the next call's
        if not count:
            return None if short is not None else []
        try:
            # decode_many holds the garbage collector off while it builds the batch, as drain()'s Python path does.
            return plan.decode_many(data, count)  # type: ignore[no-any-return]
        except Exception:
            # Never a record lost to the fast path: the Python plan decodes the same bytes (and says what fails).
            codec = self._codec
            assert codec is not None
            return [codec.decode(data[index * size : (index + 1) * size]) for index in range(count)]

    def _decode_until_bad(self, items: list[Any], records: list[bytes], codec: Codec) -> list[Any]:
        """The records decoded up to the first that does not decode; what follows waits in the backlog."""
        decoded = []
        for index, record in enumerate(records):
            try:
                decoded.append(codec.decode(record))
            except Exception as error:
                if decoded:  # the good records first; the bad one is raised by the next call
                    self._backlog[:0] = items[index:]
                    return decoded
                self._backlog[:0] = items[index + 1 :]
                self.undecoded += 1
                raise RecordError(
                    f"a {len(record)}-byte record of {self.name} does not decode as {_label(codec)}: {error} "
                    "(the stream goes on with the next record; its bytes are this error's .data)",
                    data=bytes(record),
                    stream=self.name,
                ) from error
        return decoded

    def records(self, timeout: float | None = None, *, until: float | None = None) -> Iterator[Any]:
        """Yield records as they arrive, for ``timeout`` seconds (or until ``time.monotonic()`` reaches ``until``);
        forever when both are ``None``."""
        deadline = until if until is not None else (None if timeout is None else time.monotonic() + timeout)
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            yield from self.drain(None, left)
            if deadline is not None and time.monotonic() >= deadline:
                return

    def __iter__(self) -> Iterator[Any]:
        return self.records()

    def on(self, callback: Callable[[Any], object]) -> Callable[[Any], object]:
        """Call ``callback(record)`` for every record :meth:`poll` reads. Usable as a decorator."""
        self._callbacks.append(_args.callback(callback, "callback"))
        return callback

    def poll(self, timeout: float | None = 0) -> int:
        """Read the ready records (waiting up to ``timeout`` seconds for the first) and hand each to every
        callback registered with :meth:`on`, in order; returns how many records were read."""
        records = self.drain(None, timeout)
        for record in records:
            for callback in self._callbacks:
                callback(record)
        return len(records)

    def fileno(self) -> int:
        """An fd readable when records are ready, for ``selectors``/asyncio. pyaya owns it: never close it."""
        return int(self._native.fileno())

    async def arecords(self, timeout: float | None = None) -> AsyncIterator[Any]:
        """Yield records as they arrive without blocking the event loop (readiness through
        ``loop.add_reader``), for ``timeout`` seconds or forever."""
        import asyncio  # noqa: PLC0415 - ~20 ms with ssl: only async readers pay for it

        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        fd = self.fileno()
        while True:
            batch = self.drain(None, 0)
            for record in batch:
                yield record
            if batch:
                continue
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return
            ready: asyncio.Future[None] = loop.create_future()

            def wake(future: asyncio.Future[None] = ready) -> None:
                if not future.done():
                    future.set_result(None)

            loop.add_reader(fd, wake)
            try:
                await asyncio.wait_for(ready, _ASYNC_POLL_S if left is None else min(left, _ASYNC_POLL_S))
            except asyncio.TimeoutError:
                pass  # look again: records below a perf buffer's watermark do not make the fd readable
            finally:
                loop.remove_reader(fd)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self.arecords()


@register
class RingBuf(Stream):
    """A ring buffer (``BPF_MAP_TYPE_RINGBUF``, kernel 5.8) read as a stream of records.

    Iterating blocks (with the GIL released, Ctrl-C works) and yields each record as ``bytes``;
    :meth:`drain` returns many records per call; :meth:`records` stops after a time limit; ``async for`` works in
    asyncio code.

    The kernel keeps no count of records that did not fit: ``bpf_ringbuf_reserve``/``output`` fail in the program.
    By pyaya's convention the program counts them in a companion map named after the ring (``EVENTS_LOST`` for
    ``EVENTS``, ``events_lost`` for ``events``; see :func:`lost_counter_name`), an array or per-CPU array of
    ``u64`` whose entry 0 it increments on each failure; :attr:`lost` is that count.

    >>> for record in bpf.maps["EVENTS"].typed(ExecEvent).records(timeout=5):  # doctest: +SKIP
    ...     print(record.pid)
    """

    kinds: ClassVar[tuple[str, ...]] = ("RingBuf",)

    @property
    def size(self) -> int:
        """The ring's size in bytes."""
        return int(self._native.size)

    @property
    def max_entries(self) -> int:
        return int(self._native.size)

    @property
    def id(self) -> int:
        raise AttributeError("ring buffer handles do not report their id")

    @property
    def lost(self) -> int | None:
        """Records the program could not reserve or output, from its companion counter (``NAME_LOST``, per-CPU
        values summed); ``None`` when the object has no such map (or the ring was opened from a pin)."""
        return self._counted_lost()

    def _drain_items(self, max_records: int | None, timeout: float | None) -> list[Any]:
        return list(self._native.drain(max_records, timeout))

    def __repr__(self) -> str:
        return f"<pyaya.RingBuf {self.name!r}: {self.size} bytes>"


@register
class PerfEventArray(Stream):
    """A perf event array (``BPF_MAP_TYPE_PERF_EVENT_ARRAY``, kernel 4.3) read as one stream of records.

    pyaya opens one perf buffer per online CPU (8 pages each; :meth:`reopen` changes that) when the object is
    loaded, so the first sample after attaching arrives even if the map is first looked at later, and reads them
    all. A CPU's buffer wakes the reader once it is a quarter full; fewer records are picked up by the reader's
    next look, at most 100 ms later while it waits. Samples the kernel dropped because a buffer was full are
    counted in :attr:`lost`: exactly at any moment on kernels that count them per event (6.0, probed by
    :func:`pyaya.features.perf_lost_count_supported`), else from the lost-sample records the kernel writes
    ahead of that CPU's next sample. Records are ``bytes`` (they may carry up to 7 bytes of padding) unless
    decoded by :meth:`typed`; :meth:`drain_with_cpu` also says which CPU each came from.

    >>> events = bpf.maps["EVENTS"].typed(Event)  # doctest: +SKIP
    >>> for event in events.records(timeout=5):  # doctest: +SKIP
    ...     print(event.pid, events.lost)
    """

    kinds: ClassVar[tuple[str, ...]] = ("PerfEventArray",)

    @property
    def lost(self) -> int:
        """Samples the kernel dropped so far because a CPU's buffer was full, plus the outputs the program saw fail
        otherwise if it counts them in a companion map (``NAME_LOST``, as for :class:`RingBuf`; count there only
        failures other than ``-ENOSPC``, a full buffer, which the perf event counts itself)."""
        return int(self._native.lost) + (self._counted_lost() or 0)

    @property
    def page_count(self) -> int:
        """Pages per CPU buffer."""
        return int(self._native.page_count)

    @property
    def cpus(self) -> list[int]:
        """The CPUs with a buffer."""
        return [int(cpu) for cpu in self._native.cpus]

    def reopen(self, page_count: int) -> None:
        """Replace every CPU's buffer with one of ``page_count`` pages (a power of two). Records still unread in
        the old buffers come first in the next drains; nothing is lost in the swap."""
        self._native.reopen(_args.integer(page_count, "page_count", low=1, high=2**31))

    _paired: ClassVar[bool] = True

    def _drain_items(self, max_records: int | None, timeout: float | None) -> list[Any]:
        return list(self._native.drain(max_records, timeout))

    def drain_with_cpu(self, max_records: int | None = None, timeout: float | None = 0) -> list[tuple[int, Any]]:
        """Like :meth:`drain`, as ``(cpu, record)`` pairs; an undecodable record raises
        :class:`~pyaya.RecordError` as there, after the good records before it."""
        _check_wait(max_records, timeout)
        pairs: list[tuple[int, bytes]] = self._take(max_records, timeout)
        codec = self._codec
        if codec is None:
            return pairs
        try:
            return [(cpu, codec.decode(record)) for cpu, record in pairs]
        except Exception:
            decoded = self._decode_until_bad(pairs, [record for _, record in pairs], codec)
            return [(cpu, record) for (cpu, _), record in zip(pairs, decoded, strict=False)]

    def __repr__(self) -> str:
        if self.closed:  # its buffers (and so its CPUs) are gone
            return f"<pyaya.PerfEventArray {self.name!r}: closed>"
        return f"<pyaya.PerfEventArray {self.name!r}: {len(self.cpus)} CPUs x {self.page_count} pages>"
