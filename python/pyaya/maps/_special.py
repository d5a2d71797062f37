"""Map types that are not plain containers of values: program, socket, device, CPU and cgroup maps, queues and
stacks, stack traces, LPM tries, bloom filters, storage maps and maps of maps."""

from __future__ import annotations

import collections
import errno
import os
import sys
from collections.abc import Iterator, Mapping, MutableMapping

from pyaya import _args, _native
from pyaya.errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidIndexError,
    MapError,
    NotFoundError,
    UnsupportedError,
)
from pyaya.maps._codec import BYTE_ORDER, Codec, IntCodec, codec_for
from pyaya.maps._core import HashMap, KeyValueMap, Map, PerCpuValues, register, wrap_map

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar, NamedTuple

    from pyaya.programs import Program
    from pyaya.symbols import Symbol
else:

    class _NamedTupleType(type):
        """What ``class X(typing.NamedTuple)`` makes, without importing typing (start-up time): the
        :func:`collections.namedtuple` of the fields annotated in the class body (those given a value are the
        defaults), with the body's docstring and other attributes, as typing builds it. Its annotations stay the
        strings ``from __future__ import annotations`` makes (typing wraps them in ``ForwardRef``s)."""

        def __new__(mcs, name, bases, namespace):
            if not bases:  # NamedTuple itself
                return super().__new__(mcs, name, bases, namespace)
            annotations = namespace.get("__annotations__", {})
            defaults = [field for field in annotations if field in namespace]
            if defaults != list(annotations)[len(annotations) - len(defaults) :]:
                raise TypeError(f"{name}: the fields with defaults ({', '.join(defaults)}) must come last")
            made = collections.namedtuple(
                name, annotations, defaults=[namespace[field] for field in defaults], module=namespace["__module__"]
            )
            made.__annotations__ = made.__new__.__annotations__ = dict(annotations)
            for key, value in namespace.items():
                if key not in ("__module__", "__annotations__") and key not in annotations:
                    setattr(made, key, value)
            return made

    class NamedTuple(metaclass=_NamedTupleType):
        """The base of a NamedTuple class at run time (see _NamedTupleType)."""


__all__ = [
    "ArrayOfMaps",
    "BloomFilter",
    "CgroupArray",
    "CgroupStorage",
    "CgroupStorageKey",
    "CgrpStorage",
    "CpuMap",
    "CpuMapValue",
    "DevMap",
    "DevMapHash",
    "DevMapValue",
    "HashOfMaps",
    "InodeStorage",
    "LpmKey",
    "LpmTrie",
    "PerCpuCgroupStorage",
    "ProgramArray",
    "Queue",
    "ReusePortSockArray",
    "SkStorage",
    "SockHash",
    "SockMap",
    "Stack",
    "StackTraceMap",
    "XskMap",
]


def _listed_keys(native: _native.Map) -> list[bytes]:
    # _native.Map is not a dict: keys() is the native call that walks the map with BPF_MAP_GET_NEXT_KEY.
    return native.keys()


def _index(map: KeyValueMap, index: int) -> bytes:
    if not isinstance(index, int) or isinstance(index, bool):
        raise InvalidArgumentTypeError(f"indices of {map.type} {map.name!r} are ints, not {type(index).__name__}")
    if not 0 <= index < map.max_entries:
        raise InvalidIndexError(
            f"index {index} out of range for {map.type} {map.name!r} of {map.max_entries}: give 0 to "
            f"{map.max_entries - 1}"
        )
    return index.to_bytes(map.key_size, BYTE_ORDER)


def _fileno(obj: object, what: str) -> int:
    return _args.fileno(obj, what)


class _FdSlots(KeyValueMap, MutableMapping["Any", "Any"]):
    """Keys whose values are kernel objects set from Python objects (programs, sockets, cgroups): the kernel only
    lets user space read some of them back."""

    _int_keys: ClassVar[bool] = True

    def _key(self, key: Any) -> bytes:
        if self._int_keys and self._key_spec is None:
            return _index(self, key)
        return self._keys.encode(key)

    def __delitem__(self, key: Any) -> None:
        try:
            found = self._native.delete(self._key(key))
        except MapError as error:
            # Socket maps answer EINVAL, not ENOENT, for an empty slot.
            if error.errno != errno.EINVAL or not isinstance(self, _SocketSlots):
                raise
            found = False
        if not found:
            raise KeyError(key)

    def _present_keys(self) -> list[bytes]:
        # Array-like maps list every index from get_next_key; keep those that hold something.
        present = []
        for key in _listed_keys(self._native):
            try:
                if self._native.lookup(key) is not None:
                    present.append(key)
            except MapError as error:
                raise UnsupportedError(
                    f"the kernel cannot list the entries of {self.type} {self.name!r} from user space ({error})"
                ) from None
        return present

    def __iter__(self) -> Iterator[Any]:
        return (self._keys.decode(key) for key in self._present_keys())

    def __len__(self) -> int:
        return len(self._present_keys())


@register
class ProgramArray(_FdSlots):
    """Tail-call targets by index (``BPF_MAP_TYPE_PROG_ARRAY``, kernel 4.2). Set a loaded pyaya program; reading
    an index gives the stored program's kernel id.

    >>> jumps = bpf.maps["JUMP_TABLE"]  # doctest: +SKIP
    >>> jumps[0] = bpf.programs["handler"]  # loads it first if needed  # doctest: +SKIP
    """

    kinds: ClassVar[tuple[str, ...]] = ("ProgramArray",)

    def __getitem__(self, index: Any) -> int:
        value = self._native.lookup(self._key(index))
        if value is None:
            raise KeyError(index)
        return int.from_bytes(value[:4], BYTE_ORDER)

    def __setitem__(self, index: Any, program: Program) -> None:
        native = getattr(program, "_native", None)
        if not isinstance(native, _native.Program):
            raise InvalidArgumentTypeError(f"a ProgramArray holds pyaya programs, not {type(program).__name__}")
        if not native.loaded:
            native.load()
        self._native.update_program(self._key(index), native)


class _SocketSlots(_FdSlots):
    def __setitem__(self, key: Any, sock: Any) -> None:
        fd = _fileno(sock, "a socket")
        self._native.update(self._key(key), fd.to_bytes(self._native.value_size, BYTE_ORDER))

    def _lookup(self, key: bytes) -> bytes | None:
        """The socket's cookie, or None when the key is absent."""
        if self._native.value_size != 8:
            # The kernel answers ENOSPC for every key of such a map, present or not.
            raise UnsupportedError(
                f"{self.type} {self.name!r} has {self._native.value_size}-byte values: the kernel only describes "
                "its sockets (by cookie) to user space for maps declared with 8-byte (u64) values"
            )
        return self._native.lookup(key)

    def __getitem__(self, key: Any) -> int:
        """The socket's cookie (maps with 8-byte values only)."""
        value = self._lookup(self._key(key))
        if value is None:
            raise KeyError(key)
        return int.from_bytes(value, BYTE_ORDER)

    def __contains__(self, key: object) -> bool:
        try:
            encoded = self._key(key)
        except (TypeError, IndexError, MapError):
            return False
        if not self._int_keys:
            return encoded in _listed_keys(self._native)
        return self._lookup(encoded) is not None

    def _present_keys(self) -> list[bytes]:
        if not self._int_keys:
            return _listed_keys(self._native)  # hash-like: the kernel lists only present keys
        return [key for key in _listed_keys(self._native) if self._lookup(key) is not None]


@register
class SockMap(_SocketSlots):
    """Sockets by index for sk_msg/sk_skb redirects (``BPF_MAP_TYPE_SOCKMAP``, kernel 4.14). Set a Python socket
    object (TCP established or listening, or UDP from 5.7).

    >>> bpf.maps["SOCKS"][0] = conn  # doctest: +SKIP
    """

    kinds: ClassVar[tuple[str, ...]] = ("SockMap",)


@register
class ReusePortSockArray(_SocketSlots):
    """The sockets of a ``SO_REUSEPORT`` group by index, for an :class:`pyaya.SkReuseport` program's
    ``select_reuseport`` (``BPF_MAP_TYPE_REUSEPORT_SOCKARRAY``, kernel 4.19). Set a bound socket of the group
    (UDP, or TCP listening); reading back gives its cookie (maps with 8-byte values only).

    >>> bpf.maps["SERVERS"][0] = first  # doctest: +SKIP
    """

    kinds: ClassVar[tuple[str, ...]] = ("ReusePortSockArray",)


@register
class SockHash(_SocketSlots):
    """Sockets by any key (``BPF_MAP_TYPE_SOCKHASH``, kernel 4.18). Set a Python socket object.

    >>> bpf.maps["BY_PORT"].typed(key="H")[8080] = conn  # doctest: +SKIP
    """

    kinds: ClassVar[tuple[str, ...]] = ("SockHash",)
    _int_keys: ClassVar[bool] = False


@register
class XskMap(_SocketSlots):
    """AF_XDP sockets by receive queue (``BPF_MAP_TYPE_XSKMAP``, kernel 4.18). Set a bound AF_XDP socket; the
    kernel does not let user space read entries back.

    >>> bpf.maps["XSKS"][0] = xsk  # doctest: +SKIP
    """

    kinds: ClassVar[tuple[str, ...]] = ("XskMap",)

    def __getitem__(self, key: Any) -> int:
        raise UnsupportedError("the kernel does not return XSKMAP entries to user space")

    def __contains__(self, key: object) -> bool:
        raise UnsupportedError("the kernel does not return XSKMAP entries to user space")

    def _present_keys(self) -> list[bytes]:
        raise UnsupportedError("the kernel does not list XSKMAP entries to user space")


def _pair(value: tuple[Any, ...], shape: str) -> tuple[Any, Any]:
    if len(value) != 2:
        raise InvalidArgumentError(f"an entry with a program is a pair {shape}, not {len(value)} values")
    return value[0], value[1]


def _update_entry(native: _native.Map, key: bytes, head: bytes, program: Program | None, kind: str) -> None:
    """A device or CPU map entry: ``head`` (ifindex or queue size), then the fd of ``program`` or nothing."""
    if program is None:
        # A program fd of 0 (and the rest zero) means "no program" in every layout, old (4 bytes) or new (8).
        native.update(key, head + bytes(native.value_size - len(head)))
        return
    program_native = getattr(program, "_native", None)
    if not isinstance(program_native, _native.Program):
        raise InvalidArgumentTypeError(f"program must be a pyaya program, not {type(program).__name__}")
    if program_native.kind != "Xdp":
        raise InvalidArgumentError(
            f"program {program_native.name!r} is a {program_native.kind} program: a {kind} entry runs an XDP program "
            f'declared #[xdp(map = "{kind}")]'
        )
    if not program_native.loaded:
        program.load()
    native.update_with_program(key, head, program_native)


class DevMapValue(NamedTuple):
    """A device map entry: the interface index and the id of the XDP program run on redirect (0: none)."""

    ifindex: int
    program_id: int = 0


def _interface_index(interface: int | str) -> int:
    if isinstance(_args.interface(interface), int):
        return int(interface)
    import socket  # noqa: PLC0415 - ~7 ms: for interface names only

    try:
        return socket.if_nametoindex(str(interface))
    except OSError:
        raise NotFoundError(f"no network interface named {interface!r} (see `ip link`)") from None


class _DevSlots(_FdSlots):
    def __getitem__(self, key: Any) -> DevMapValue:
        value = self._native.lookup(self._key(key))
        if value is None:
            raise KeyError(key)
        program = int.from_bytes(value[4:8], BYTE_ORDER) if len(value) >= 8 else 0
        return DevMapValue(int.from_bytes(value[:4], BYTE_ORDER), program)

    def __setitem__(self, key: Any, interface: int | str | tuple[int | str, Program]) -> None:
        """``ports[key] = "veth0"``, or ``(interface, program)`` for an entry that runs ``program`` (:meth:`set`)."""
        if isinstance(interface, tuple):
            target, program = _pair(interface, "(interface, program)")
            self.set(key, target, program=program)
        else:
            self.set(key, interface)

    def set(self, key: Any, interface: int | str, *, program: Program | None = None) -> None:
        """Send frames redirected to ``key`` out of ``interface`` (a name or an index); with ``program`` (an XDP
        program declared ``#[xdp(map = "devmap")]``, kernel 5.8), run it on each of them first, on the way out
        (its verdict: ``XDP_PASS`` sends the frame, ``XDP_DROP`` drops it). Loads ``program`` when needed."""
        head = _interface_index(interface).to_bytes(4, BYTE_ORDER)
        _update_entry(self._native, self._key(key), head, program, "devmap")

    def _present_keys(self) -> list[bytes]:
        if self._int_keys:
            return super()._present_keys()
        return _listed_keys(self._native)


@register
class DevMap(_DevSlots):
    """Network devices by index for XDP redirects (``BPF_MAP_TYPE_DEVMAP``, kernel 4.14). Set an interface index
    or name; entries read back as :class:`DevMapValue`.

    >>> bpf.maps["PORTS"][0] = "veth0"  # doctest: +SKIP
    """

    kinds: ClassVar[tuple[str, ...]] = ("DevMap",)


@register
class DevMapHash(_DevSlots):
    """Network devices by any key (``BPF_MAP_TYPE_DEVMAP_HASH``, kernel 5.4).

    >>> bpf.maps["BY_IFINDEX"][4] = 4  # doctest: +SKIP
    """

    kinds: ClassVar[tuple[str, ...]] = ("DevMapHash",)
    _int_keys: ClassVar[bool] = False


class CpuMapValue(NamedTuple):
    """A CPU map entry: the queue size of the CPU's kthread and the id of the XDP program it runs (0: none)."""

    queue_size: int
    program_id: int = 0


@register
class CpuMap(_FdSlots):
    """CPUs for XDP redirects (``BPF_MAP_TYPE_CPUMAP``, kernel 4.15): set a CPU's queue size to enable it.

    >>> bpf.maps["CPUS"][1] = 2048  # doctest: +SKIP
    """

    kinds: ClassVar[tuple[str, ...]] = ("CpuMap",)

    def __getitem__(self, key: Any) -> CpuMapValue:
        value = self._native.lookup(self._key(key))
        if value is None:
            raise KeyError(key)
        program = int.from_bytes(value[4:8], BYTE_ORDER) if len(value) >= 8 else 0
        return CpuMapValue(int.from_bytes(value[:4], BYTE_ORDER), program)

    def __setitem__(self, key: Any, queue_size: int | tuple[int, Program]) -> None:
        """``cpus[cpu] = 2048``, or ``(queue_size, program)`` for an entry that runs ``program`` (see :meth:`set`)."""
        if isinstance(queue_size, tuple):
            queue, program = _pair(queue_size, "(queue_size, program)")
            self.set(key, queue, program=program)
        else:
            self.set(key, queue_size)

    def set(self, key: Any, queue_size: int, *, program: Program | None = None) -> None:
        """Enable CPU ``key`` for redirects with a queue of ``queue_size`` frames; with ``program`` (an XDP program
        declared ``#[xdp(map = "cpumap")]``, kernel 5.9), run it on that CPU on each redirected frame (``XDP_PASS``
        hands the frame to the network stack there, ``XDP_DROP`` drops it, ``XDP_REDIRECT`` sends it on). Loads
        ``program`` when needed."""
        queue = _args.integer(queue_size, "queue_size", low=1, high=_args.U32)
        _update_entry(self._native, self._key(key), queue.to_bytes(4, BYTE_ORDER), program, "cpumap")


@register
class CgroupArray(_FdSlots):
    """Cgroups by index, for ``bpf_current_task_under_cgroup`` (``BPF_MAP_TYPE_CGROUP_ARRAY``, kernel 4.8). Set
    the path of a cgroup v2 folder; the kernel does not return entries to user space.

    >>> bpf.maps["CGROUPS"][0] = "/sys/fs/cgroup/unified/my.slice"  # doctest: +SKIP
    """

    kinds: ClassVar[tuple[str, ...]] = ("CgroupArray",)

    def __getitem__(self, key: Any) -> Any:
        raise UnsupportedError("the kernel does not return cgroup array entries to user space")

    def __setitem__(self, key: Any, cgroup: str | os.PathLike[str]) -> None:
        path = _args.path(cgroup, "cgroup")
        if not os.path.isdir(path):
            raise NotFoundError(f"{path} is not a cgroup folder (cgroup v2 is usually under /sys/fs/cgroup)")
        self._native.update_path(self._key(key), path)

    def _present_keys(self) -> list[bytes]:
        raise UnsupportedError("the kernel does not list cgroup array entries to user space")


class _Keyless(KeyValueMap):
    def push(self, value: Any, *, replace_oldest: bool = False) -> None:
        """Add ``value``; when full, fail with ``MapError`` (errno E2BIG) unless ``replace_oldest``."""
        self._native.push(self._values.encode(value), 2 if _args.flag(replace_oldest, "replace_oldest") else 0)

    def pop(self) -> Any:
        """Remove and return the next value; ``IndexError`` when empty."""
        value = self._native.pop()
        if value is None:
            raise IndexError(f"{self.type} {self.name!r} is empty")
        return self._values.decode(value)

    def peek(self) -> Any:
        """The next value without removing it; ``IndexError`` when empty."""
        value = self._native.peek()
        if value is None:
            raise IndexError(f"{self.type} {self.name!r} is empty")
        return self._values.decode(value)

    def drain(self) -> list[Any]:
        """Pop every value, in order."""
        values = []
        while (value := self._native.pop()) is not None:
            values.append(self._values.decode(value))
        return values

    def __bool__(self) -> bool:
        return self._native.peek() is not None

    def _key_codec(self, spec: Any) -> Codec:
        return IntCodec(0)


@register
class Queue(_Keyless):
    """A FIFO queue (``BPF_MAP_TYPE_QUEUE``, kernel 4.20): :meth:`push`, :meth:`pop`, :meth:`peek`.

    >>> jobs = bpf.maps["JOBS"]  # doctest: +SKIP
    >>> jobs.push(7); jobs.pop()  # doctest: +SKIP
    7
    """

    kinds: ClassVar[tuple[str, ...]] = ("Queue",)


@register
class Stack(_Keyless):
    """A LIFO stack (``BPF_MAP_TYPE_STACK``, kernel 4.20): :meth:`push`, :meth:`pop`, :meth:`peek`.

    >>> frames = bpf.maps["FRAMES"]  # doctest: +SKIP
    >>> frames.push(1); frames.push(2); frames.pop()  # doctest: +SKIP
    2
    """

    kinds: ClassVar[tuple[str, ...]] = ("Stack",)


@register
class BloomFilter(_Keyless):
    """A bloom filter (``BPF_MAP_TYPE_BLOOM_FILTER``, kernel 5.16): :meth:`add` and ``in`` (which may say yes for
    a value never added, never no for one that was).

    >>> seen = bpf.maps["SEEN"]  # doctest: +SKIP
    >>> seen.add(42); 42 in seen  # doctest: +SKIP
    True
    """

    kinds: ClassVar[tuple[str, ...]] = ("BloomFilter",)

    def add(self, value: Any) -> None:
        """Add ``value`` to the filter."""
        self._native.push(self._values.encode(value), 0)

    def __contains__(self, value: object) -> bool:
        return self._native.may_contain(self._values.encode(value))


class LpmKey(NamedTuple):
    """A longest-prefix-match key: the prefix length in bits and the data (bytes, or as typed)."""

    prefix_len: int
    data: Any


class _LpmKeyCodec:
    def __init__(self, size: int, data: Codec) -> None:
        self.size = size
        self.data = data

    def encode(self, value: Any) -> bytes:
        # Looked up, not imported (~4 ms): an ipaddress network or address exists only once its module is loaded.
        ipaddress = sys.modules.get("ipaddress")
        if ipaddress is not None:
            if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
                value = LpmKey(value.prefixlen, value.network_address.packed)
            elif isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
                value = LpmKey(value.max_prefixlen, value.packed)
        if not isinstance(value, tuple) or len(value) != 2:
            raise MapError("LPM trie keys are (prefix_len, data) pairs or ipaddress networks/addresses")
        prefix_len, data = value
        if isinstance(prefix_len, bool) or not isinstance(prefix_len, int):
            raise InvalidArgumentTypeError(f"an LPM prefix length is an int, not {type(prefix_len).__name__}")
        if not 0 <= prefix_len <= self.data.size * 8:
            raise MapError(f"prefix length {prefix_len} is outside 0..{self.data.size * 8}")
        return int(prefix_len).to_bytes(4, BYTE_ORDER) + self.data.encode(data)

    def decode(self, raw: bytes) -> LpmKey:
        return LpmKey(int.from_bytes(raw[:4], BYTE_ORDER), self.data.decode(raw[4:]))


@register
class LpmTrie(HashMap):
    """A longest-prefix-match trie (``BPF_MAP_TYPE_LPM_TRIE``, kernel 4.11). Keys are ``(prefix_len, data)``
    (:class:`LpmKey`) or ``ipaddress`` networks; :meth:`longest_match` finds the entry covering some data.
    The data part of keys is ``bytes`` unless :meth:`typed` says otherwise (IP data is in network byte order).

    >>> routes = bpf.maps["ROUTES"]  # doctest: +SKIP
    >>> routes[ipaddress.ip_network("10.0.0.0/8")] = 1  # doctest: +SKIP
    >>> routes.longest_match(ipaddress.ip_address("10.1.2.3").packed)  # doctest: +SKIP
    1
    """

    kinds: ClassVar[tuple[str, ...]] = ("LpmTrie",)

    def _key_codec(self, spec: Any) -> Codec:
        data_size = self._native.key_size - 4
        return _LpmKeyCodec(self._native.key_size, codec_for(spec if spec is not None else bytes, data_size))

    def longest_match(self, data: Any, default: Any = None) -> Any:
        """The value of the longest prefix covering ``data`` (all of its bits), or ``default``."""
        codec = self._keys
        assert isinstance(codec, _LpmKeyCodec)
        value = self._native.lookup(codec.encode(LpmKey(codec.data.size * 8, data)))
        return default if value is None else self._values.decode(value)


@register
class StackTraceMap(KeyValueMap, Mapping[int, list[int]]):
    """Stack traces recorded by ``bpf_get_stackid`` (``BPF_MAP_TYPE_STACK_TRACE``, kernel 4.6): stack id ->
    instruction pointers, innermost first. :meth:`resolve` names them (kernel symbols need root).

    >>> stacks = bpf.maps["STACKS"]  # doctest: +SKIP
    >>> [str(frame) for frame in stacks.resolve(stack_id)]  # doctest: +SKIP
    ['do_syscall_64+0x5f', 'entry_SYSCALL_64_after_hwframe+0x76']
    """

    kinds: ClassVar[tuple[str, ...]] = ("StackTraceMap",)

    def _stack_key(self, stack_id: int) -> bytes:
        if not isinstance(stack_id, int) or isinstance(stack_id, bool) or stack_id < 0:
            raise KeyError(stack_id)
        return stack_id.to_bytes(4, BYTE_ORDER)

    def __getitem__(self, stack_id: int) -> list[int]:
        value = self._native.lookup(self._stack_key(stack_id))
        if value is None:
            raise KeyError(stack_id)
        ips = [int.from_bytes(value[i : i + 8], BYTE_ORDER) for i in range(0, len(value) - len(value) % 8, 8)]
        while ips and ips[-1] == 0:
            ips.pop()
        return ips

    def __delitem__(self, stack_id: int) -> None:
        if not self._native.delete(self._stack_key(stack_id)):
            raise KeyError(stack_id)

    def __iter__(self) -> Iterator[int]:
        return (int.from_bytes(key, BYTE_ORDER) for key in _listed_keys(self._native))

    def __len__(self) -> int:
        return len(_listed_keys(self._native))

    def resolve(self, stack_id: int, pid: int | None = None) -> list[Symbol]:
        """The frames of ``stack_id`` as symbols: kernel addresses through ``/proc/kallsyms``, user addresses
        (when ``pid`` is given) through ``/proc/PID/maps`` and the mapped ELF files' symbol tables."""
        from pyaya.symbols import resolve_stack  # noqa: PLC0415 - ELF reader and /proc parsing, for stacks only

        if pid is not None:
            _args.integer(pid, "pid", low=0, high=2**31 - 1)
        return resolve_stack(self[stack_id], pid)


class _StorageMap(KeyValueMap, MutableMapping["Any", "Any"]):
    """Storage attached to kernel objects, keyed from user space by an fd (socket, file, cgroup folder). The kernel
    cannot list these maps' keys."""

    def _lookup(self, owner: Any) -> bytes | None:
        if isinstance(owner, (str, os.PathLike)):
            return self._native.lookup_path(_args.path(owner, "owner"))
        return self._native.lookup(_fileno(owner, "a file, socket or path").to_bytes(self.key_size, BYTE_ORDER))

    def __getitem__(self, owner: Any) -> Any:
        value = self._lookup(owner)
        if value is None:
            raise KeyError(owner)
        return self._values.decode(value)

    def __setitem__(self, owner: Any, value: Any) -> None:
        encoded = self._values.encode(value)
        if isinstance(owner, (str, os.PathLike)):
            self._native.update_at_path(_args.path(owner, "owner"), encoded)
        else:
            fd = _fileno(owner, "a file, socket or path")
            self._native.update(fd.to_bytes(self.key_size, BYTE_ORDER), encoded)

    def __delitem__(self, owner: Any) -> None:
        if isinstance(owner, (str, os.PathLike)):
            found = self._native.delete_path(_args.path(owner, "owner"))
        else:
            found = self._native.delete(_fileno(owner, "a file, socket or path").to_bytes(self.key_size, BYTE_ORDER))
        if not found:
            raise KeyError(owner)

    def __contains__(self, owner: object) -> bool:
        return self._lookup(owner) is not None

    def __iter__(self) -> Iterator[Any]:
        raise UnsupportedError(f"the kernel cannot list the keys of {self.type} {self.name!r}")

    def __len__(self) -> int:
        raise UnsupportedError(f"the kernel cannot count the entries of {self.type} {self.name!r}")


@register
class SkStorage(_StorageMap):
    """Per-socket storage (``BPF_MAP_TYPE_SK_STORAGE``, kernel 5.2), keyed by a Python socket object.

    >>> bpf.maps["SOCK_STATS"][conn] = 0  # doctest: +SKIP
    """

    kinds: ClassVar[tuple[str, ...]] = ("SkStorage",)


@register
class InodeStorage(_StorageMap):
    """Per-inode storage (``BPF_MAP_TYPE_INODE_STORAGE``, kernel 5.10; needs the BPF LSM), keyed by a path or an
    open file.

    >>> bpf.maps["MARKS"]["/etc/passwd"] = 1  # doctest: +SKIP
    """

    kinds: ClassVar[tuple[str, ...]] = ("InodeStorage",)


@register
class CgrpStorage(_StorageMap):
    """Per-cgroup storage (``BPF_MAP_TYPE_CGRP_STORAGE``, kernel 6.2), keyed by a cgroup folder's path.

    >>> bpf.maps["CG_STATS"]["/sys/fs/cgroup/unified"] = 0  # doctest: +SKIP
    """

    kinds: ClassVar[tuple[str, ...]] = ("CgrpStorage",)


class CgroupStorageKey(NamedTuple):
    """The key of a (deprecated) cgroup storage map: the cgroup's inode id and the program's attach type."""

    cgroup_id: int
    attach_type: int


@register
class CgroupStorage(KeyValueMap, Mapping["Any", "Any"]):
    """Storage of cgroup programs per attached cgroup (``BPF_MAP_TYPE_CGROUP_STORAGE``, kernel 4.19), read-only:
    entries exist while a program using the map is attached. Keys are :class:`CgroupStorageKey`.

    >>> dict(bpf.maps["PACKETS"])  # doctest: +SKIP
    {CgroupStorageKey(cgroup_id=1, attach_type=0): 42}
    """

    kinds: ClassVar[tuple[str, ...]] = ("CgroupStorage",)

    def _decode_key(self, raw: bytes) -> Any:
        if len(raw) >= 12:
            return CgroupStorageKey(int.from_bytes(raw[:8], BYTE_ORDER), int.from_bytes(raw[8:12], BYTE_ORDER))
        return int.from_bytes(raw, BYTE_ORDER)

    def _encode_key(self, key: Any) -> bytes:
        if isinstance(key, tuple):
            if len(key) != 2:
                raise InvalidArgumentError(f"a cgroup storage key is (cgroup_id, attach_type), not {key!r}")
            cgroup_id = _args.integer(key[0], "cgroup_id", high=_args.U64)
            attach_type = _args.integer(key[1], "attach_type", high=_args.U32)
            return cgroup_id.to_bytes(8, BYTE_ORDER) + attach_type.to_bytes(4, BYTE_ORDER) + bytes(self.key_size - 12)
        return _args.integer(key, "cgroup_id", high=_args.U64).to_bytes(self.key_size, BYTE_ORDER)

    def __getitem__(self, key: Any) -> Any:
        value = self._native.lookup(self._encode_key(key))
        if value is None:
            raise KeyError(key)
        return self._values.decode(value)

    def __iter__(self) -> Iterator[Any]:
        return (self._decode_key(key) for key in _listed_keys(self._native))

    def __len__(self) -> int:
        return len(_listed_keys(self._native))

    def _key_codec(self, spec: Any) -> Codec:
        return codec_for(bytes, self._native.key_size)


@register
class PerCpuCgroupStorage(CgroupStorage):
    """Per-CPU cgroup storage (``BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE``, kernel 4.20), read-only; values are
    :class:`PerCpuValues`.

    >>> bpf.maps["PACKETS"][key].sum()  # doctest: +SKIP
    42
    """

    kinds: ClassVar[tuple[str, ...]] = ("PerCpuCgroupStorage",)


class _MapOfMaps(KeyValueMap, MutableMapping["Any", "Any"]):
    def _key(self, key: Any) -> bytes:
        return self._keys.encode(key)

    def __getitem__(self, key: Any) -> Map:
        """A new handle on the inner map (close it when done, or let it be collected)."""
        value = self._native.lookup(self._key(key))
        if value is None:
            raise KeyError(key)
        return wrap_map(_native.Map.from_id(int.from_bytes(value[:4], BYTE_ORDER)), None)

    def __setitem__(self, key: Any, inner: Map) -> None:
        native = getattr(inner, "_native", None)
        if not isinstance(native, _native.Map):
            raise InvalidArgumentTypeError(f"{self.type} {self.name!r} holds pyaya maps, not {type(inner).__name__}")
        self._native.update_map(self._key(key), native)

    def __delitem__(self, key: Any) -> None:
        if not self._native.delete(self._key(key)):
            raise KeyError(key)

    def inner_id(self, key: Any) -> int:
        """The kernel id of the map under ``key``."""
        value = self._native.lookup(self._key(key))
        if value is None:
            raise KeyError(key)
        return int.from_bytes(value[:4], BYTE_ORDER)

    def __iter__(self) -> Iterator[Any]:
        return (self._keys.decode(key) for key in _listed_keys(self._native) if self._native.lookup(key) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


@register
class ArrayOfMaps(_MapOfMaps):
    """Maps by index (``BPF_MAP_TYPE_ARRAY_OF_MAPS``, kernel 4.12): set a pyaya map of the inner map's shape.

    >>> bpf.maps["TABLES"][0] = bpf.maps["TABLE_A"]  # doctest: +SKIP
    """

    kinds: ClassVar[tuple[str, ...]] = ("ArrayOfMaps",)


@register
class HashOfMaps(_MapOfMaps):
    """Maps by any key (``BPF_MAP_TYPE_HASH_OF_MAPS``, kernel 4.12).

    >>> bpf.maps["PER_TENANT"][7] = bpf.maps["TENANT_TEMPLATE"]  # doctest: +SKIP
    """

    kinds: ClassVar[tuple[str, ...]] = ("HashOfMaps",)


_ = PerCpuValues  # re-exported through pyaya.maps
