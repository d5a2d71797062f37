"""The native loader: aya exposed to Python. Use the classes in :mod:`pyaya` rather than these directly."""

from collections.abc import Callable
from pathlib import Path
from typing import Any, final

__all__ = [
    "AYA_VERSION",
    "HELPERS",
    "MAP_TYPES",
    "PROGRAM_TYPES",
    "VERSION",
    "BatchChunks",
    "Btf",
    "Ebpf",
    "GlobalArea",
    "Link",
    "Map",
    "PerfEventArray",
    "Program",
    "RecordPlan",
    "RingBuf",
    "RunStats",
    "btf_from_dwarf",
    "btf_program_errno",
    "btf_to_c_header",
    "clsact_present",
    "clsact_remove_if_unused",
    "enable_stats",
    "enable_stats_errno",
    "helper_known",
    "helper_supported",
    "inspect_object",
    "join_namespace",
    "kernel_features",
    "kernel_member_offsets",
    "kprobe_multi_errno",
    "loaded_links",
    "loaded_maps",
    "loaded_programs",
    "lookup_batch_errno",
    "map_create_errno",
    "map_supported",
    "object_line_info",
    "parent_death_signal",
    "parse_rust_type",
    "perf_event_names",
    "perf_lost_count_supported",
    "pin_by_id",
    "pinned_program_target",
    "program_supported",
    "read_elf",
    "read_iter",
    "rust_type_arguments",
    "set_parent_death_signal",
    "start_guard",
    "tc_filter_delete",
    "tc_filters",
    "tcx_programs",
    "tcx_query_errno",
    "unescape_name",
    "uprobe_multi_errno",
    "usdt_parse_argument",
    "usdt_probes",
    "wait_for_running_programs",
    "xdp_detach",
    "xdp_programs",
]

AYA_VERSION: str
"""The version of aya this module links (from Cargo.lock at build time)."""
VERSION: str
"""pyaya's version (the crate's, which is also the Python distribution's)."""
#: Every program type name the probes take (pyaya's program class names, plus kernel types without a class):
#: the native module's one table of program types.
PROGRAM_TYPES: tuple[str, ...]
#: The BPF helpers by number (``enum bpf_func_id`` of aya's kernel headers, without ``BPF_FUNC_``; 0 is
#: ``unspec``): the names the verifier's messages use after ``bpf_``.
HELPERS: tuple[str, ...]
#: The kernel's map types by number (``enum bpf_map_type``), under the names pyaya's map classes use.
MAP_TYPES: tuple[str, ...]

@final
class GlobalArea:
    """One data section's array map, memory-mapped when the kernel allows (``BPF_F_MMAPABLE``), else read and
    written with map syscalls; bounds-checked."""

    @property
    def mapped(self) -> bool:
        """Whether reads and writes go through the kernel's memory map of the section."""

    @property
    def size(self) -> int:
        """The section's size in bytes."""

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``, as the programs see them now."""

    def write(self, offset: int, data: bytes) -> None:
        """Writes ``data`` at ``offset`` (UnsupportedError for a frozen ``.rodata``)."""

@final
class Ebpf:
    """One loaded BPF object: its maps are created, its programs prepared. Owns every kernel object it made."""

    @staticmethod
    def load(
        data: bytes,
        *,
        globals: dict[str, bytes] | None = None,
        max_entries: dict[str, int] | None = None,
        log_level: int | None = None,
        pin_maps: str | Path | None = None,
        target_btf: bytes | None = None,
        kconfig: dict[str, str] | None = None,
        extensions: list[str] | None = None,
    ) -> Ebpf:
        """Parse ``data`` as a BPF ELF object, override globals and map sizes, and create its maps.

        ``log_level`` (aya-log's 0 off ... 5 trace) goes into ``AYA_LOG_LEVEL`` when the object has it;
        ``pin_maps`` pins every map by name into that bpffs folder, reusing compatible pins; ``target_btf`` (a raw
        BTF blob) replaces the kernel's BTF for CO-RE relocations. libbpf's classifier sections and ``__ksym``
        externs are rewritten first; ``kconfig`` (``CONFIG_X`` -> ``y``, and ``LINUX_KERNEL_VERSION``) fills
        ``__kconfig`` externs; the programs named in ``extensions`` become Extension programs."""
    def programs(self) -> list[tuple[str, str]]:
        """``(name, type)`` of every program, sorted by name."""
    def global_area(self, section: str) -> GlobalArea:
        """The data section ``section`` (``.bss``, ``.data``, ``.rodata``...), memory-mapped where the kernel allows;
        NotFoundError when the object has no such section."""

    def maps(self) -> list[tuple[str, str]]:
        """``(name, type)`` of every map, sorted by name."""
    def program(self, name: str) -> Program:
        """A handle on the program ``name``; raises ``NotFoundError`` listing the names that exist."""
    def map(self, name: str) -> Map | RingBuf | PerfEventArray:
        """The map ``name`` (the same object on every call); raises ``NotFoundError`` listing the names that exist."""
    def set_log_handler(self, handler: Callable[[int, str, str], object] | None) -> None:
        """Set the callable receiving aya-log records as ``(level, target, message)``."""
    def flush_logs(self) -> int:
        """Deliver pending aya-log records to the handler; returns how many there were."""
    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
    def close(self) -> None:
        """Detach every link, unload every program, close every map. Idempotent."""

@final
class Program:
    """A program of a loaded object."""

    @property
    def name(self) -> str:
        """The program's name in the object."""
    @property
    def kind(self) -> str:
        """The program type, e.g. ``"TracePoint"``."""
    @property
    def closed(self) -> bool:
        """Whether the program's object is closed."""
    @property
    def loaded(self) -> bool:
        """Whether the program is loaded into the kernel."""
    def load(self) -> None:
        """Verify and load the program; raises ``VerifierError`` with the verifier log on rejection."""
    def unload(self) -> None:
        """Unload the program, detaching the links no ``Link`` handle holds."""
    def attach_to_link(self, link: Link, *, replacing: Program | None = None) -> None:
        """Make ``link`` run this (loaded) program instead, atomically (``BPF_LINK_UPDATE``); with ``replacing``,
        only while it still runs that program. The link then belongs to this program."""
    def links(self) -> list[Link]:
        """New handles on the attachments the program keeps, oldest first."""
    # --- tracing program types (crates/pyaya-native/src/programs_tracing.rs) ---
    def attach_tracepoint(self, category: str, name: str, cookie: int | None = None) -> Link:
        """Attach a TracePoint program to ``category/name`` (with a bpf cookie when given)."""
    def attach_raw_tracepoint(self, name: str, cookie: int | None = None) -> Link:
        """Attach a RawTracePoint program to the raw tracepoint ``name``."""
    @property
    def section(self) -> str | None:
        """The ELF section the program was read from, or ``None`` for a pinned program."""
    @property
    def retprobe(self) -> bool:
        """Whether a KProbe/UProbe program is a return probe."""
    def load_btf_tracepoint(self, tracepoint: str | None = None) -> None:
        """Load a BtfTracePoint program (default tracepoint: from its ELF section)."""
    def load_fentry(self, function: str | None = None) -> None:
        """Load an FEntry program (default function: from its ELF section)."""
    def load_fexit(self, function: str | None = None) -> None:
        """Load an FExit program (default function: from its ELF section)."""
    def load_lsm(self, hook: str | None = None) -> None:
        """Load an Lsm program (default hook: from its ELF section)."""
    def load_lsm_cgroup(self, hook: str | None = None) -> None:
        """Load an LsmCgroup program (default hook: from its ELF section)."""
    def load_iter(self, iter_type: str | None = None) -> None:
        """Load an Iter program (default iterator type: from its ELF section)."""
    def load_extension(self, target: Program, function: str | None = None) -> None:
        """Load an Extension program replacing ``function`` of the loaded program ``target``."""
    def attach_btf(self, cookie: int | None = None) -> Link:
        """Attach a loaded BtfTracePoint, FEntry, FExit, Lsm or Extension program."""
    def attach_lsm_cgroup(self, cgroup: Path) -> Link:
        """Attach a loaded LsmCgroup program to a cgroup."""
    def attach_iter(self) -> tuple[Link, int]:
        """Attach a loaded Iter program; returns the link and its kernel link id."""
    def attach_kprobe(self, function: str, offset: int = 0, cookie: int | None = None) -> Link:
        """Attach a KProbe program to kernel function ``function`` (with a bpf cookie when given)."""
    def attach_uprobe(
        self,
        target: Path,
        symbol: str | None = None,
        offset: int = 0,
        pid: int | None = None,
        cookie: int | None = None,
    ) -> Link:
        """Attach a UProbe program to ``symbol`` (+``offset``) or file offset ``offset`` of ``target`` (with a bpf
        cookie when given)."""
    def attach_uprobe_multi(
        self,
        target: Path,
        functions: list[str] | None = None,
        pattern: str | None = None,
        offsets: list[int] | None = None,
        pid: int | None = None,
        cookies: list[int] | None = None,
    ) -> tuple[Link, list[tuple[str, int]]]:
        """Attach a UProbeMulti program to the ``functions`` (or those matching ``pattern``, or the file offsets
        ``offsets``) of ``target`` in one uprobe_multi link; returns it with each location's ``(name, offset)``."""
    def attach_kprobe_multi(
        self,
        functions: list[str] | None = None,
        pattern: str | None = None,
        cookies: list[int] | None = None,
    ) -> tuple[Link, list[str]]:
        """Attach a KProbeMulti program to the kernel ``functions`` (or those of available_filter_functions matching
        ``pattern``) in one kprobe_multi link; returns it with the functions attached."""
    def attach_usdt(self, targets: list[Path], provider: str, name: str, pid: int | None = None) -> Link:
        """Attach a UProbe program to every location of USDT probe ``provider:name`` in ``targets``, each with a
        cookie naming its argument spec in ``PYAYA_USDT_SPECS``; the kernel maintains the probe's semaphore."""
    def attach_perf_event(
        self,
        event: str,
        sample_period: int | None = None,
        sample_frequency: int | None = None,
        cpus: list[int] | None = None,
        pid: int | None = None,
        cookie: int | None = None,
    ) -> Link:
        """Attach a PerfEvent program to ``event`` on every online CPU (or ``cpus``, or process ``pid``), with a
        bpf cookie when given."""
    def attach_breakpoint(
        self,
        address: int,
        access: str,
        length: int,
        sample_period: int,
        cpus: list[int] | None = None,
        pid: int | None = None,
        cookie: int | None = None,
    ) -> Link:
        """Attach a PerfEvent program to a hardware breakpoint at ``address`` (``access`` "r", "w", "rw" over
        ``length`` bytes, or "x"), run every ``sample_period`` hits; placed as :meth:`attach_perf_event`'s."""
    def pin(self, path: Path) -> None:
        """Pin the loaded program at ``path`` in bpffs."""
    def unpin(self) -> None:
        """Remove the program's pin."""
    @staticmethod
    def from_pin(path: Path, kind: str | None = None, retprobe: bool = False) -> Program:
        """Open the program pinned at ``path``; ``kind`` settles types the kernel cannot tell apart."""
    # --- end of tracing program types ---
    # --- networking and cgroup program types (crates/pyaya-native/src/programs_net.rs) ---
    def attach_xdp(self, interface: str | int, mode: str | None = None) -> Link:
        """Attach an Xdp program to ``interface`` (name or index); ``mode`` "skb", "drv", "hw" or ``None``."""
    def attach_sched_classifier(
        self,
        interface: str | int,
        direction: str = "ingress",
        priority: int = 0,
        handle: int = 0,
        order: tuple[str, int] | None = None,
        classid: int = 0,
    ) -> Link:
        """Attach a SchedClassifier program (tcx where available, else netlink on a clsact qdisc); ``order`` is
        ``("first" | "last", 0)`` or ``("before" | "after", program id)`` in the tcx chain; ``classid`` (not 0) sets
        the netlink filter's ``TCA_BPF_CLASSID``."""
    def attach_reuseport_filter(self, fd: int) -> Link:
        """Set a SocketFilter program as the selector of the ``SO_REUSEPORT`` group of the socket ``fd``."""
    def attach_socket_filter(self, fd: int) -> Link:
        """Attach a SocketFilter program to the socket ``fd`` (borrowed for this call only), or an SkReuseport
        program to that socket's ``SO_REUSEPORT`` group."""
    def attach_cgroup(self, cgroup: Path, direction: str | None = None) -> Link:
        """Attach a cgroup program (or SockOps) to a cgroup v2 directory; ``direction`` is for CgroupSkb."""
    def attach_sock_map(self, map: Map) -> Link:
        """Attach an SkMsg or SkSkb program to a SockMap or SockHash."""
    def attach_netns(self, netns: Path) -> Link:
        """Attach an SkLookup or FlowDissector program to a network namespace file."""
    def test_run(
        self, data: bytes, ctx: bytes | None = None, repeat: int = 1, data_out_size: int | None = None
    ) -> tuple[int, bytes, bytes, int]:
        """``BPF_PROG_TEST_RUN``: ``(return_value, data_out, ctx_out, duration_ns)``."""
    # --- end of networking and cgroup program types ---
    def info(self) -> dict[str, Any]:
        """Everything the kernel's ``bpf_prog_info`` says about the program (``None`` where it says nothing)."""

@final
class Link:
    """An attachment of a program, shared by its handles and its program; the last to let go detaches it unless it
    is pinned."""

    @staticmethod
    def from_pin(path: Path) -> Link:
        """A link pinned at ``path`` in bpffs; raises ``NotFoundError`` when there is none."""
    @property
    def program(self) -> str:
        """Name of the attached program; for a link opened from a pin, the kernel's name for it (at most 15 bytes)."""
    @property
    def program_id(self) -> int | None:
        """The attached program's id, for a tcx link made by this process."""
    @property
    def identity(self) -> int:
        """An opaque token, equal for handles on the same attachment."""
    @property
    def attached(self) -> bool:
        """Whether the link is still attached (not detached, nor replaced at its attach point)."""
    @property
    def pinned_path(self) -> Path | None:
        """Where the link is pinned, or ``None``."""
    def detach(self) -> None:
        """Detach (unpinning first); idempotent."""
    def pin(self, path: Path) -> None:
        """Pin at ``path`` in bpffs so the link outlives this process."""
    def unpin(self) -> None:
        """Remove the pin; the link stays attached while this handle lives."""
    @property
    def netlink(self) -> dict[str, int | str | bool] | None:
        """A netlink attachment (it stays if the process is killed): ``kind`` ``"tc"`` with ``ifindex``,
        ``direction``, ``priority``, ``handle``, ``classid``, ``created_clsact``, or ``"xdp"`` with ``ifindex``,
        ``mode``; ``None`` for fd-based links and once detached."""
    def keep_records(self, record: Path, clsact: Path | None = None) -> bool:
        """Hand over pyaya's record files of this netlink attachment, removed once it is detached; False for
        fd-based or detached links."""

@final
class RecordPlan:
    """A record type's decoding plan (built by ``pyaya.types.RecordType.native_plan``)."""

    def __new__(cls, spec: tuple[Any, ...]) -> RecordPlan: ...
    @property
    def size(self) -> int:
        """The record's size in bytes."""
    def decode_many(self, data: bytes, count: int) -> list[Any]:
        """The first ``count`` records of ``data`` (records of ``size`` bytes back to back), decoded."""

@final
class BatchChunks:
    """The chunks of :meth:`Map.lookup_batch_chunks`."""

    def __iter__(self) -> BatchChunks: ...
    def __next__(self) -> tuple[int, bytes, bytes]: ...

@final
class Map:
    """A map of any type, with raw bytes keys and values."""

    @property
    def name(self) -> str:
        """The map's name in the object."""
    @property
    def kind(self) -> str:
        """The map type, e.g. ``"HashMap"``."""
    @property
    def map_type(self) -> int:
        """The kernel's ``enum bpf_map_type`` number."""
    @property
    def key_size(self) -> int:
        """Bytes per key."""
    @property
    def value_size(self) -> int:
        """Bytes per value (per CPU, for per-CPU maps)."""
    @property
    def max_entries(self) -> int:
        """The map's capacity."""
    @property
    def flags(self) -> int:
        """The map's creation flags."""
    @property
    def value_buffer_len(self) -> int:
        """Bytes that :meth:`lookup` returns and :meth:`update` takes."""
    def lookup(self, key: bytes) -> bytes | None:
        """The value under ``key``, or ``None``."""
    def update(self, key: bytes, value: bytes, flags: int = 0) -> None:
        """Set ``key`` to ``value``; ``flags`` 0 any, 1 only if absent, 2 only if present."""
    def delete(self, key: bytes) -> bool:
        """Remove ``key``; returns whether it was present."""
    def keys(self) -> list[bytes]:
        """Every key."""
    def items(self) -> list[tuple[bytes, bytes]]:
        """Every ``(key, value)`` pair."""
    @property
    def closed(self) -> bool:
        """Whether the map handle is closed."""
    def close(self) -> None:
        """Close this handle on the map."""
    # --- maps: batch, pinning, keyless and fd-valued operations (crates/pyaya-native/src/map_ops.rs) ---
    @property
    def id(self) -> int:
        """The kernel's id of the map."""
    @staticmethod
    def from_pin(path: Path) -> Map | RingBuf | PerfEventArray:
        """A handle on the map pinned at ``path``, typed by the pinned map's kind."""
    @staticmethod
    def from_id(id: int) -> Map | RingBuf | PerfEventArray:
        """A handle on the map with kernel id ``id``."""
    @staticmethod
    def create(
        map_type: int, key_size: int, value_size: int, max_entries: int, flags: int = 0, name: str = ""
    ) -> Map | RingBuf | PerfEventArray:
        """A new map of kernel type ``map_type``, belonging to no object."""
    def pin(self, path: Path) -> None:
        """Pin the map at ``path`` in bpffs."""
    def unpin(self) -> None:
        """Remove the pin this handle made."""
    @property
    def pinned_path(self) -> Path | None:
        """Where this handle pinned the map (or the pin it was opened from, or its ``pin_maps`` pin), or ``None``."""
    @property
    def batch_refused(self) -> list[str]:
        """The batch commands the kernel refused for this map (tried once, then skipped)."""
    def lookup_batch(self, chunk: int | None = None) -> list[tuple[bytes, bytes]]:
        """Every pair, read with ``BPF_MAP_LOOKUP_BATCH``; ``UnsupportedError`` where the kernel lacks it."""
    def lookup_and_delete_batch(self, chunk: int | None = None) -> list[tuple[bytes, bytes]]:
        """Every pair, removed as read with ``BPF_MAP_LOOKUP_AND_DELETE_BATCH``."""
    def lookup_batch_chunks(self, chunk: int | None = None) -> BatchChunks:
        """Every entry as ``(count, keys, values)`` chunks, read ahead on a thread of their own."""
    def lookup_batch_packed(self, chunk: int | None = None, delete: bool = False) -> tuple[int, bytes, bytes]:
        """``(count, keys, values)``: every entry by batch lookup (removed as read with ``delete``), the keys and
        values back to back in one ``bytes`` each."""
    def update_batch(self, keys: bytes, values: bytes, flags: int = 0) -> int:
        """Write keys and values given back to back with ``BPF_MAP_UPDATE_BATCH``; returns how many."""
    def delete_batch(self, keys: bytes) -> int:
        """Delete keys given back to back with ``BPF_MAP_DELETE_BATCH``; returns how many."""
    def pop(self) -> bytes | None:
        """Remove and return the head of a queue or stack, or ``None``."""
    def peek(self) -> bytes | None:
        """The head of a queue or stack, or ``None``."""
    def push(self, value: bytes, flags: int = 0) -> None:
        """Push onto a queue, stack or bloom filter."""
    def may_contain(self, value: bytes) -> bool:
        """Whether a bloom filter may contain ``value``."""
    def update_program(self, key: bytes, program: Program, flags: int = 0) -> None:
        """Store a loaded program's fd under ``key``."""
    def update_with_program(self, key: bytes, head: bytes, program: Program, flags: int = 0) -> None:
        """Store ``head`` then a loaded program's fd under ``key`` (device and CPU map entries with a program)."""
    def update_map(self, key: bytes, inner: Map, flags: int = 0) -> None:
        """Store another map's fd under ``key`` (maps of maps)."""
    def update_path(self, key: bytes, path: Path, flags: int = 0) -> None:
        """Store the fd of ``path`` (e.g. a cgroup folder) under ``key``."""
    def lookup_path(self, path: Path) -> bytes | None:
        """The value stored for the object at ``path`` (fd-keyed storage maps)."""
    def update_at_path(self, path: Path, value: bytes, flags: int = 0) -> None:
        """Set the value stored for the object at ``path``."""
    def delete_path(self, path: Path) -> bool:
        """Remove the value stored for the object at ``path``."""
    # --- end of maps operations ---

@final
class RingBuf:
    """A BPF ring buffer, read as records."""

    @property
    def name(self) -> str:
        """The map's name in the object."""
    @property
    def kind(self) -> str:
        """Always ``"RingBuf"``."""
    @property
    def size(self) -> int:
        """The ring's size in bytes."""
    def drain(self, max_records: int | None = None, timeout: float | None = None) -> list[bytes]:
        """Up to ``max_records`` records; waits up to ``timeout`` seconds (GIL released) when none is ready."""
    def drain_packed(
        self, stride: int, max_records: int | None = None, timeout: float | None = None
    ) -> tuple[bytes, int, bytes | None]:
        """As :meth:`drain`, the records' first ``stride`` bytes each in one ``bytes``: ``(data, count, short)``;
        a record shorter than ``stride`` ends the batch and comes back whole as ``short``."""
    def fileno(self) -> int:
        """The ring's fd for readiness polling; owned by pyaya, never close it."""
    def pin(self, path: Path) -> None:
        """Pin the ring buffer at ``path`` in bpffs."""
    def unpin(self) -> None:
        """Remove the pin this handle made."""
    @property
    def pinned_path(self) -> Path | None:
        """Where this handle pinned the ring buffer (or the pin it was opened from, or its ``pin_maps`` pin), or
        ``None``."""
    @property
    def closed(self) -> bool:
        """Whether the ring buffer handle is closed."""
    def close(self) -> None:
        """Close this handle on the ring buffer."""

def kernel_member_offsets(struct_name: str, members: list[str], path: Path | None = None) -> list[int]:
    """Byte offsets of ``members`` of kernel struct ``struct_name`` from the kernel's BTF (or the BTF file at
    ``path``), looking into anonymous members; raises ``NotFoundError`` naming what is missing."""

def inspect_object(data: bytes) -> dict[str, list[dict[str, str | int]]]:
    """Programs and maps of an object, parsed without loading it."""

def loaded_links() -> list[tuple[int, int, str]]:
    """``(id, program id, type)`` of every bpf_link in the kernel, whoever made it (type as aya names it)."""

def loaded_maps() -> list[tuple[int, str, int]]:
    """``(id, name, type)`` of every map in the kernel, whoever created it."""

def pin_by_id(kind: str, id: int, path: Path) -> None:
    """Pin the loaded program (``kind`` "program") or bpf_link (``kind`` "link") with kernel id ``id`` at
    ``path`` in bpffs."""

# --- readers (btf.rs, inspect.rs; the parsing is pyaya-core's) ---
@final
class Btf:
    """Parsed BTF: types by id (0 is void), lookups by name, and layout queries bounded on any input."""

    @staticmethod
    def parse(data: bytes) -> Btf:
        """Parse a raw BTF blob; raises ``ObjectError`` saying what is malformed."""
    @staticmethod
    def from_object(data: bytes) -> Btf | None:
        """The ``.BTF`` section of an ELF object, or None when it has none."""
    @staticmethod
    def kernel(path: str | Path | None = None) -> Btf:
        """The running kernel's BTF (parsed once per process), or the BTF file at ``path``."""
    def __len__(self) -> int: ...
    def to_bytes(self) -> bytes:
        """The types as a raw BTF blob (header, types, strings) in their own byte order."""
    @property
    def endian(self) -> str:
        """``"<"`` or ``">"``: the byte order of the BTF, and so of the target's data."""
    def record(self, id: int) -> tuple[int, str, int | None, bool, Any]:
        """``(kind, name, size, kind_flag, detail)``; detail: INT ``(encoding, bit_offset, bits)``, PTR and
        modifiers ``(type_id,)``, ARRAY ``(type_id, index_type_id, nelems)``, STRUCT/UNION members ``(name, type_id,
        bit_offset, bitfield_size)``, ENUM/ENUM64 ``(name, value)`` pairs, FUNC ``(type_id, linkage)``, FUNC_PROTO
        ``(return_type_id, ((name, type_id), ...))``, VAR ``(type_id, linkage)``, DATASEC ``(type_id, offset, size)``
        triples, DECL_TAG ``(type_id, component_idx)``, FWD and FLOAT ``()``."""
    def kind_of(self, id: int) -> int:
        """The kind number of type ``id``."""
    def name_of(self, id: int) -> str:
        """The name of type ``id`` (``""`` when anonymous)."""
    def find(self, name: str, kind: int | None = None) -> list[int]:
        """Ids of every type called ``name`` (of kind number ``kind``, when given), in id order."""
    def names(self, kind: int) -> list[str]:
        """The names of every type of kind number ``kind``, each once, sorted."""
    def resolve(self, id: int) -> int:
        """The id behind ``id`` with typedefs and qualifiers skipped."""
    def size_of(self, id: int) -> int | None:
        """Byte size of a value of type ``id``, None for types without one."""
    def describe(self, id: int) -> str:
        """A short label for messages (``struct event``, ``u32``)."""
    def member(self, id: int, label: str, path: str) -> tuple[int, tuple[str, int, int, int]]:
        """``(bit offset, (name, type_id, bit_offset, bitfield_size))`` of the dotted ``path`` in composite ``id``."""
    def to_c_header(self) -> str:
        """Every type as a C header (bpftool's ``format c``; vmlinux.h for the kernel's BTF)."""
    def check_value(self, id: int) -> int:
        """The size of values of type ``id`` after checking they can be decoded; ``ObjectError`` when not."""
    def member_offsets(self, struct_name: str, members: list[str]) -> list[int]:
        """Byte offsets of ``members`` of the struct or union ``struct_name``; ``NotFoundError`` naming what is
        missing."""

def parse_rust_type(text: str) -> tuple[Any, ...] | None:
    """One Rust type as written in a generic argument: ``("int", size, signed)``, ``("bool",)``, ``("char",)``,
    ``("float", size)``, ``("array", element, count)``, ``("named", name)``, or None when unknown."""

def rust_type_arguments(name: str) -> tuple[str, list[tuple[Any, ...] | None]] | None:
    """``(base, arguments)`` of an escaped generic instantiation's BTF name, each as ``parse_rust_type`` gives it."""

def unescape_name(name: str) -> str:
    """``name`` with bpf-linker's ``_XX_`` escapes turned back into characters."""

def btf_to_c_header(btf_bytes: bytes) -> str:
    """The C header of a raw BTF blob (the kernel's gives vmlinux.h); ``ObjectError`` on malformed BTF."""

def btf_from_dwarf(data: bytes, namespaced: bool = False) -> bytes | None:
    """A BTF blob of the named types of the object's DWARF (``-g``), or None when it has no ``.debug_info``;
    types inside namespaces (Rust's, the standard library's among them) only with ``namespaced``."""

def read_elf(
    data: bytes,
) -> tuple[
    tuple[bool, bool, int, int, int],
    list[tuple[int, str, int, int, int, int, int, int, int, int, int]],
    list[tuple[int, str, int, int, int, int, int, int, int | None]],
    list[tuple[int, str, int, int, int, int, int, int, int | None]],
    list[tuple[int, int, int, int]],
]:
    """``(header, sections, symbols, dynamic_symbols, segments)`` of an ELF file of either class and byte order."""

def object_line_info(data: bytes) -> list[tuple[str, int, str, int, int, str]]:
    """``(section, insn_offset, file, line, column, text)`` of every ``.BTF.ext`` line_info record of an object."""

def loaded_programs() -> list[tuple[int, str, int]]:
    """``(id, name, type)`` of every program loaded in the kernel."""

def wait_for_running_programs() -> bool:
    """Wait for an RCU grace period, after which no BPF program run that started before the call is still going;
    False when the kernel has no ``membarrier`` to wait with."""

# --- tracing program types and program statistics (programs_tracing.rs, programs_common.rs) ---
@final
class RunStats:
    """Run-time statistics of every BPF program, collected while this handle is open."""

    @property
    def active(self) -> bool:
        """Whether statistics are still collected through this handle."""
    def close(self) -> None:
        """Stop collecting through this handle; idempotent."""

def enable_stats() -> RunStats:
    """Switch on run-time statistics (``BPF_ENABLE_STATS``) until the handle is closed."""

def pinned_program_target(path: Path) -> tuple[bool, int]:
    """``(is a tracing program, attach_btf_id)`` of the program pinned at ``path`` (``BPF_PROG_TYPE_TRACING``)."""

def perf_event_names() -> list[tuple[str, str]]:
    """``(name, "software" | "hardware")`` of every perf event name ``attach_perf_event`` accepts."""

def read_iter(link_id: int) -> bytes:
    """Run the iterator behind the bpf_link ``link_id`` and return its output."""

# --- end of tracing program types and program statistics ---

# --- feature probes (crates/pyaya-native/src/features.rs) ---
def program_supported(kind: str) -> bool:
    """Whether the kernel loads programs of this type (a pyaya program class name such as ``"Xdp"``)."""

def map_supported(kind: str) -> bool:
    """Whether the kernel creates maps of this type (a pyaya map type name such as ``"RingBuf"``)."""

def helper_supported(kind: str, helper: int) -> bool:
    """Whether programs of type ``kind`` may call the helper numbered ``helper`` (``enum bpf_func_id``)."""

def helper_known(helper: int) -> bool:
    """Whether the kernel knows helper number ``helper`` at all (a socket filter calling it is not refused with
    "invalid func"), whichever program types may call it."""

def kernel_features() -> dict[str, bool]:
    """What aya detected about the kernel (``aya::features()``): bpf_name, probe_read_kernel, perf_link, global_data,
    cookie, cpumap_prog_id, devmap_prog_id, btf, and each BTF kind (btf_func ... btf_enum64)."""

def map_create_errno() -> int:
    """``BPF_MAP_CREATE`` of a one-entry array map, closed at once: the kernel's errno, 0 when it worked."""

def lookup_batch_errno() -> tuple[int, int]:
    """``BPF_MAP_LOOKUP_BATCH`` of one entry of an empty hash map: ``(create errno, batch errno)``; the batch
    errno is ENOENT when the kernel walked the map to its end."""

def tcx_programs(interface: str | int, direction: str) -> tuple[int, list[tuple[int, str]]]:
    """``(revision, [(program id, name), ...])`` of an interface's tcx chain, in run order."""

def tcx_query_errno() -> tuple[int, int]:
    """``BPF_PROG_QUERY`` of tcx ingress on lo: ``(errno, programs attached)``."""

def enable_stats_errno() -> int:
    """``BPF_ENABLE_STATS(BPF_STATS_RUN_TIME)``, its fd closed at once: the errno, 0 when it worked."""

def kprobe_multi_errno() -> tuple[int, int | None]:
    """The probe of kprobe_multi links: ``(load errno, link errno)`` of a kprobe program loaded for
    ``BPF_TRACE_KPROBE_MULTI`` and linked for a moment on ``bpf_fentry_test1``; 0 for success."""

def uprobe_multi_errno() -> tuple[int, int | None]:
    """libbpf's probe of uprobe_multi links: ``(load errno, link errno)`` of a kprobe program loaded for
    ``BPF_TRACE_UPROBE_MULTI`` and linked on ``/`` (EBADF where the kernel has these links, EINVAL where not)."""

def btf_program_errno(kind: str, btf_type_id: int) -> tuple[int, str, int | None]:
    """Loads ``r0 = 0; exit`` as a BTF-based program (``"FEntry"``, ``"FExit"``, ``"BtfTracePoint"``, ``"Iter"``,
    ``"Lsm"``, ``"LsmCgroup"``) on vmlinux's type ``btf_type_id`` and attaches it as that type attaches, closing
    every fd: ``(load errno, verifier log, attach errno)``, errnos 0 for success, the attach errno None when
    attaching was not tried (a failed load, or ``LsmCgroup``, whose attach needs a cgroup)."""

# --- end of feature probes ---

def perf_lost_count_supported() -> bool:
    """Whether perf events count their dropped samples (``PERF_FORMAT_LOST``, Linux 6.0), probed once."""

@final
class PerfEventArray:
    """A perf event array read through pyaya's own perf buffers, one per online CPU, open since the load."""

    @property
    def name(self) -> str:
        """The map's name."""
    @property
    def kind(self) -> str:
        """Always ``"PerfEventArray"``."""
    @property
    def max_entries(self) -> int:
        """Slots in the map."""
    @property
    def id(self) -> int:
        """The kernel's id of the map."""
    @property
    def lost(self) -> int:
        """Samples the kernel dropped because a buffer was full: exact with ``PERF_FORMAT_LOST``, else from the
        lost-sample records read; after ``close()``, the last count."""
    @property
    def page_count(self) -> int:
        """Pages per CPU buffer."""
    @property
    def cpus(self) -> list[int]:
        """CPUs with a buffer."""
    def reopen(self, page_count: int) -> None:
        """Replace every buffer with one of ``page_count`` pages; unread records are kept for the next drains."""
    def drain(self, max_records: int | None = None, timeout: float | None = None) -> list[tuple[int, bytes]]:
        """Up to ``max_records`` ``(cpu, record)`` pairs; waits up to ``timeout`` seconds (GIL released)."""
    def drain_packed(
        self, stride: int, max_records: int | None = None, timeout: float | None = None
    ) -> tuple[bytes, int, tuple[int, bytes] | None]:
        """As :meth:`drain`, the records' first ``stride`` bytes each in one ``bytes``: ``(data, count, short)``;
        a record shorter than ``stride`` ends the batch and comes back whole as ``short``, a ``(cpu, record)``
        pair."""
    def fileno(self) -> int:
        """An epoll fd readable when a buffer is a quarter full; owned by pyaya, never close it."""
    def pin(self, path: Path) -> None:
        """Pin the map at ``path`` in bpffs."""
    def unpin(self) -> None:
        """Remove the pin this handle made."""
    @property
    def pinned_path(self) -> Path | None:
        """Where this handle pinned the map (or the pin it was opened from, or its ``pin_maps`` pin), or ``None``."""
    @property
    def closed(self) -> bool:
        """Whether the handle is closed."""
    def close(self) -> None:
        """Close the buffers and this handle."""

def join_namespace(fd: int, namespace_type: int) -> None:
    """Moves the calling thread into the namespace ``fd`` refers to (``setns(2)``); ``namespace_type`` is a
    ``CLONE_NEW*`` flag or 0. Raises OSError with the kernel's errno."""

def set_parent_death_signal(signal: int) -> None:
    """Have the kernel send ``signal`` to this process when its parent exits (``prctl(PR_SET_PDEATHSIG)``); 0
    clears it. Sent when the thread that forked this process exits; kept across ``execve``."""

def parent_death_signal() -> int:
    """The signal this process gets when its parent exits (``prctl(PR_GET_PDEATHSIG)``), 0 for none."""

def start_guard(argv: list[str]) -> int:
    """Start ``argv`` once as this process's guard, in its own process group, in ``/``, with the write end of its
    standard input kept open here until this process exits; returns its pid (the same while it runs)."""

def tc_filters(ifindex: int, direction: str, netns: Path | None = None) -> list[tuple[int, int, str, str, int]]:
    """``(priority, handle, kind, name, program id or 0)`` of every filter on the ``direction`` hook of
    ``ifindex``, in the network namespace of the nsfs file ``netns`` (default: this one)."""

def tc_filter_delete(
    ifindex: int, direction: str, priority: int, handle: int, program_id: int, netns: Path | None = None
) -> bool:
    """Delete that filter if it still runs program ``program_id``; whether it did."""

def clsact_present(ifindex: int, netns: Path | None = None) -> bool:
    """Whether ``ifindex`` has a ``clsact`` qdisc."""

def clsact_remove_if_unused(ifindex: int, netns: Path | None = None) -> str:
    """Remove the ``clsact`` qdisc of ``ifindex`` if no filter is left on it: ``"removed"``, ``"absent"`` or
    ``"in use"``."""

def xdp_programs(ifindex: int, netns: Path | None = None) -> list[tuple[int, int]]:
    """``(mode flag, program id)`` of every XDP program on ``ifindex`` (flags: skb 2, drv 4, hw 8)."""

def xdp_detach(ifindex: int, mode: int, program_id: int, netns: Path | None = None) -> bool:
    """Remove XDP program ``program_id`` from ``ifindex`` in ``mode`` through netlink, only if it is still
    there; whether it did."""

def usdt_probes(
    path: Path,
) -> tuple[
    str | None,
    str,
    list[tuple[str, str, int, int, int, list[str], int | None, int | None, str | None]],
]:
    """``(arch, machine, probes)`` of an ELF file: each probe location as ``(provider, name, location, base,
    semaphore, arguments, file_offset, semaphore_offset, error)``; ``arch`` is None when pyaya does not read
    that machine's argument strings."""

def usdt_parse_argument(text: str, arch: str) -> tuple[int, bool, str, int, str | None, str | None, int, str | None]:
    """One USDT argument string parsed: ``(size, signed, kind, value, register, index, scale, symbol)``."""
