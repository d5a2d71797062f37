"""Names for instruction pointers: kernel addresses through ``/proc/kallsyms``, user addresses through
``/proc/PID/maps`` and the ELF symbol tables (``.symtab``, ``.dynsym``) of the mapped files.

``/proc/kallsyms`` shows real addresses only to root (with ``kptr_restrict`` allowing it); otherwise every address
reads as zero, and :class:`KernelSymbols` says so instead of resolving everything to the wrong name.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pyaya.elf import PT_LOAD, SHN_UNDEF, Elf, SymbolType
from pyaya.errors import ObjectError, PermissionDeniedError

__all__ = ["ElfSymbols", "KernelSymbols", "Symbol", "UserSymbols", "kernel_symbols", "resolve_stack"]

_FUNCTION_TYPES = (SymbolType.FUNC, SymbolType.GNU_IFUNC)
_KERNEL_SPACE = 0xFFFF_0000_0000_0000  # x86-64 and arm64 kernels live in the top half


@dataclass(frozen=True, slots=True)
class Symbol:
    """One resolved address: the function (``None`` when unknown), the offset into it, and where it lives
    (a kernel module, ``"kernel"``, or the path of an ELF file)."""

    address: int
    name: str | None
    offset: int = 0
    module: str | None = None

    def __str__(self) -> str:
        if self.name is None:
            where = f" ({self.module})" if self.module else ""
            return f"0x{self.address:x}{where}"
        suffix = f"+0x{self.offset:x}" if self.offset else ""
        module = f" [{self.module}]" if self.module and self.module not in ("kernel",) else ""
        return f"{self.name}{suffix}{module}"


class KernelSymbols:
    """The kernel's function symbols from ``/proc/kallsyms`` (needs root to see addresses)."""

    def __init__(self, path: str | os.PathLike[str] = "/proc/kallsyms") -> None:
        addresses: list[int] = []
        names: list[tuple[str, str]] = []
        zeroed = True
        with open(path, encoding="utf-8", errors="replace") as kallsyms:
            for line in kallsyms:
                parts = line.split()
                if len(parts) < 3 or parts[1] not in ("t", "T", "w", "W"):
                    continue
                address = int(parts[0], 16)
                if address:
                    zeroed = False
                module = parts[3].strip("[]") if len(parts) > 3 else "kernel"
                addresses.append(address)
                names.append((parts[2], module))
        self.zeroed = zeroed
        order = sorted(range(len(addresses)), key=addresses.__getitem__)
        self._addresses = [addresses[i] for i in order]
        self._names = [names[i] for i in order]

    def resolve(self, address: int) -> Symbol:
        """The function containing ``address`` (the nearest symbol at or below it)."""
        if self.zeroed:
            raise PermissionDeniedError(
                "/proc/kallsyms shows every address as 0: reading kernel symbols needs root "
                "(and kernel.kptr_restrict < 2); run as root"
            )
        index = bisect.bisect_right(self._addresses, address) - 1
        if index < 0:
            return Symbol(address, None, 0, "kernel")
        name, module = self._names[index]
        return Symbol(address, name, address - self._addresses[index], module)


@lru_cache(maxsize=1)
def kernel_symbols() -> KernelSymbols:
    """The kernel's symbols, read once per process."""
    return KernelSymbols()


class ElfSymbols:
    """Function symbols of one ELF file (``.symtab`` and ``.dynsym``) and its loadable segments, to turn file
    offsets into symbol addresses."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        elf = Elf.from_path(Path(path))
        self.path = str(path)
        self.segments = [(s.offset, s.vaddr, s.filesz) for s in elf.segments if s.type == PT_LOAD]
        symbols: dict[int, tuple[str, int]] = {}
        for symbol in (*elf.symbols, *elf.dynamic_symbols):
            if symbol.type not in _FUNCTION_TYPES or symbol.shndx == SHN_UNDEF or symbol.value == 0:
                continue
            if symbol.name and (symbol.value not in symbols or symbols[symbol.value][1] < symbol.size):
                symbols[symbol.value] = (symbol.name, symbol.size)
        self._addresses = sorted(symbols)
        self._symbols = [symbols[a] for a in self._addresses]

    def address_of_offset(self, file_offset: int) -> int | None:
        """The link-time virtual address at ``file_offset`` of the file, or ``None`` outside every segment."""
        for p_offset, p_vaddr, p_filesz in self.segments:
            if p_offset <= file_offset < p_offset + p_filesz:
                return file_offset - p_offset + p_vaddr
        return None

    def resolve(self, vaddr: int) -> tuple[str, int] | None:
        """``(name, offset)`` of the function containing link-time address ``vaddr``."""
        index = bisect.bisect_right(self._addresses, vaddr) - 1
        if index < 0:
            return None
        name, size = self._symbols[index]
        offset = vaddr - self._addresses[index]
        if size and offset >= size:
            return None
        return name, offset


@lru_cache(maxsize=64)
def _elf_symbols(path: str, _mtime: float) -> ElfSymbols:
    return ElfSymbols(path)


class UserSymbols:
    """Resolves addresses of process ``pid`` through its memory map (read once, at construction)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._mappings: list[tuple[int, int, int, str]] = []
        try:
            lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
        except FileNotFoundError:
            raise ObjectError(f"no process {pid} (it may have exited before its stacks were resolved)") from None
        for line in lines:
            parts = line.split(maxsplit=5)
            if len(parts) < 6 or "x" not in parts[1] or not parts[5].startswith("/"):
                continue
            start, end = (int(value, 16) for value in parts[0].split("-"))
            self._mappings.append((start, end, int(parts[2], 16), parts[5].strip()))

    def resolve(self, address: int) -> Symbol:
        for start, end, offset, path in self._mappings:
            if start <= address < end:
                # Files are read through /proc/PID/root so containers' paths work too.
                real = f"/proc/{self.pid}/root{path}"
                try:
                    symbols = _elf_symbols(real, os.stat(real).st_mtime)
                except (OSError, ObjectError):
                    return Symbol(address, None, 0, path)
                vaddr = symbols.address_of_offset(address - start + offset)
                found = symbols.resolve(vaddr) if vaddr is not None else None
                if found is None:
                    return Symbol(address, None, 0, path)
                return Symbol(address, found[0], found[1], path)
        return Symbol(address, None)


def resolve_stack(addresses: list[int], pid: int | None = None) -> list[Symbol]:
    """Symbols for a stack's instruction pointers: kernel addresses through kallsyms, others through ``pid``'s
    memory map (left unresolved without a ``pid``)."""
    user = UserSymbols(pid) if pid is not None else None
    frames = []
    for address in addresses:
        if address >= _KERNEL_SPACE:
            frames.append(kernel_symbols().resolve(address))
        elif user is not None:
            frames.append(user.resolve(address))
        else:
            frames.append(Symbol(address, None))
    return frames
