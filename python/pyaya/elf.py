"""ELF files as pyaya reads them: the header, section headers, sections by name, the symbol tables and the loadable
segments. The reading is native (``pyaya-core``, on the ``object`` crate), for either class and byte order;
anything truncated or malformed raises :class:`pyaya.errors.ObjectError` saying what is wrong and where.
"""

from __future__ import annotations

from enum import IntEnum

from pyaya import _native
from pyaya._record import frozen
from pyaya.errors import ObjectError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "SHF_ALLOC",
    "SHF_EXECINSTR",
    "SHF_WRITE",
    "SHN_UNDEF",
    "Elf",
    "ElfHeader",
    "Section",
    "SectionType",
    "Segment",
    "Symbol",
    "SymbolBinding",
    "SymbolType",
    "read_object_file",
]

EM_BPF = 247
PT_LOAD = 1

SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4

SHN_UNDEF = 0


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
    GNU_IFUNC = 10


class SymbolBinding(IntEnum):
    """``STB_*``: the high nibble of ``st_info``."""

    LOCAL = 0
    GLOBAL = 1
    WEAK = 2


@frozen
class ElfHeader:
    """What pyaya needs of ``Elf64_Ehdr``/``Elf32_Ehdr``."""

    endian: str
    """``"<"`` for little-endian objects (bpfel), ``">"`` for big-endian ones (bpfeb)."""
    is_64: bool
    os_abi: int
    type: int
    machine: int

    @property
    def little_endian(self) -> bool:
        return self.endian == "<"

    @property
    def is_bpf(self) -> bool:
        return self.machine == EM_BPF


@frozen
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


@frozen
class Symbol:
    """One symbol table entry with its name resolved; ``section`` is the index of the section it is defined in
    (extended indexes followed), None for undefined, absolute and common symbols."""

    index: int
    name: str
    value: int
    size: int
    type: int
    binding: int
    visibility: int
    shndx: int
    section: int | None

    @property
    def is_function(self) -> bool:
        return self.type == SymbolType.FUNC

    @property
    def is_global(self) -> bool:
        return self.binding in (SymbolBinding.GLOBAL, SymbolBinding.WEAK)


@frozen
class Segment:
    """One program header: ``type`` (``PT_LOAD`` is 1), where its bytes are in the file and where they load."""

    type: int
    offset: int
    vaddr: int
    filesz: int


class Elf:
    """A parsed ELF file: headers and symbols read eagerly, section data sliced on demand."""

    data: bytes
    header: ElfHeader
    sections: list[Section]
    symbols: list[Symbol]
    """The entries of ``.symtab`` (index 0, the null symbol, included), or an empty list without one."""
    dynamic_symbols: list[Symbol]
    """The entries of ``.dynsym``, likewise."""
    segments: list[Segment]

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self.data = bytes(data)
        header, sections, symbols, dynamic, segments = _native.read_elf(self.data)
        little, is_64, os_abi, e_type, machine = header
        self.header = ElfHeader("<" if little else ">", is_64, os_abi, e_type, machine)
        self.sections = [Section(*section) for section in sections]
        self.symbols = [Symbol(*symbol) for symbol in symbols]
        self.dynamic_symbols = [Symbol(*symbol) for symbol in dynamic]
        self.segments = [Segment(*segment) for segment in segments]
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

    @property
    def endian(self) -> str:
        return self.header.endian

    def section(self, name: str) -> Section | None:
        """The first section called ``name``, or None."""
        return self._by_name.get(name)

    def section_data(self, section: Section | str) -> bytes:
        """The bytes of a section (empty for ``.bss``-like sections); unknown names raise ObjectError."""
        if isinstance(section, str):
            found = self.section(section)
            if found is None:
                raise ObjectError(f"no section named {section!r}")
            section = found
        if not section.has_data:
            return b""
        return self.data[section.offset : section.offset + section.size]

    def symbols_in(self, section: Section) -> list[Symbol]:
        """Symbols defined in ``section``, by address (section symbols excluded)."""
        found = [s for s in self.symbols if s.section == section.index and s.type != SymbolType.SECTION]
        return sorted(found, key=lambda s: s.value)

    def section_of(self, symbol: Symbol) -> Section | None:
        """The section a symbol is defined in, or None for undefined, absolute and common symbols."""
        if symbol.section is None or symbol.section >= len(self.sections):
            return None
        return self.sections[symbol.section]


def read_object_file(path: str | Path) -> bytes:
    """The bytes of ``path``; a missing or unreadable file raises :class:`ObjectError` naming it."""
    try:
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError:
        raise ObjectError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ObjectError(f"{path}: is a directory, not an object file") from None
    except OSError as error:
        raise ObjectError(f"{path}: {error.strerror or error}") from None
