"""Return addresses to function names, for {{name}}'s stacks: kernel ones from /proc/kallsyms, user ones from the
ELF symbol tables (.symtab and .dynsym) of the files each process had mapped (/proc/PID/maps)."""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, field
from pathlib import Path

from pyaya import PyayaError
from pyaya.elf import Elf, SectionType

_SYMBOL = struct.Struct("<IBBHQQ")  # Elf64_Sym, little-endian
_STT_FUNC = 2
_SHF_ALLOC = 0x2


class KernelSymbols:
    """The kernel's text symbols (/proc/kallsyms; root sees the real addresses)."""

    def __init__(self, path: Path = Path("/proc/kallsyms")) -> None:
        entries: list[tuple[int, str]] = []
        try:
            with path.open() as lines:
                for line in lines:
                    parts = line.split()
                    if len(parts) >= 3 and parts[1] in "tTwW":
                        entries.append((int(parts[0], 16), parts[2]))
        except OSError:
            pass
        entries.sort()
        self._addresses = [address for address, _ in entries]
        self._names = [name for _, name in entries]

    def name(self, address: int) -> str:
        index = bisect.bisect_right(self._addresses, address) - 1
        if index < 0 or self._addresses[index] == 0:  # all zero: kptr_restrict hides them
            return f"0x{address:x}"
        return self._names[index]


@dataclass
class _FileSymbols:
    """Function symbols of one ELF file, and how its file offsets map to its addresses."""

    starts: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    segments: list[tuple[int, int, int]] = field(default_factory=list)  # (file offset, size, address)

    @classmethod
    def read(cls, path: Path) -> _FileSymbols:
        elf = Elf.from_path(path)
        symbols = cls()
        found: dict[int, tuple[int, str]] = {}
        for section in elf.sections:
            if section.flags & _SHF_ALLOC and section.type != SectionType.NOBITS and section.addr:
                symbols.segments.append((section.offset, section.size, section.addr))
            if section.type not in (SectionType.SYMTAB, SectionType.DYNSYM) or section.link >= len(elf.sections):
                continue
            strings = elf.section_data(elf.sections[section.link])
            raw = elf.section_data(section)
            for name_offset, info, _other, shndx, value, size in _SYMBOL.iter_unpack(raw[: len(raw) - len(raw) % 24]):
                if info & 0xF != _STT_FUNC or shndx == 0 or value == 0:
                    continue
                end = strings.find(b"\0", name_offset)
                name = strings[name_offset : end if end >= 0 else None].decode(errors="replace").split("@")[0]
                if value not in found or found[value][0] < size:
                    found[value] = (size, name)
        for start in sorted(found):
            size, name = found[start]
            symbols.starts.append(start)
            symbols.ends.append(start + size if size else 0)
            symbols.names.append(name)
        return symbols

    def name(self, file_offset: int) -> str | None:
        for offset, size, address in self.segments:
            if offset <= file_offset < offset + size:
                virtual = file_offset - offset + address
                break
        else:
            return None
        index = bisect.bisect_right(self.starts, virtual) - 1
        if index < 0 or (self.ends[index] and virtual >= self.ends[index]):
            return None
        return self.names[index]


class UserSymbols:
    """User-space addresses of processes, resolved through the mappings seen by :meth:`remember`."""

    def __init__(self) -> None:
        self._mappings: dict[int, list[tuple[int, int, int, str]]] = {}
        self._files: dict[str, _FileSymbols | None] = {}

    def remember(self, pid: int) -> None:
        """Read the executable mappings of `pid` now (it may have exited by the time its stacks are printed)."""
        if pid in self._mappings:
            return
        mappings = []
        try:
            with open(f"/proc/{pid}/maps") as lines:
                for line in lines:
                    parts = line.split(maxsplit=5)
                    if len(parts) == 6 and "x" in parts[1] and parts[5].startswith("/"):
                        start, end = (int(value, 16) for value in parts[0].split("-"))
                        mappings.append((start, end, int(parts[2], 16), parts[5].strip()))
        except OSError:
            return
        self._mappings[pid] = mappings

    def _file(self, path: str) -> _FileSymbols | None:
        if path not in self._files:
            try:
                self._files[path] = _FileSymbols.read(Path(path))
            except (OSError, PyayaError):
                self._files[path] = None
        return self._files[path]

    def name(self, pid: int, address: int) -> str:
        for start, end, offset, path in self._mappings.get(pid, ()):
            if start <= address < end:
                symbols = self._file(path)
                found = symbols.name(address - start + offset) if symbols is not None else None
                return found or f"{Path(path).name}+0x{address - start + offset:x}"
        return f"0x{address:x}"
