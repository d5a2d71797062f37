"""What is inside a BPF object: its programs, maps and BTF types, without loading anything (no privilege).

Programs and maps come from aya-obj's own parser (the native module's ``inspect_object``), so they are what
``Ebpf.load`` would see; the BTF types and source lines come from pyaya's native BTF reader.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyaya import _native
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
from pyaya.elf import Elf, read_object_file
from pyaya.errors import ObjectError

__all__ = [
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
    "source_location",
    "type_label",
]


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
class KernelFieldInfo:
    """A ``kernel_field!`` declaration: the global, the path, whether the load needs it, the size read."""

    name: str
    path: str
    required: bool
    type_size: int


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    programs: list[ProgramInfo] = field(default_factory=list)
    maps: list[MapInfo] = field(default_factory=list)
    btf_types: list[BtfTypeInfo] = field(default_factory=list)
    btf: Btf | None = field(default=None, repr=False, compare=False)
    """The object's parsed ``.BTF``, or None without one."""
    kernel_fields: list[KernelFieldInfo] = field(default_factory=list)
    """The kernel fields the load fills from the kernel's BTF (:mod:`pyaya.kernel_fields`)."""

    def to_json(self, *, btf_details: bool = False) -> dict[str, list[dict[str, Any]]]:
        """``{"programs": [...], "maps": [...], "btf_types": [...], "kernel_fields": [...]}``; with ``btf_details``
        each BTF type also carries what its kind holds (members, values, parameters, target type: see
        :func:`btf_type_json`)."""
        if btf_details and self.btf is not None:
            types = [btf_type_json(self.btf, self.btf.type(t.id)) for t in self.btf_types]
        else:
            types = [asdict(t) for t in self.btf_types]
        return {
            "programs": [asdict(p) for p in self.programs],
            "maps": [asdict(m) for m in self.maps],
            "btf_types": types,
            "kernel_fields": [asdict(f) for f in self.kernel_fields],
        }


def _btf_types(btf: Btf | None) -> list[BtfTypeInfo]:
    if btf is None:
        return []
    return [BtfTypeInfo(t.id, t.kind.name, t.name, btf.size_of(t.id)) for t in btf.types[1:]]


def inspect_bytes(data: bytes) -> ObjectInfo:
    """Programs, maps and BTF types of a BPF object held in memory.

    Raises :class:`ObjectError` when ``data`` is not a BPF ELF object or is malformed.
    """
    elf = Elf(data)
    if not elf.header.is_bpf:
        raise ObjectError(f"not a BPF object (ELF machine {elf.header.machine}, expected 247 for BPF)")
    btf = Btf.from_object(data)
    found: dict[str, list[dict[str, Any]]] = _native.inspect_object(data)
    programs = [ProgramInfo(str(p["name"]), str(p["section"]), str(p["type"])) for p in found["programs"]]
    maps = [
        MapInfo(str(m["name"]), str(m["type"]), int(m["key_size"]), int(m["value_size"]), int(m["max_entries"]))
        for m in found["maps"]
    ]
    from pyaya.kernel_fields import declarations  # noqa: PLC0415

    fields = [KernelFieldInfo(f.name, f.path, f.required, f.type_size) for f, _ in declarations(data)]
    return ObjectInfo(programs, maps, _btf_types(btf), btf, fields)


def inspect_file(path: str | Path) -> ObjectInfo:
    """:func:`inspect_bytes` on a file; a missing or unreadable file raises :class:`ObjectError` naming it."""
    data = read_object_file(path)
    try:
        return inspect_bytes(data)
    except ObjectError as error:
        raise ObjectError(f"{path}: {error}") from None


# -- source lines (.BTF.ext line_info) ---------------------------------------------------------------------------

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


def line_info(data: bytes) -> list[LineInfo]:
    """Every line_info record of the object's ``.BTF.ext``, in section order; empty without one.

    Offsets are in bytes from the start of their section, as the linker writes them (the kernel counts
    instructions instead: divide by 8).
    """
    return [LineInfo(*record) for record in _native.object_line_info(data)]


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
    data = read_object_file(path)
    try:
        elf = Elf(data)
        records = line_info(data)
    except ObjectError as error:
        raise ObjectError(f"{os.fspath(path)}: {error}") from None
    symbol = next((s for s in elf.symbols if s.name == program and s.is_function), None)
    section = elf.section_of(symbol) if symbol is not None else None
    if symbol is None or section is None:
        return None
    offset = symbol.value + insn * _INSN_SIZE
    if symbol.size and offset >= symbol.value + symbol.size:
        return None
    records = [r for r in records if r.section == section.name and symbol.value <= r.insn_offset]
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
