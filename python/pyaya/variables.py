"""An object's global variables at run time (``bpf.globals``), as libbpf's skeletons give them (``skel->bss->x``).

Each named ``static`` of a data section (``.bss``, ``.data``, ``.rodata`` and their ``.*`` variants; ``#[no_mangle]``
in Rust, any global in C) is an entry, typed from the object's BTF (its ``VAR``), else an unsigned integer of its
size (1, 2, 4 or 8 bytes) or ``bytes``. Reads and writes go through the kernel's memory map of the section's
array (no syscall per access) where the kernel allows it; see :mod:`pyaya._native`'s ``GlobalArea``. ``.rodata`` is
frozen at load: set its values with ``Ebpf.load_file(..., globals=...)``.

>>> bpf.globals["PACKETS"]  # doctest: +SKIP
1042
>>> bpf.globals["THRESHOLD"] = 100  # a .bss/.data variable: the programs see it at once  # doctest: +SKIP
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping

from pyaya._record import frozen
from pyaya.errors import ClosedError, MapError, NotFoundError, PyayaError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    from pyaya import _native
    from pyaya.btf import Btf
    from pyaya.loader import Ebpf

__all__ = ["DATA_SECTIONS", "GlobalInfo", "Globals", "byte_order", "encode", "layout"]

#: The prefixes of the sections whose named symbols are globals (aya makes each such section one array map).
DATA_SECTIONS = (".bss", ".data", ".rodata")


@frozen
class GlobalInfo:
    """Where a global lives: its section, its offset and size there, and the codec of its value."""

    name: str
    section: str
    offset: int
    size: int
    codec: Any
    """A :mod:`pyaya.types` codec (from the BTF), ``int`` (unsigned, of the object's byte order) or ``bytes``."""

    @property
    def read_only(self) -> bool:
        """A ``.rodata`` global: fixed at load."""
        return self.section.startswith(".rodata")


def _layout(ebpf: Ebpf) -> dict[str, GlobalInfo]:
    return {} if ebpf._data is None else layout(ebpf._data, ebpf.btf)


def layout(data: bytes, btf: Btf | None) -> dict[str, GlobalInfo]:
    """Every named global of the object ``data`` (whose parsed BTF is ``btf``), by name."""
    from pyaya.elf import Elf, SymbolType  # noqa: PLC0415
    from pyaya.types import Types  # noqa: PLC0415

    elf = Elf(data)
    var_types: dict[str, int] = {}
    if btf is not None:
        from pyaya.btf import BtfVar  # noqa: PLC0415

        var_types = {t.name: t.type_id for t in btf.types if isinstance(t, BtfVar)}
    types = Types(btf) if btf is not None else None
    found: dict[str, GlobalInfo] = {}
    for symbol in elf.symbols:
        # Compiler-made constants (Rust's `anon.<hash>.N`, C's `.L` labels) are not variables anyone named.
        if symbol.type != SymbolType.OBJECT or not symbol.name.isidentifier() or symbol.size == 0:
            continue
        section = elf.section_of(symbol)
        if section is None or not section.name.startswith(DATA_SECTIONS):
            continue
        codec: Any = int if symbol.size in (1, 2, 4, 8) else bytes
        if types is not None and symbol.name in var_types:
            node = types.by_id(var_types[symbol.name])
            if getattr(node, "size", None) == symbol.size:
                codec = node
        found[symbol.name] = GlobalInfo(symbol.name, section.name, symbol.value, symbol.size, codec)
    return found


def byte_order(data: bytes) -> Literal["little", "big"]:
    """The object's byte order (ELF ``EI_DATA``)."""
    return "big" if data[5:6] == b"\x02" else "little"


def encode(info: GlobalInfo, value: Any, byteorder: Literal["little", "big"]) -> bytes:
    """``value`` as the bytes of global ``info``: by its BTF type, else as an integer or bytes of its size. Raises
    :class:`~pyaya.MapError` naming the global when the value does not fit."""
    name = info.name
    if info.codec is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise MapError(f"global {name} is a {info.size}-byte integer, not {type(value).__name__}")
        try:
            return value.to_bytes(info.size, byteorder, signed=value < 0)
        except OverflowError:
            raise MapError(f"{value} does not fit global {name}'s {info.size} bytes") from None
    if info.codec is bytes:
        raw = bytes(value)
        if len(raw) != info.size:
            raise MapError(f"global {name} is {info.size} bytes, not {len(raw)}")
        return raw
    try:
        raw = info.codec.encode(value)
    except (TypeError, ValueError, OverflowError, struct.error, PyayaError) as error:
        raise MapError(f"global {name}: {error}") from None
    return bytes(raw)


class Globals(Mapping[str, "Any"]):
    """The object's globals by name: ``globals[name]`` reads the value now, ``globals[name] = value`` writes it
    (``.bss`` and ``.data``); :meth:`info` says where each lives."""

    def __init__(self, ebpf: Ebpf) -> None:
        self._ebpf = ebpf
        self._layout = _layout(ebpf)
        self._areas: dict[str, _native.GlobalArea] = {}
        self._byteorder = byte_order(ebpf._data or b"")

    def info(self, name: str) -> GlobalInfo:
        """Section, offset, size and codec of the global ``name``; :class:`~pyaya.NotFoundError` lists them."""
        try:
            return self._layout[name]
        except KeyError:
            known = ", ".join(sorted(self._layout)) or "none"
            raise NotFoundError(f"the object has no global {name!r}; its globals: {known}") from None

    def area(self, section: str) -> _native.GlobalArea:
        """The native view of one data section (``.mapped`` says whether it is memory-mapped)."""
        if self._ebpf.closed:
            raise ClosedError("the eBPF object is closed")
        area = self._areas.get(section)
        if area is None:
            area = self._areas[section] = self._ebpf._native.global_area(section)
        return area

    def __getitem__(self, name: str) -> Any:
        info = self.info(name)
        raw = self.area(info.section).read(info.offset, info.size)
        if info.codec is int:
            return int.from_bytes(raw, self._byteorder)
        if info.codec is bytes:
            return raw
        return info.codec.decode(raw)

    def __setitem__(self, name: str, value: Any) -> None:
        info = self.info(name)
        self.area(info.section).write(info.offset, encode(info, value, self._byteorder))

    def __iter__(self) -> Iterator[str]:
        return iter(self._layout)

    def __len__(self) -> int:
        return len(self._layout)

    def _close(self) -> None:
        """Let go of the sections' maps and memory maps (the object is closing)."""
        self._areas.clear()

    def __repr__(self) -> str:
        return f"<pyaya.Globals: {', '.join(self._layout) or 'none'}>"
