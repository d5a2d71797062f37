"""Build BTF blobs and BPF ELF objects byte by byte, so parser tests need no compiler."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

KIND = {
    "INT": 1, "PTR": 2, "ARRAY": 3, "STRUCT": 4, "UNION": 5, "ENUM": 6, "FWD": 7, "TYPEDEF": 8, "VOLATILE": 9,
    "CONST": 10, "RESTRICT": 11, "FUNC": 12, "FUNC_PROTO": 13, "VAR": 14, "DATASEC": 15, "FLOAT": 16,
    "DECL_TAG": 17, "TYPE_TAG": 18, "ENUM64": 19,
}  # fmt: skip


@dataclass
class BtfBuilder:
    """``add(kind, name, size_or_type, extra_words, vlen, kind_flag)`` returns the new type's id."""

    strings: bytearray = field(default_factory=lambda: bytearray(b"\0"))
    records: list[list[int]] = field(default_factory=list)

    def s(self, text: str) -> int:
        if not text:
            return 0
        offset = len(self.strings)
        self.strings += text.encode() + b"\0"
        return offset

    def add(
        self,
        kind: str,
        name: str,
        size_or_type: int,
        extra: tuple[int, ...] | list[int] = (),
        *,
        vlen: int = 0,
        kflag: bool = False,
    ) -> int:
        info = (KIND[kind] << 24) | vlen | (int(kflag) << 31)
        self.records.append([self.s(name), info, size_or_type, *extra])
        return len(self.records)

    def int_(self, name: str, size: int, signed: bool = False, char: bool = False, bits: int | None = None) -> int:
        enc = (1 if signed else 0) | (2 if char else 0)
        return self.add("INT", name, size, [(enc << 24) | (bits if bits is not None else size * 8)])

    def composite(self, kind: str, name: str, size: int, members: list[tuple[str, int, int, int]]) -> int:
        """members: (name, type id, bit offset, bitfield size); kind_flag is set when any bitfield is given."""
        kflag = any(m[3] for m in members)
        extra: list[int] = []
        for mname, mtype, bit_offset, bitfield in members:
            extra += [self.s(mname), mtype, (bitfield << 24 | bit_offset) if kflag else bit_offset]
        return self.add(kind, name, size, extra, vlen=len(members), kflag=kflag)

    def to_bytes(self, endian: str = "<") -> bytes:
        words = [w for record in self.records for w in record]
        types = struct.pack(f"{endian}{len(words)}I", *words)
        header = struct.pack(f"{endian}HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(self.strings))
        return header + types + bytes(self.strings)


@dataclass
class Sym:
    name: str
    section: str | None
    value: int = 0
    size: int = 0
    type: int = 2  # STT_FUNC
    bind: int = 1  # STB_GLOBAL


def build_elf(
    sections: list[tuple[str, int, int, bytes]],
    symbols: list[Sym],
    endian: str = "<",
    machine: int = 247,
) -> bytes:
    """sections: (name, sh_type, sh_flags, data) (for SHT_NOBITS, data's length is the size); a .symtab, .strtab
    and .shstrtab are appended."""
    names = {name: i + 1 for i, (name, *_rest) in enumerate(sections)}
    strtab = bytearray(b"\0")
    sym_entries = [struct.pack(f"{endian}IBBHQQ", 0, 0, 0, 0, 0, 0)]
    for sym in sorted(symbols, key=lambda s: s.bind != 0):  # locals first
        offset = len(strtab)
        strtab += sym.name.encode() + b"\0"
        shndx = names[sym.section] if sym.section else 0
        sym_entries.append(
            struct.pack(f"{endian}IBBHQQ", offset, (sym.bind << 4) | sym.type, 0, shndx, sym.value, sym.size)
        )
    all_sections = [
        *sections,
        (".symtab", 2, 0, b"".join(sym_entries)),
        (".strtab", 3, 0, bytes(strtab)),
    ]
    shstrtab = bytearray(b"\0")
    name_offsets = []
    for name, *_rest in [*all_sections, (".shstrtab", 3, 0, b"")]:
        name_offsets.append(len(shstrtab))
        shstrtab += name.encode() + b"\0"
    all_sections.append((".shstrtab", 3, 0, bytes(shstrtab)))
    body = bytearray()
    headers = [bytes(64)]
    symtab_index = len(sections) + 1
    for i, (_name, sh_type, flags, data) in enumerate(all_sections):
        offset = 64 + len(body)
        if sh_type != 8:
            body += data
            body += bytes(-len(body) % 8)
        link = symtab_index + 1 if sh_type == 2 else 0
        entsize = 24 if sh_type == 2 else 0
        info = 1 if sh_type == 2 else 0
        headers.append(
            struct.pack(
                f"{endian}IIQQQQIIQQ", name_offsets[i], sh_type, flags, 0, offset, len(data), link, info, 8, entsize
            )
        )
    shoff = 64 + len(body)
    ident = b"\x7fELF" + bytes([2, 1 if endian == "<" else 2, 1, 0]) + bytes(8)
    ehdr = ident + struct.pack(
        f"{endian}HHIQQQIHHHHHH", 1, machine, 1, 0, 0, shoff, 0, 64, 0, 0, 64, len(headers), len(headers) - 1
    )
    return ehdr + bytes(body) + b"".join(headers)


def call_relocated_against_data() -> bytes:
    """A socket filter whose call instruction is relocated against a data symbol in its own section, beside a legacy
    array map: aya-obj 0.3's relocate_calls reaches a ``todo!()`` for that symbol kind, after aya has created (and,
    with ``pin_maps``, pinned) the object's maps."""
    call = struct.pack("<BBhi", 0x85, 0x10, 0, -1)  # BPF_CALL, src_reg BPF_PSEUDO_CALL
    code = call + struct.pack("<BBhi", 0x95, 0, 0, 0)  # exit
    map_def = struct.pack("<5I", 2, 4, 8, 1, 0)  # an array of one u64
    sections = [("socket", 1, 0x6, code), (".relsocket", 9, 0, bytes(16)), ("maps", 1, 0x3, map_def)]
    data = bytearray(
        build_elf(
            [*sections, ("license", 1, 0x3, b"GPL\0")],
            [
                Sym("prog", "socket", 0, len(code)),
                Sym("odd", "socket", 0, 8, type=1),
                Sym("COUNTS", "maps", 0, len(map_def), type=1),
            ],
        )
    )
    # build_elf links only .symtab: point the relocation section at .symtab (sh_link) and at its program's section
    # (sh_info), then relocate instruction 0 against symbol 2 ("odd") with R_BPF_64_32.
    shoff = struct.unpack_from("<Q", data, 40)[0]
    rel_header = shoff + 2 * 64
    struct.pack_into("<II", data, rel_header + 40, len(sections) + 2, 1)
    rel_offset = struct.unpack_from("<Q", data, rel_header + 24)[0]
    struct.pack_into("<QQ", data, rel_offset, 0, (2 << 32) | 10)
    return bytes(data)
