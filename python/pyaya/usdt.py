"""USDT probes (``<sys/sdt.h>``'s ``DTRACE_PROBE``/``STAP_PROBE`` sites): list a binary's probes, parse their
argument strings, and find the files a probe lives in for :meth:`pyaya.UProbe.attach_usdt`.

A USDT probe is a ``nop`` in the code plus a note in ``.note.stapsdt`` saying where each argument is at that point
(``-4@%eax``: a signed 4-byte value in ``eax``; ``8@-8(%rbp)``: 8 bytes in memory below ``rbp``; ``4@$5``: the
constant 5). pyaya attaches a uprobe at each location with a bpf cookie naming the location's argument specs,
which the kernel side reads with ``pyaya_usdt::usdt_arg(&ctx, n)`` (the ``pyaya-usdt`` crate).

>>> for probe in pyaya.usdt.probes("/usr/bin/python3"):  # doctest: +SKIP
...     print(probe.label, probe.arguments)
python:function__entry 8@%rbp 8@%r12 -4@%eax

Argument forms read (x86-64): registers of every width (``%rax``, ``%eax``, ``%ax``, ``%al``, ``%ah``,
``%r8d``...), memory at ``disp(%base)``, ``disp(%base,%index,scale)`` and ``(,%index,scale)``, globals as
``symbol(%rip)``, ``symbol+N(%rip)`` or a bare ``symbol`` (their address comes from the file's symbol tables), and
constants ``$N``. On arm64: ``xN``/``wN``/``sp``, ``[xN]``, ``[xN, #off]`` and constants. Refused, with the
reason: segment-relative operands (``%fs:...``), numeric ``%rip``-relative displacements, 32-bit address
registers, symbols combined with other registers, ``$symbol`` address constants, floating-point and vector
registers, and other machines' probes.
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

from pyaya import _native
from pyaya.errors import NotFoundError, ObjectError, ProgramError, UnsupportedError
from pyaya.libraries import library_matches, resolve_library

__all__ = ["Argument", "Probe", "parse_argument", "probe_files", "probes", "resolve_target"]


@dataclass(frozen=True)
class Argument:
    """One argument of a probe, as its note string describes it.

    ``kind`` is ``"constant"`` (the value is :attr:`value`), ``"register"`` (in :attr:`register`) or
    ``"memory"`` (at ``register + index * scale + value``, or at ``symbol + value`` for a global).
    """

    text: str
    size: int
    signed: bool
    kind: str
    value: int
    register: str | None
    index: str | None
    scale: int
    symbol: str | None

    def describe(self) -> str:
        """A short reading of the argument: ``s32 %eax``, ``u64 *(%rbp - 8)``, ``s64 *(global_counter)``."""
        width = f"{'s' if self.signed else 'u'}{self.size * 8}"
        if self.kind == "constant":
            return f"{width} {self.value}"
        if self.kind == "register":
            return f"{width} %{self.register}"
        parts = []
        if self.symbol is not None:
            parts.append(self.symbol)
        if self.register is not None:
            parts.append(f"%{self.register}")
        if self.index is not None:
            parts.append(f"%{self.index}*{self.scale}" if self.scale != 1 else f"%{self.index}")
        address = " + ".join(parts)
        if self.value > 0:
            address += f" + {self.value}"
        elif self.value < 0:
            address += f" - {-self.value}"
        return f"{width} *({address})"


def _host_arch() -> str:
    machine = platform.machine()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def parse_argument(text: str, arch: str | None = None) -> Argument:
    """Parse one argument string of a probe's note (``-4@%eax``) for ``arch`` (``x86_64`` or ``aarch64``;
    default: this machine's).

    Raises :class:`~pyaya.UnsupportedError` naming the argument and what pyaya cannot read in it.
    """
    size, signed, kind, value, register, index, scale, symbol = _native.usdt_parse_argument(text, arch or _host_arch())
    return Argument(text, size, signed, kind, value, register, index, scale, symbol)


@dataclass(frozen=True)
class Probe:
    """One location of a USDT probe in an ELF file (a probe used at several places has one entry per place).

    ``location``, ``base`` and ``semaphore`` are the note's addresses as ``readelf -n`` prints them;
    ``file_offset`` is where a uprobe attaches (after the ``.stapsdt.base`` adjustment of prelinked files),
    ``semaphore_offset`` where the semaphore is in the file (None without one); ``error`` says why an offset could
    not be computed.
    """

    path: Path
    provider: str
    name: str
    location: int
    base: int
    semaphore: int
    argument_texts: tuple[str, ...]
    file_offset: int | None
    semaphore_offset: int | None
    error: str | None
    arch: str | None
    machine: str

    @property
    def label(self) -> str:
        """``provider:name``, as bpftrace spells it."""
        return f"{self.provider}:{self.name}"

    @property
    def arguments(self) -> str:
        """The note's argument string (``8@%rbp 8@%r12 -4@%eax``)."""
        return " ".join(self.argument_texts)

    def parsed_arguments(self) -> list[Argument]:
        """Every argument parsed; raises :class:`~pyaya.UnsupportedError` naming the probe and the argument pyaya
        cannot read."""
        if self.arch is None:
            raise UnsupportedError(
                f"USDT probe {self.label} in {self.path}: the arguments of {self.machine} probes are not supported "
                "(x86_64 and aarch64 are)"
            )
        parsed = []
        for number, text in enumerate(self.argument_texts):
            try:
                parsed.append(parse_argument(text, self.arch))
            except UnsupportedError as error:
                raise UnsupportedError(f"USDT probe {self.label} in {self.path}, argument {number}: {error}") from None
        return parsed


def probes(path: str | os.PathLike[str]) -> list[Probe]:
    """Every USDT probe location of the ELF file at ``path`` (an executable or a shared library), in note order;
    empty when it has none. Needs no privilege.

    Raises :class:`~pyaya.NotFoundError` when there is no such file and :class:`~pyaya.ObjectError` when it is not
    an ELF file.
    """
    file = Path(path)
    arch, machine, rows = _native.usdt_probes(file)
    return [
        Probe(file, provider, name, location, base, semaphore, tuple(texts), offset, sem_offset, error, arch, machine)
        for provider, name, location, base, semaphore, texts, offset, sem_offset, error in rows
    ]


def _mapped_files(pid: int) -> list[Path]:
    """The executable and the files mapped executable by process ``pid``, as seen from its root."""
    root = Path(f"/proc/{pid}/root")
    try:
        lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    except FileNotFoundError:
        raise NotFoundError(f"no process {pid}: it is not running (no /proc/{pid})") from None
    except PermissionError:
        raise ProgramError(f"cannot read /proc/{pid}/maps: run as root to trace another user's process") from None
    files: list[Path] = []
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or "x" not in fields[1] or not fields[5].startswith("/"):
            continue
        path = fields[5].removesuffix(" (deleted)")
        candidate = root / path.lstrip("/")
        if candidate not in files:
            files.append(candidate)
    return files


def resolve_target(target: str | os.PathLike[str], pid: int | None = None) -> Path:
    """The ELF file ``target`` names: a path, else a library name (``libc``, ``libpthread.so.0``: first among
    the libraries process ``pid`` maps, then in ld.so's cache), else a program on ``PATH`` (``python3``)."""
    text = os.fspath(target)
    if "/" in text:
        path = Path(text)
        if not path.exists():
            raise NotFoundError(f"USDT target {path}: no such file")
        return path
    if pid is not None:
        for mapped in _mapped_files(pid):
            if library_matches(text, mapped.name):
                return mapped
    library = resolve_library(text)
    if library is not None:
        return library
    program = shutil.which(text)
    if program is not None:
        return Path(program).resolve()
    raise NotFoundError(
        f"USDT target {text!r} is neither a path, a shared library this system knows (ld.so's cache) nor a program "
        "on PATH: give the path of the executable or library"
    )


def probe_files(target: str | os.PathLike[str] | int, provider: str, name: str, pid: int | None = None) -> list[Path]:
    """The files :meth:`~pyaya.UProbe.attach_usdt` attaches in: the one ``target`` names, or, when ``target`` is a
    process id, every file that process maps (its executable, its libraries) holding probe ``provider:name``."""
    if isinstance(target, bool):
        raise ProgramError(f"USDT target {target!r} is neither a path nor a process id")
    if isinstance(target, int):
        found = []
        examined = _mapped_files(target)
        for path in examined:
            try:
                listed = probes(path)
            except (NotFoundError, ObjectError):  # gone since, or not ELF (a mapped cache file)
                continue
            if any(probe.provider == provider and probe.name == name for probe in listed):
                found.append(path)
        if not found:
            shown = ", ".join(str(path) for path in examined[:8]) + (", ..." if len(examined) > 8 else "")
            raise NotFoundError(
                f"process {target} maps no file with USDT probe {provider}:{name} (examined {shown}); "
                "`pyaya inspect --usdt FILE` lists a file's probes"
            )
        return found
    return [resolve_target(target, pid)]
