"""What is inside a BPF object: its programs, maps and BTF types, without loading anything (no privilege).

Programs and maps come from the native module (aya-obj's own parser) when it is built; otherwise from a pure-Python
reading of the ELF that follows the same rules as aya-obj:

* programs are global FUNC symbols in executable sections other than ``.text``; the section name gives the type;
* maps come from the legacy ``maps`` section (aya-ebpf 0.2's ``bpf_map_def``: seven u32s per symbol), from
  BTF-defined ``.maps`` (DATASEC variables whose struct has pointer-encoded ``type``, ``key``/``key_size``,
  ``value``/``value_size``, ``max_entries``), and from ``.rodata*``, ``.data*`` and ``.bss*`` as one-entry arrays.
"""

from __future__ import annotations

import importlib
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyaya.btf import (
    Btf,
    BtfArray,
    BtfComposite,
    BtfDatasec,
    BtfDeclTag,
    BtfEnum,
    BtfFunc,
    BtfFuncProto,
    BtfFwd,
    BtfInt,
    BtfPtr,
    BtfRef,
    BtfType,
    BtfVar,
    Kind,
)
from pyaya.elf import Elf, Section, read_object_file
from pyaya.errors import ObjectError

__all__ = [
    "MAP_TYPES",
    "BtfTypeInfo",
    "LineInfo",
    "MapInfo",
    "ObjectInfo",
    "ProgramInfo",
    "SourceLocation",
    "btf_dump",
    "btf_summary",
    "btf_type_json",
    "inspect_bytes",
    "inspect_file",
    "line_info",
    "map_type_name",
    "program_type",
    "source_location",
    "type_label",
]

# The kernel's `enum bpf_map_type`, by value, under the names of pyaya's (and aya's) map classes; the same table
# as the native module's crates/pyaya-native/src/names.rs, so both readings of an object print the same names.
MAP_TYPES: tuple[str, ...] = (
    "Unspecified",  # 0
    "HashMap",  # 1
    "Array",  # 2
    "ProgramArray",  # 3
    "PerfEventArray",  # 4
    "PerCpuHashMap",  # 5
    "PerCpuArray",  # 6
    "StackTraceMap",  # 7
    "CgroupArray",  # 8
    "LruHashMap",  # 9
    "PerCpuLruHashMap",  # 10
    "LpmTrie",  # 11
    "ArrayOfMaps",  # 12
    "HashOfMaps",  # 13
    "DevMap",  # 14
    "SockMap",  # 15
    "CpuMap",  # 16
    "XskMap",  # 17
    "SockHash",  # 18
    "CgroupStorage",  # 19
    "ReusePortSockArray",  # 20
    "PerCpuCgroupStorage",  # 21
    "Queue",  # 22
    "Stack",  # 23
    "SkStorage",  # 24
    "DevMapHash",  # 25
    "StructOps",  # 26
    "RingBuf",  # 27
    "InodeStorage",  # 28
    "TaskStorage",  # 29
    "BloomFilter",  # 30
    "UserRingBuf",  # 31
    "CgrpStorage",  # 32
    "Arena",  # 33
)
BPF_MAP_TYPE_ARRAY = 2

# Section prefix (before the first "/") -> aya-obj's ProgramSection name; matches aya-obj 0.3's parser.
_PROGRAM_SECTIONS: dict[str, str] = {
    "kprobe": "KProbe",
    "kretprobe": "KRetProbe",
    "uprobe": "UProbe",
    "uprobe.s": "UProbe",
    "uretprobe": "URetProbe",
    "uretprobe.s": "URetProbe",
    "xdp": "Xdp",
    "xdp.frags": "Xdp",
    "tp_btf": "BtfTracePoint",
    "tracepoint": "TracePoint",
    "tp": "TracePoint",
    "socket": "SocketFilter",
    "socket_filter": "SocketFilter",
    "sk_msg": "SkMsg",
    "sockops": "SockOps",
    "classifier": "SchedClassifier",
    "cgroup_skb": "CgroupSkb",
    "lirc_mode2": "LircMode2",
    "perf_event": "PerfEvent",
    "raw_tp": "RawTracePoint",
    "raw_tracepoint": "RawTracePoint",
    "lsm": "Lsm",
    "lsm.s": "Lsm",
    "lsm_cgroup": "LsmCgroup",
    "fentry": "FEntry",
    "fentry.s": "FEntry",
    "fexit": "FExit",
    "fexit.s": "FExit",
    "flow_dissector": "FlowDissector",
    "freplace": "Extension",
    "sk_lookup": "SkLookup",
    "sk_reuseport": "SkReuseport",
    "iter": "Iter",
    "iter.s": "Iter",
}
_CGROUP_SECTIONS: dict[str, str] = {
    "skb": "CgroupSkb",
    "sysctl": "CgroupSysctl",
    "dev": "CgroupDevice",
    "getsockopt": "CgroupSockopt",
    "setsockopt": "CgroupSockopt",
    **dict.fromkeys(("sock", "post_bind4", "post_bind6", "sock_create", "sock_release"), "CgroupSock"),
    **dict.fromkeys(
        (
            f"{op}{v}"
            for op in ("bind", "connect", "getpeername", "getsockname", "sendmsg", "recvmsg")
            for v in ("4", "6")
        ),
        "CgroupSockAddr",
    ),
}


def map_type_name(map_type: int) -> str:
    """The map class name of a kernel map type number (``27`` -> ``"RingBuf"``), ``"Unknown"`` past the table."""
    return MAP_TYPES[map_type] if 0 <= map_type < len(MAP_TYPES) else "Unknown"


def program_type(section: str) -> str:
    """The program type aya-obj infers from a section name (``"tracepoint/syscalls/x"`` -> ``"TracePoint"``)."""
    prefix, _, rest = section.partition("/")
    if prefix == "cgroup":
        return _CGROUP_SECTIONS.get(rest.partition("/")[0], "unknown")
    if prefix == "sk_skb":
        kind = rest.partition("/")[0]
        return {"stream_parser": "SkSkbStreamParser", "stream_verdict": "SkSkbStreamVerdict"}.get(kind, "SkSkb")
    return _PROGRAM_SECTIONS.get(prefix, "unknown")


@dataclass(frozen=True, slots=True)
class ProgramInfo:
    name: str
    section: str
    type: str


@dataclass(frozen=True, slots=True)
class MapInfo:
    name: str
    type: str
    key_size: int
    value_size: int
    max_entries: int


@dataclass(frozen=True, slots=True)
class BtfTypeInfo:
    id: int
    kind: str
    name: str
    size: int | None


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    programs: list[ProgramInfo] = field(default_factory=list)
    maps: list[MapInfo] = field(default_factory=list)
    btf_types: list[BtfTypeInfo] = field(default_factory=list)
    source: str = "python"
    """``"native"`` when programs and maps came from the native module, ``"python"`` for the fallback."""
    btf: Btf | None = field(default=None, repr=False, compare=False)
    """The object's parsed ``.BTF``, or None without one."""

    def to_json(self, *, btf_details: bool = False) -> dict[str, list[dict[str, Any]]]:
        """``{"programs": [...], "maps": [...], "btf_types": [...]}``; with ``btf_details`` each BTF type also
        carries what its kind holds (members, values, parameters, target type: see :func:`btf_type_json`)."""
        if btf_details and self.btf is not None:
            types = [btf_type_json(self.btf, self.btf.type(t.id)) for t in self.btf_types]
        else:
            types = [asdict(t) for t in self.btf_types]
        return {
            "programs": [asdict(p) for p in self.programs],
            "maps": [asdict(m) for m in self.maps],
            "btf_types": types,
        }


# -- the pure-Python extraction ----------------------------------------------------------------------------------


def _programs(elf: Elf) -> list[ProgramInfo]:
    programs = []
    for symbol in elf.symbols:
        if not (symbol.is_function and symbol.is_global):
            continue
        section = elf.section_of(symbol)
        if section is None or not section.is_executable or section.name.startswith(".text"):
            continue
        programs.append(ProgramInfo(symbol.name, section.name, program_type(section.name)))
    return programs


def _legacy_maps(elf: Elf, section: Section) -> list[MapInfo]:
    data = elf.section_data(section)
    maps = []
    for symbol in elf.symbols_in(section):
        if symbol.value + 16 > len(data):
            raise ObjectError(
                f"map {symbol.name!r}: definition at byte {symbol.value} runs past section {section.name}"
            )
        map_type, key_size, value_size, max_entries = struct.unpack_from(elf.endian + "4I", data, symbol.value)
        maps.append(MapInfo(symbol.name, map_type_name(map_type), key_size, value_size, max_entries))
    return maps


def _ptr_array_len(btf: Btf, type_id: int, what: str) -> int:
    """``int (*name)[N]`` -> N: how libbpf and aya encode numbers in BTF map definitions."""
    ptr = btf.resolve(type_id)
    target = btf.resolve(ptr.type_id) if isinstance(ptr, BtfPtr) else None
    if not isinstance(target, BtfArray):
        raise ObjectError(f"{what} is not encoded as a pointer to an array (kind {ptr.kind.name})")
    return target.nelems


def _btf_map(btf: Btf, name: str, struct_type: BtfType) -> MapInfo:
    if not isinstance(struct_type, BtfComposite):
        raise ObjectError(f"map {name!r} in .maps is a {struct_type.kind.name}, not a struct")
    map_type = key_size = value_size = max_entries = 0
    for member in struct_type.members:
        what = f"map {name!r} field {member.name!r}"
        if member.name == "type":
            map_type = _ptr_array_len(btf, member.type_id, what)
        elif member.name == "key_size":
            key_size = _ptr_array_len(btf, member.type_id, what)
        elif member.name == "value_size":
            value_size = _ptr_array_len(btf, member.type_id, what)
        elif member.name == "max_entries":
            max_entries = _ptr_array_len(btf, member.type_id, what)
        elif member.name in ("key", "value"):
            ptr = btf.resolve(member.type_id)
            if not isinstance(ptr, BtfPtr):
                raise ObjectError(f"{what} is a {ptr.kind.name}, expected a pointer")
            size = btf.size_of(ptr.type_id) or 0
            if member.name == "key":
                key_size = size
            else:
                value_size = size
    return MapInfo(name, map_type_name(map_type), key_size, value_size, max_entries)


def _btf_maps(btf: Btf | None) -> list[MapInfo]:
    if btf is None:
        return []
    maps = []
    for datasec in btf.find_all(".maps", Kind.DATASEC):
        assert isinstance(datasec, BtfDatasec)
        for secinfo in datasec.vars:
            var = btf.type(secinfo.type_id)
            if not isinstance(var, BtfVar):
                continue
            maps.append(_btf_map(btf, var.name, btf.resolve(var.type_id)))
    return maps


def _data_maps(elf: Elf) -> list[MapInfo]:
    return [
        MapInfo(section.name, map_type_name(BPF_MAP_TYPE_ARRAY), 4, section.size, 1)
        for section in elf.sections
        if section.name.startswith((".rodata", ".data", ".bss")) and section.size > 0
    ]


def _python_programs_and_maps(elf: Elf, btf: Btf | None) -> tuple[list[ProgramInfo], list[MapInfo]]:
    maps: list[MapInfo] = []
    for section in elf.sections:
        if section.name.startswith("maps"):
            maps.extend(_legacy_maps(elf, section))
    maps.extend(_btf_maps(btf))
    maps.extend(_data_maps(elf))
    return _programs(elf), maps


def _native_programs_and_maps(data: bytes) -> tuple[list[ProgramInfo], list[MapInfo]] | None:
    """Ask ``pyaya._native.inspect_object``; None when the native module (or that function) is not there."""
    try:
        native = importlib.import_module("pyaya._native")  # optional: built by maturin
    except ImportError:
        return None
    inspect_object = getattr(native, "inspect_object", None)
    if inspect_object is None:
        return None
    result: dict[str, list[dict[str, Any]]] = inspect_object(data)
    programs = [ProgramInfo(str(p["name"]), str(p["section"]), str(p["type"])) for p in result["programs"]]
    maps = [
        MapInfo(str(m["name"]), str(m["type"]), int(m["key_size"]), int(m["value_size"]), int(m["max_entries"]))
        for m in result["maps"]
    ]
    return programs, maps


def _btf_types(btf: Btf | None) -> list[BtfTypeInfo]:
    if btf is None:
        return []
    return [BtfTypeInfo(t.id, t.kind.name, t.name, btf.size_of(t.id)) for t in btf.types[1:]]


def inspect_bytes(data: bytes, *, native: bool | None = None) -> ObjectInfo:
    """Programs, maps and BTF types of a BPF object held in memory.

    ``native=None`` uses the native module when importable, ``True`` requires it, ``False`` forces the pure-Python
    reading. Raises :class:`ObjectError` when ``data`` is not a BPF ELF object.
    """
    elf = Elf(data)
    if not elf.header.is_bpf:
        raise ObjectError(f"not a BPF object (ELF machine {elf.header.machine}, expected 247 for BPF)")
    btf = Btf.from_elf(elf) if elf.section(".BTF") is not None else None
    found = _native_programs_and_maps(data) if native is not False else None
    if found is None and native:
        raise ObjectError("the native module pyaya._native (inspect_object) is not available")
    source = "native" if found is not None else "python"
    programs, maps = found if found is not None else _python_programs_and_maps(elf, btf)
    return ObjectInfo(programs, maps, _btf_types(btf), source, btf)


def inspect_file(path: str | Path, *, native: bool | None = None) -> ObjectInfo:
    """:func:`inspect_bytes` on a file; a missing or unreadable file raises :class:`ObjectError` naming it."""
    data = read_object_file(path)
    try:
        return inspect_bytes(data, native=native)
    except ObjectError as error:
        raise ObjectError(f"{path}: {error}") from None


# -- source lines (.BTF.ext line_info) ---------------------------------------------------------------------------

_BTF_EXT_MAGIC = 0xEB9F
_INSN_SIZE = 8


@dataclass(frozen=True, slots=True)
class LineInfo:
    """One ``.BTF.ext`` line_info record: the instruction at byte ``insn_offset`` of ``section`` comes from
    ``file:line:column`` (``text`` is the source line when the compiler recorded it; Rust often leaves it empty)."""

    section: str
    insn_offset: int
    file: str
    line: int
    column: int
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}" if self.column else f"{self.file}:{self.line}"


def line_info(elf: Elf, btf: Btf | None = None) -> list[LineInfo]:
    """Every line_info record of the object's ``.BTF.ext``, in section order; empty without one.

    Offsets are in bytes from the start of their section, as the linker writes them (the kernel counts
    instructions instead: divide by 8).
    """
    section = elf.section(".BTF.ext")
    if section is None or elf.section(".BTF") is None:
        return []
    btf = btf if btf is not None else Btf.from_elf(elf)
    data = elf.section_data(section)
    endian = elf.endian
    if len(data) < 24:
        raise ObjectError(f".BTF.ext is truncated ({len(data)} bytes, the header needs 24)")
    magic, _version, _flags, header_len = struct.unpack_from(endian + "HBBI", data)
    if magic != _BTF_EXT_MAGIC:
        raise ObjectError(f".BTF.ext has a bad magic number {magic:#x}")
    _func_off, _func_len, line_off, line_len = struct.unpack_from(endian + "4I", data, 8)
    start = header_len + line_off
    end = start + line_len
    if line_len == 0:
        return []
    if end > len(data) or line_len < 4:
        raise ObjectError(f".BTF.ext line_info runs past the section (ends at byte {end} of {len(data)})")
    (record_size,) = struct.unpack_from(endian + "I", data, start)
    if record_size < 16:
        raise ObjectError(f".BTF.ext line_info records are {record_size} bytes, expected at least 16")
    records: list[LineInfo] = []
    at = start + 4
    while at + 8 <= end:
        name_off, count = struct.unpack_from(endian + "II", data, at)
        at += 8
        if at + count * record_size > end:
            raise ObjectError(".BTF.ext line_info: a section's records run past the end of line_info")
        name = btf.string(name_off)
        for _ in range(count):
            insn_off, file_off, text_off, line_col = struct.unpack_from(endian + "4I", data, at)
            at += record_size
            records.append(
                LineInfo(name, insn_off, btf.string(file_off), line_col >> 10, line_col & 0x3FF, btf.string(text_off))
            )
    return records


def _is_library_source(file: str) -> bool:
    """Sources of Rust's own library and of crates from a registry: not where a verifier problem gets fixed."""
    return any(part in file for part in ("/rustc-", "/rustlib/", "/library/core/", "/.cargo/registry/", "/.cargo/git/"))


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """Where a program's instruction comes from: the exact line, and the nearest line of the project's own code
    in the same program (the exact line is often inside an inlined library function)."""

    program: str
    insn: int
    exact: LineInfo | None
    own: LineInfo | None


def source_location(path: str | Path, program: str, insn: int) -> SourceLocation | None:
    """The source line of instruction ``insn`` (as the verifier counts them) of ``program`` in the object at
    ``path``; None when the object has no line info for it (no ``.BTF.ext``, or an instruction past the program's
    own function, in a called function the loader appended)."""
    elf = Elf.from_path(path)
    symbol = next((s for s in elf.symbols if s.name == program and s.is_function), None)
    section = elf.section_of(symbol) if symbol is not None else None
    if symbol is None or section is None:
        return None
    offset = symbol.value + insn * _INSN_SIZE
    if symbol.size and offset >= symbol.value + symbol.size:
        return None
    records = [r for r in line_info(elf) if r.section == section.name and symbol.value <= r.insn_offset]
    records = [r for r in records if not symbol.size or r.insn_offset < symbol.value + symbol.size]
    if not records:
        return None
    before = [r for r in records if r.insn_offset <= offset]
    exact = before[-1] if before else None
    own_before = [r for r in before if not _is_library_source(r.file)]
    own_after = [r for r in records if r.insn_offset > offset and not _is_library_source(r.file)]
    own = own_before[-1] if own_before else own_after[0] if own_after else None
    return SourceLocation(program, insn, exact, own)


# -- BTF types in detail (``pyaya inspect --btf``) ---------------------------------------------------------------

_LINKAGE = {0: "static", 1: "global", 2: "extern"}


def _int_encoding(t: BtfInt) -> str:
    names = [name for bit, name in ((1, "SIGNED"), (2, "CHAR"), (4, "BOOL")) if t.encoding & bit]
    return "|".join(names) or "(none)"


def _quoted(name: str) -> str:
    return f"'{name or '(anon)'}'"


def btf_dump(btf: Btf) -> list[str]:
    """Every type of ``btf``, one line each with its members indented below, as ``bpftool btf dump`` prints."""
    lines: list[str] = []
    for t in btf.types[1:]:
        head = f"[{t.id}] {t.kind.name} {_quoted(t.name)}"
        if isinstance(t, BtfInt):
            lines.append(
                f"{head} size={t.size} bits_offset={t.bit_offset} nr_bits={t.bits} encoding={_int_encoding(t)}"
            )
        elif isinstance(t, BtfArray):
            lines.append(f"{head} type_id={t.type_id} index_type_id={t.index_type_id} nr_elems={t.nelems}")
        elif isinstance(t, BtfComposite):
            lines.append(f"{head} size={t.size} vlen={len(t.members)}")
            for m in t.members:
                bitfield = f" bitfield_size={m.bitfield_size}" if t.kind_flag else ""
                lines.append(f"\t{_quoted(m.name)} type_id={m.type_id} bits_offset={m.bit_offset}{bitfield}")
        elif isinstance(t, BtfEnum):
            encoding = "SIGNED" if t.signed else "UNSIGNED"
            lines.append(f"{head} encoding={encoding} size={t.size} vlen={len(t.values)}")
            lines += [f"\t{_quoted(v.name)} val={v.value}" for v in t.values]
        elif isinstance(t, BtfFwd):
            lines.append(f"{head} fwd_kind={'union' if t.is_union else 'struct'}")
        elif isinstance(t, BtfFunc):
            lines.append(f"{head} type_id={t.type_id} linkage={_LINKAGE.get(t.linkage, t.linkage)}")
        elif isinstance(t, BtfFuncProto):
            lines.append(f"{head} ret_type_id={t.return_type_id} vlen={len(t.params)}")
            lines += [f"\t{_quoted(p.name)} type_id={p.type_id}" for p in t.params]
        elif isinstance(t, BtfVar):
            lines.append(f"{head} type_id={t.type_id}, linkage={_LINKAGE.get(t.linkage, t.linkage)}")
        elif isinstance(t, BtfDatasec):
            lines.append(f"{head} size={t.size} vlen={len(t.vars)}")
            for v in t.vars:
                var = btf.type(v.type_id)
                lines.append(
                    f"\ttype_id={v.type_id} offset={v.offset} size={v.size} ({var.kind.name} {_quoted(var.name)})"
                )
        elif isinstance(t, BtfDeclTag):
            lines.append(f"{head} type_id={t.type_id} component_idx={t.component_idx}")
        elif isinstance(t, BtfRef):
            lines.append(f"{head} type_id={t.type_id}")
        elif t.size is not None:
            lines.append(f"{head} size={t.size}")
        else:
            lines.append(head)
    return lines


def btf_type_json(btf: Btf, t: BtfType) -> dict[str, Any]:
    """One type for ``pyaya inspect --btf --json``: ``id``, ``kind``, ``name``, ``size`` (as in ``btf_types``) plus
    what the kind carries: ``type_id``, ``members``, ``values``, ``params``, ``vars``, ``nelems``, ``linkage``."""
    entry: dict[str, Any] = {"id": t.id, "kind": t.kind.name, "name": t.name, "size": btf.size_of(t.id)}
    if isinstance(t, BtfInt):
        entry.update(bits=t.bits, bit_offset=t.bit_offset, encoding=_int_encoding(t))
    elif isinstance(t, BtfArray):
        entry.update(type_id=t.type_id, index_type_id=t.index_type_id, nelems=t.nelems)
    elif isinstance(t, BtfComposite):
        entry["members"] = [
            {
                "name": m.name,
                "type_id": m.type_id,
                "type": type_label(btf, m.type_id),
                "bit_offset": m.bit_offset,
                "bitfield_size": m.bitfield_size,
            }
            for m in t.members
        ]
    elif isinstance(t, BtfEnum):
        entry.update(signed=t.signed, values=[{"name": v.name, "value": v.value} for v in t.values])
    elif isinstance(t, BtfFwd):
        entry["fwd_kind"] = "union" if t.is_union else "struct"
    elif isinstance(t, BtfFunc):
        entry.update(type_id=t.type_id, linkage=_LINKAGE.get(t.linkage, str(t.linkage)))
    elif isinstance(t, BtfFuncProto):
        entry.update(return_type_id=t.return_type_id, params=[{"name": p.name, "type_id": p.type_id} for p in t.params])
    elif isinstance(t, BtfVar):
        entry.update(type_id=t.type_id, linkage=_LINKAGE.get(t.linkage, str(t.linkage)))
    elif isinstance(t, BtfDatasec):
        entry["vars"] = [
            {"type_id": v.type_id, "name": btf.name_of(v.type_id), "offset": v.offset, "size": v.size} for v in t.vars
        ]
    elif isinstance(t, BtfDeclTag):
        entry.update(type_id=t.type_id, component_idx=t.component_idx)
    elif isinstance(t, BtfRef):
        entry["type_id"] = t.type_id
    return entry


def type_label(btf: Btf, type_id: int, depth: int = 0) -> str:
    """A C-like name for a type: ``*u8``, ``const u32``, ``struct event``, ``u8[16]``."""
    if type_id == 0:
        return "void"
    t = btf.type(type_id)
    if depth > 8:
        return btf.describe(type_id)
    if isinstance(t, BtfPtr):
        return "*" + type_label(btf, t.type_id, depth + 1)
    if isinstance(t, BtfArray):
        return f"{type_label(btf, t.type_id, depth + 1)}[{t.nelems}]"
    if isinstance(t, BtfRef) and t.kind in (Kind.CONST, Kind.VOLATILE, Kind.RESTRICT) and not t.name:
        return f"{t.kind.name.lower()} {type_label(btf, t.type_id, depth + 1)}"
    if isinstance(t, BtfFuncProto):
        return "fn(...)"
    return btf.describe(type_id)


def btf_summary(btf: Btf, t: BtfType) -> str:
    """A few words about a type for the default table: its members, target, signature or values."""
    if isinstance(t, BtfComposite):
        names = ", ".join(m.name or "(anon)" for m in t.members[:6])
        return f"{{ {names}{', ...' if len(t.members) > 6 else ''} }}" if t.members else "{ }"
    if isinstance(t, BtfEnum):
        return f"{len(t.values)} values"
    if isinstance(t, BtfArray):
        return f"{type_label(btf, t.type_id)}[{t.nelems}]"
    if isinstance(t, BtfFunc):
        proto = btf.type(t.type_id)
        if isinstance(proto, BtfFuncProto):
            params = ", ".join(f"{p.name or '_'}: {type_label(btf, p.type_id)}" for p in proto.params)
            returns = type_label(btf, proto.return_type_id) if proto.return_type_id else "void"
            return f"fn({params}) -> {returns}"
        return ""
    if isinstance(t, BtfVar):
        return type_label(btf, t.type_id)
    if isinstance(t, BtfDatasec):
        return ", ".join(btf.name_of(v.type_id) for v in t.vars[:6]) + (", ..." if len(t.vars) > 6 else "")
    if isinstance(t, (BtfRef, BtfDeclTag)):
        return f"-> {type_label(btf, t.type_id) if t.type_id else 'void'}"
    return ""
