"""Map keys with implicit padding, found in a built object's BTF (``pyaya build`` warns about them).

The kernel hashes and compares every byte of a hash map's key, padding included. User space (pyaya, libbpf,
bpftool) writes padding as zeros; a program that builds the key on its stack may leave garbage there, since Rust
moves a struct of scalars field by field (``core::mem::zeroed()`` does not survive the move). Then every update
adds an entry and every lookup from Python misses, silently. Keys without implicit padding cannot go wrong, so
the build names each padded key with the offsets of its holes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["HASHED_KEY_MAPS", "PaddedKey", "padded_keys", "padding_holes"]

#: Map types whose key bytes the kernel hashes or compares whole (a bloom filter hashes its value, its only datum).
HASHED_KEY_MAPS = frozenset(
    {"HashMap", "LruHashMap", "PerCpuHashMap", "LruPerCpuHashMap", "HashOfMaps", "SockHash", "BloomFilter"}
)


@dataclass(frozen=True, slots=True)
class PaddedKey:
    """A map whose hashed key type has bytes no field covers."""

    map_name: str
    type_name: str
    holes: tuple[tuple[int, int], ...]
    """``(offset, length)`` of each run of padding bytes."""

    def __str__(self) -> str:
        where = ", ".join(f"{length} at offset {offset}" for offset, length in self.holes)
        total = sum(length for _, length in self.holes)
        return (
            f"map {self.map_name}: its key type {self.type_name} has {total} padding byte(s) ({where}); the kernel "
            "hashes every key byte, so a key built on the program's stack with garbage there is a new entry, and "
            "lookups from user space (zero padding) miss. Make the padding explicit fields set to 0, or zero the "
            "key in place (docs/guide.md: 'A map key's padding is part of the key')."
        )


def padding_holes(node: object) -> tuple[tuple[int, int], ...]:
    """``(offset, length)`` of the bytes of a codec (:mod:`pyaya.types` node) that no field covers."""
    size = int(getattr(node, "size", 0))
    covered = bytearray(size)
    _cover(node, 0, covered)
    holes: list[tuple[int, int]] = []
    start: int | None = None
    for index in range(size + 1):
        hole = index < size and not covered[index]
        if hole and start is None:
            start = index
        elif not hole and start is not None:
            holes.append((start, index - start))
            start = None
    return tuple(holes)


def _cover(node: object, offset: int, covered: bytearray) -> None:
    from pyaya.types import RecordType, _Array, _Bitfield  # noqa: PLC0415

    if isinstance(node, RecordType):
        for field in node.fields:
            _cover(field.node, offset + field.offset, covered)
    elif isinstance(node, _Array) and node.element.size:
        element = node.element
        for index in range(node.count):
            _cover(element, offset + index * element.size, covered)
    elif isinstance(node, _Bitfield):
        covered[offset + node.first : offset + node.first + node.span] = b"\x01" * node.span
    else:
        size = int(getattr(node, "size", 0))
        covered[offset : offset + size] = b"\x01" * size


def padded_keys(path: str | Path) -> list[PaddedKey]:
    """The maps of the object at ``path`` whose hashed key type (from its BTF) has implicit padding."""
    from pyaya.inspect import inspect_file  # noqa: PLC0415
    from pyaya.types import RecordType, Types, map_types  # noqa: PLC0415

    info = inspect_file(path)
    if info.btf is None:
        return []
    found = map_types(Types(info.btf))
    padded = []
    for map_info in info.maps:
        if map_info.type not in HASHED_KEY_MAPS or map_info.name not in found:
            continue
        codecs = found[map_info.name]
        hashed = codecs.value if map_info.type == "BloomFilter" else codecs.key
        if not isinstance(hashed, RecordType):
            continue
        holes = padding_holes(hashed)
        if holes:
            padded.append(PaddedKey(map_info.name, hashed.label(), holes))
    return padded
