"""Build-time fixes that make the objects aya-ebpf emits acceptable to libbpf as well (``pyaya build`` runs them).

aya-ebpf 0.2's ``#[btf_map] btf_maps::RingBuf<T, N>`` describes its record type as the definition's ``value``
member (a pointer to ``T``) and also declares ``value_size`` 0, as ring buffers need: libbpf (>= 1.0, bpftool,
libbpf-tools' loaders) reads both and refuses the object ("map 'EVENTS': conflicting value size 20 != 0"). The
fix keeps the record type where readers of the BTF find it but gives it size 0: ``value`` points to ``T[0]``, a
zero-length array of ``T``. aya sizes the map the same (value size 0), libbpf opens it, and pyaya's typed streams
take the element type of that array as the record type (:func:`pyaya.types.map_types`).

The ``.BTF`` section grows by two types per such map; it is written anew at the end of the ELF file and its
section header points there (nothing else in the file moves, so no other offset changes). Idempotent: a fixed
object has nothing left to fix.
"""

from __future__ import annotations

import struct
from pathlib import Path

from pyaya.btf import Btf, BtfArray, BtfComposite, BtfDatasec, BtfPtr, BtfVar
from pyaya.elf import Elf

__all__ = ["fix_file", "fixed", "ring_value_members"]

_BTF_MAGIC = 0xEB9F
_HEADER = struct.Struct("<HBBIIIII")  # magic, version, flags, hdr_len, type_off, type_len, str_off, str_len
_TYPE = struct.Struct("<III")  # name_off, info, size_or_type
_KIND_PTR, _KIND_ARRAY = 2, 3
_MAP_TYPE_RINGBUF = 27
# Bytes after the common 12-byte header, by kind: a fixed part and a part per vlen entry.
# INT, ARRAY, STRUCT, UNION, ENUM, FUNC_PROTO, VAR, DATASEC, DECL_TAG, ENUM64; the other kinds have no extra bytes.
_EXTRA = {
    1: (4, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 13: (0, 8), 14: (4, 0), 15: (0, 12), 17: (4, 0),
    19: (0, 12),
}  # fmt: skip
_SHDR = struct.Struct("<IIQQQQIIQQ")  # Elf64_Shdr


def _type_offsets(types: bytes) -> list[int]:
    """The offset of each type (id 1, 2, ...) in the type section (index 0 stands for void)."""
    offsets = [-1]
    position = 0
    while position < len(types):
        offsets.append(position)
        _, info, _ = _TYPE.unpack_from(types, position)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        fixed, per_entry = _EXTRA.get(kind, (0, 0))
        position += _TYPE.size + fixed + per_entry * vlen
    return offsets


def ring_value_members(btf: Btf) -> list[tuple[str, int, int, int, int]]:
    """(map name, definition struct id, index of its ``value`` member, record type id, array index type id) of
    every ``.maps`` ring buffer whose ``value`` points to a sized type while it also declares ``value_size``."""
    found = []
    for datasec in btf:
        if not isinstance(datasec, BtfDatasec) or datasec.name != ".maps":
            continue
        for info in datasec.vars:
            var = btf.type(info.type_id)
            definition = btf.resolve(var.type_id) if isinstance(var, BtfVar) else None
            if not isinstance(definition, BtfComposite):
                continue
            members = {m.name: (index, m.type_id) for index, m in enumerate(definition.members)}
            if not {"type", "value", "value_size"} <= members.keys():
                continue
            kind_pointer = btf.resolve(members["type"][1])
            kind = btf.resolve(kind_pointer.type_id) if isinstance(kind_pointer, BtfPtr) else None
            if not isinstance(kind, BtfArray) or kind.nelems != _MAP_TYPE_RINGBUF:
                continue
            index, value_type = members["value"]
            pointer = btf.resolve(value_type)
            if not isinstance(pointer, BtfPtr):
                continue
            record = btf.resolve(pointer.type_id)
            if isinstance(record, BtfArray) and record.nelems == 0:
                continue  # fixed already
            if (btf.size_of(pointer.type_id) or 0) == 0:
                continue
            found.append((var.name, definition.id, index, pointer.type_id, kind.index_type_id))
    return found


def fixed(data: bytes) -> bytes | None:
    """``data`` (a BPF ELF object) with the fixes applied, or None when it needs none."""
    elf = Elf(data)
    section = elf.section(".BTF")
    if section is None:
        return None
    btf = Btf.from_object(data)
    if btf is None:
        return None
    targets = ring_value_members(btf)
    if not targets:
        return None
    raw = bytearray(elf.section_data(section))
    magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = _HEADER.unpack_from(raw)
    if magic != _BTF_MAGIC:
        return None
    types_start = hdr_len + type_off
    types = bytearray(raw[types_start : types_start + type_len])
    strings = bytes(raw[hdr_len + str_off : hdr_len + str_off + str_len])
    offsets = _type_offsets(bytes(types))
    next_id = len(offsets)
    added = bytearray()
    for _, struct_id, member_index, record_id, index_type in targets:
        array_id, pointer_id = next_id, next_id + 1
        next_id += 2
        added += _TYPE.pack(0, _KIND_ARRAY << 24, 0) + struct.pack("<III", record_id, index_type, 0)
        added += _TYPE.pack(0, _KIND_PTR << 24, array_id)
        member_type_at = offsets[struct_id] + _TYPE.size + 12 * member_index + 4
        struct.pack_into("<I", types, member_type_at, pointer_id)
    types += added
    header = _HEADER.pack(magic, version, flags, hdr_len, 0, len(types), len(types), len(strings))
    new_btf = header + bytes(raw[_HEADER.size : hdr_len]) + bytes(types) + strings
    return _with_section_moved(data, section.index, new_btf)


def _with_section_moved(data: bytes, index: int, contents: bytes) -> bytes:
    """The ELF file with section ``index``'s contents replaced by ``contents``, placed at the end of the file."""
    out = bytearray(data)
    out += b"\0" * (-len(out) % 8)
    offset = len(out)
    out += contents
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    (shentsize,) = struct.unpack_from("<H", data, 0x3A)
    at = shoff + index * shentsize
    fields = list(_SHDR.unpack_from(data, at))
    fields[4], fields[5] = offset, len(contents)
    _SHDR.pack_into(out, at, *fields)
    return bytes(out)


def fix_file(path: str | Path) -> bool:
    """Apply :func:`fixed` to the object at ``path`` in place (same inode: cargo's hard links see it too);
    True when something changed."""
    target = Path(path)
    result = fixed(target.read_bytes())
    if result is None:
        return False
    with open(target, "r+b") as file:
        file.write(result)
        file.truncate()
    return True
