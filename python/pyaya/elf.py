"""A small, strict ELF64 reader: the header, section headers, sections by name and the symbol table.

Only what pyaya needs to look inside a BPF object without the native module (``pyaya inspect``, BTF lookup). Both
byte orders are read. Anything truncated or malformed raises :class:`pyaya.errors.ObjectError` with a message that
says what is wrong and where, never an ``IndexError`` or ``struct.error``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from functools import cached_property
from pathlib import Path

from pyaya.errors import ObjectError

__all__ = [
    "SHF_ALLOC",
    "SHF_EXECINSTR",
    "SHF_WRITE",
    "SHN_UNDEF",
    "Elf",
    "ElfHeader",
    "Section",
    "SectionType",
    "Symbol",
    "SymbolBinding",
    "SymbolType",
]

ELF_MAGIC = b"\x7fELF"
ELFCLASS64 = 2
ELFDATA2LSB = 1
ELFDATA2MSB = 2
EM_BPF = 247

SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4

SHN_UNDEF = 0
SHN_LORESERVE = 0xFF00
SHN_ABS = 0xFFF1
SHN_COMMON = 0xFFF2
SHN_XINDEX = 0xFFFF

_EHDR_SIZE = 64
_SHDR_SIZE = 64
_SYM_SIZE = 24


class SectionType(IntEnum):
    """``sh_type`` values pyaya cares about (others are kept as plain ints)."""

    NULL = 0
    PROGBITS = 1
    SYMTAB = 2
    STRTAB = 3
    RELA = 4
    HASH = 5
    DYNAMIC = 6
    NOTE = 7
    NOBITS = 8
    REL = 9
    DYNSYM = 11
    SYMTAB_SHNDX = 18
    LLVM_ADDRSIG = 0x6FFF4C03


class SymbolType(IntEnum):
    """``STT_*``: the low nibble of ``st_info``."""

    NOTYPE = 0
    OBJECT = 1
    FUNC = 2
    SECTION = 3
    FILE = 4
    COMMON = 5
    TLS = 6


class SymbolBinding(IntEnum):
    """``STB_*``: the high nibble of ``st_info``."""

    LOCAL = 0
    GLOBAL = 1
    WEAK = 2


@dataclass(frozen=True, slots=True)
class ElfHeader:
    """The fields of ``Elf64_Ehdr`` (after ``e_ident``), plus the byte order as a :mod:`struct` prefix."""

    endian: str
    """``"<"`` for little-endian objects (bpfel), ``">"`` for big-endian ones (bpfeb)."""
    os_abi: int
    type: int
    machine: int
    version: int
    entry: int
    phoff: int
    shoff: int
    flags: int
    ehsize: int
    phentsize: int
    phnum: int
    shentsize: int
    shnum: int
    shstrndx: int

    @property
    def little_endian(self) -> bool:
        return self.endian == "<"

    @property
    def is_bpf(self) -> bool:
        return self.machine == EM_BPF


@dataclass(frozen=True, slots=True)
class Section:
    """One section header, its resolved name and its index in the section header table."""

    index: int
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    info: int
    addralign: int
    entsize: int

    @property
    def is_executable(self) -> bool:
        return bool(self.flags & SHF_EXECINSTR)

    @property
    def has_data(self) -> bool:
        """False for ``SHT_NOBITS`` (``.bss``) and ``SHT_NULL``, whose bytes are not in the file."""
        return self.type not in (SectionType.NOBITS, SectionType.NULL)


@dataclass(frozen=True, slots=True)
class Symbol:
    """One ``Elf64_Sym`` with its name resolved."""

    index: int
    name: str
    value: int
    size: int
    type: int
    binding: int
    visibility: int
    shndx: int

    @property
    def is_function(self) -> bool:
        return self.type == SymbolType.FUNC

    @property
    def is_global(self) -> bool:
        return self.binding in (SymbolBinding.GLOBAL, SymbolBinding.WEAK)


def _cstr(table: bytes, offset: int, what: str) -> str:
    if offset >= len(table) and offset != 0:
        raise ObjectError(f"{what} name offset {offset} is outside its string table ({len(table)} bytes)")
    end = table.find(b"\0", offset)
    if end < 0:
        raise ObjectError(f"{what} name at offset {offset} is not NUL-terminated")
    return table[offset:end].decode("utf-8", errors="replace")


class Elf:
    """A parsed ELF64 file. Sections are read eagerly (headers only); section data is sliced on demand."""

    data: bytes
    header: ElfHeader
    sections: list[Section]

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self.data = bytes(data)
        self.header = self._parse_header()
        self.sections = self._parse_sections()
        self._by_name: dict[str, Section] = {}
        for section in self.sections:
            self._by_name.setdefault(section.name, section)

    @classmethod
    def from_path(cls, path: str | Path) -> Elf:
        """Read and parse ``path``; a missing or unreadable file raises :class:`ObjectError` naming it."""
        data = read_object_file(path)
        try:
            return cls(data)
        except ObjectError as error:
            raise ObjectError(f"{path}: {error}") from None

    # -- parsing ---------------------------------------------------------------------------------------------------

    def _parse_header(self) -> ElfHeader:
        data = self.data
        if len(data) < 4 or data[:4] != ELF_MAGIC:
            raise ObjectError(f"not an ELF file (magic {data[:4].hex(' ') or 'empty'}, expected 7f 45 4c 46)")
        if len(data) < _EHDR_SIZE:
            raise ObjectError(f"truncated: ELF header needs {_EHDR_SIZE} bytes, file has {len(data)}")
        ei_class, ei_data, ei_version, os_abi = data[4], data[5], data[6], data[7]
        if ei_class != ELFCLASS64:
            raise ObjectError(f"not an ELF64 file (EI_CLASS {ei_class}); BPF objects are 64-bit")
        if ei_data == ELFDATA2LSB:
            endian = "<"
        elif ei_data == ELFDATA2MSB:
            endian = ">"
        else:
            raise ObjectError(f"unknown ELF byte order (EI_DATA {ei_data})")
        if ei_version != 1:
            raise ObjectError(f"unknown ELF version {ei_version}")
        fields = struct.unpack_from(endian + "HHIQQQIHHHHHH", data, 16)
        (e_type, machine, version, entry, phoff, shoff, flags, ehsize, phentsize, phnum, shentsize, shnum, shstrndx) = (
            fields
        )
        return ElfHeader(
            endian,
            os_abi,
            e_type,
            machine,
            version,
            entry,
            phoff,
            shoff,
            flags,
            ehsize,
            phentsize,
            phnum,
            shentsize,
            shnum,
            shstrndx,
        )

    def _parse_sections(self) -> list[Section]:
        header, data = self.header, self.data
        if header.shoff == 0:
            return []
        if header.shentsize != _SHDR_SIZE:
            raise ObjectError(f"unexpected section header size {header.shentsize} (expected {_SHDR_SIZE})")
        fmt = struct.Struct(header.endian + "IIQQQQIIQQ")
        if header.shoff + _SHDR_SIZE > len(data):
            raise ObjectError(
                f"truncated: section header table starts at byte {header.shoff} of {len(data)}",
            )
        shnum, shstrndx = header.shnum, header.shstrndx
        first = fmt.unpack_from(data, header.shoff)
        if shnum == 0:  # extended numbering: the real count is in section 0's sh_size
            shnum = first[5]
        if shstrndx == SHN_XINDEX:
            shstrndx = first[6]
        end = header.shoff + shnum * _SHDR_SIZE
        if end > len(data):
            raise ObjectError(f"truncated: section header table ends at byte {end} of {len(data)}")
        raw = [fmt.unpack_from(data, header.shoff + i * _SHDR_SIZE) for i in range(shnum)]
        for i, (_, sh_type, _, _, offset, size, *_rest) in enumerate(raw):
            if sh_type not in (SectionType.NOBITS, SectionType.NULL) and offset + size > len(data):
                raise ObjectError(f"truncated: section {i} ends at byte {offset + size} of {len(data)}")
        names = b""
        if shstrndx != SHN_UNDEF:
            if shstrndx >= shnum:
                raise ObjectError(f"section name table index {shstrndx} out of range ({shnum} sections)")
            _, _, _, _, offset, size, *_rest = raw[shstrndx]
            names = data[offset : offset + size]
        sections = []
        for i, (name_off, sh_type, flags, addr, offset, size, link, info, align, entsize) in enumerate(raw):
            name = _cstr(names, name_off, f"section {i}") if names else ""
            sections.append(Section(i, name, sh_type, flags, addr, offset, size, link, info, align, entsize))
        return sections

    # -- queries ---------------------------------------------------------------------------------------------------

    @property
    def endian(self) -> str:
        return self.header.endian

    def section(self, name: str) -> Section | None:
        """The first section called ``name``, or None."""
        return self._by_name.get(name)

    def section_data(self, section: Section | str) -> bytes:
        """The bytes of a section (empty for ``.bss``-like sections); ``KeyError``-free: unknown names raise."""
        if isinstance(section, str):
            found = self.section(section)
            if found is None:
                raise ObjectError(f"no section named {section!r}")
            section = found
        if not section.has_data:
            return b""
        return self.data[section.offset : section.offset + section.size]

    @cached_property
    def symbols(self) -> list[Symbol]:
        """The entries of ``.symtab`` (index 0, the null symbol, included), or an empty list without one."""
        symtab = next((s for s in self.sections if s.type == SectionType.SYMTAB), None)
        if symtab is None:
            return []
        if symtab.entsize not in (0, _SYM_SIZE):
            raise ObjectError(f"unexpected symbol size {symtab.entsize} (expected {_SYM_SIZE})")
        if symtab.link >= len(self.sections):
            raise ObjectError(f"symbol table's string table index {symtab.link} is out of range")
        strtab = self.section_data(self.sections[symtab.link])
        raw = self.section_data(symtab)
        usable = len(raw) - len(raw) % _SYM_SIZE
        symbols = []
        for i, (name_off, info, other, shndx, value, size) in enumerate(
            struct.iter_unpack(self.endian + "IBBHQQ", raw[:usable]),
        ):
            name = _cstr(strtab, name_off, f"symbol {i}")
            symbols.append(Symbol(i, name, value, size, info & 0xF, info >> 4, other & 0x3, shndx))
        return symbols

    def symbols_in(self, section: Section) -> list[Symbol]:
        """Symbols defined in ``section``, by address (section symbols excluded)."""
        found = [s for s in self.symbols if s.shndx == section.index and s.type != SymbolType.SECTION]
        return sorted(found, key=lambda s: s.value)

    def section_of(self, symbol: Symbol) -> Section | None:
        """The section a symbol is defined in, or None for undefined, absolute and common symbols."""
        if symbol.shndx == SHN_UNDEF or symbol.shndx >= SHN_LORESERVE or symbol.shndx >= len(self.sections):
            return None
        return self.sections[symbol.shndx]


def read_object_file(path: str | Path) -> bytes:
    """The bytes of ``path``; a missing or unreadable file raises :class:`ObjectError` naming it."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ObjectError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ObjectError(f"{path}: is a directory, not an object file") from None
    except OSError as error:
        raise ObjectError(f"{path}: {error.strerror or error}") from None
