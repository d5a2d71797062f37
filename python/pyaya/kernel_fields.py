"""Kernel fields declared in an object (``pyaya_fields::kernel_field!``), filled from the kernel's BTF before load.

Rust eBPF programs get no CO-RE relocations, so a program reading ``task->real_parent->tgid`` cannot have its
offsets fixed by the loader the way libbpf fixes a C program's. A program instead declares each field once, by
path (``kernel_field!(PARENT_TGID: u32 = "task_struct.real_parent->tgid")``): the declaration is a ``.rodata``
global that starts with :data:`MAGIC` and holds its path. :meth:`pyaya.Ebpf.load` finds every one
(:func:`declarations`), resolves each path in the running kernel's BTF (:func:`resolve`) and writes the offsets, the
field's size and whether it exists into the global, as ``globals=`` would, so main.py holds no offset code.

Path syntax: ``struct.member`` (nested and anonymous members included: ``sk_buff.sk->__sk_common.skc_family``),
``->member`` after a pointer member to follow it, ``a|b`` for a member (or struct) renamed between kernels (the
first one the kernel has wins: ``task_struct.__state|state``).

>>> from pyaya.kernel_fields import resolve_path  # doctest: +SKIP
>>> resolve_path("task_struct.real_parent->tgid")  # doctest: +SKIP
KernelField(name='', path='task_struct.real_parent->tgid', ..., exists=True, offsets=(2504, 2428), size=4, ...)
"""

from __future__ import annotations

import contextlib
import os
import struct

from pyaya._cache import cache_folder
from pyaya._record import frozen, replace
from pyaya.errors import KernelFieldError, NotFoundError, PyayaError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal

    from pyaya.btf import Btf

__all__ = ["DECLARATION_SIZE", "MAGIC", "MAX_HOPS", "KernelField", "declarations", "fill", "resolve", "resolve_path"]

#: The first bytes of a declaration (crates/pyaya-fields' ``MAGIC``).
MAGIC = b"PYAYAKF1"
#: Most hops of a path (pointers followed, plus one), as the kernel side reads them.
MAX_HOPS = 4
_PATH_BYTES = 120
# The declaration's layout (crates/pyaya-fields/src/lib.rs, `KernelField`): magic, path, then u32 fields.
_REQUIRED_AT = 8 + _PATH_BYTES
_FILLED_AT = _REQUIRED_AT + 8
#: Size of one declaration in bytes.
DECLARATION_SIZE = _FILLED_AT + 16 + 4 * MAX_HOPS

# A name's characters (C identifiers, ASCII), for the path parser below: no re on the load path (a process may
# load after dropping the privileges that read the standard library; and a compile costs more than the parse).
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_REST = _NAME_START | frozenset("0123456789")


@frozen
class KernelField:
    """One declared kernel field and what the kernel's BTF says of it."""

    name: str
    """The global declaring it (the ``kernel_field!`` name)."""
    path: str
    """The path as declared, alternatives included."""
    required: bool
    type_size: int
    """The size of the type the program reads it as."""
    exists: bool = False
    offsets: tuple[int, ...] = ()
    """Byte offsets from the start of each struct on the path; all but the last lead to a pointer followed."""
    size: int = 0
    """The kernel field's size in bytes."""
    resolved: str = ""
    """The path with the alternatives the kernel has (``task_struct.__state``), empty when it does not exist."""
    missing: str = ""
    """Why the field does not exist, empty when it does."""


def _split(path: str, label: str) -> tuple[list[str], list[tuple[bool, list[str]]]]:
    """``path``'s struct names and its steps (through a pointer?, member names): ``NAMES ((. | ->) NAMES)+``, where
    ``NAMES`` is ``NAME(|NAME)*``."""

    def names_at(start: int) -> tuple[list[str], int]:
        names: list[str] = []
        while True:
            end = start
            if end < len(path) and path[end] in _NAME_START:
                end += 1
                while end < len(path) and path[end] in _NAME_REST:
                    end += 1
            if end == start:
                raise KernelFieldError(
                    f"{label} does not parse: write a struct name, then members, each after '.' (same struct) "
                    "or '->' (through a pointer), with '|' between alternatives: 'task_struct.real_parent->tgid'"
                )
            names.append(path[start:end])
            if not path.startswith("|", end):
                return names, end
            start = end + 1

    struct_names, at = names_at(0)
    steps: list[tuple[bool, list[str]]] = []
    while at < len(path) or not steps:
        arrow = path.startswith("->", at)
        if not arrow and not path.startswith(".", at):
            names_at(len(path))  # raises the message above
        names, at = names_at(at + (2 if arrow else 1))
        steps.append((arrow, names))
    return struct_names, steps


def resolve(btf: Btf, field: KernelField) -> KernelField:
    """``field`` with its offsets, size and existence in ``btf``. A missing struct or member gives a field that
    does not exist (whatever ``required`` says: :func:`fill` decides); a path that does not parse, a member used
    the wrong way (``.`` on a pointer, ``->`` on a non-pointer) or a bitfield raise :class:`KernelFieldError`."""
    from pyaya.btf import BtfComposite, BtfPtr, Kind  # noqa: PLC0415

    label = f"kernel field {field.name} ({field.path!r})" if field.name else f"kernel field path {field.path!r}"
    struct_names, steps = _split(field.path, label)

    def wrong(message: str) -> KernelFieldError:
        return KernelFieldError(f"{label}: {message}")

    composite = None
    for struct_name in struct_names:
        found = [t for t in btf.find_all(struct_name) if isinstance(t, BtfComposite)]
        if found:
            composite = found[0]
            break
    if composite is None:
        return replace(field, missing=f"the kernel has no struct or union {' or '.join(struct_names)}")
    type_id = composite.id
    walked = composite.name
    offset = 0
    offsets: list[int] = []
    for arrow, names in steps:
        current = btf.resolve(type_id)
        if arrow:
            if not isinstance(current, BtfPtr):
                raise wrong(f"{walked} is {btf.describe(type_id)}, not a pointer: write '.' before {names[0]}")
            offsets.append(offset)
            offset = 0
            current = btf.resolve(current.type_id)
            if current.kind == Kind.FWD:
                return replace(field, missing=f"{walked} points to {btf.describe(current.id)}, which the BTF lacks")
        elif isinstance(current, BtfPtr):
            raise wrong(f"{walked} is a pointer to {btf.describe(current.type_id)}: write '->' before {names[0]}")
        if not isinstance(current, BtfComposite):
            raise wrong(f"{walked} is {btf.describe(current.id)}, not a struct or union: it has no member {names[0]}")
        for name in names:
            try:
                bits, member = btf.member_bit_offset(current.id, name)
            except NotFoundError:
                continue
            break
        else:
            return replace(field, missing=f"{btf.describe(current.id)} has no member {' or '.join(names)}")
        if member.bitfield_size or bits % 8:
            raise wrong(f"{walked}{'->' if arrow else '.'}{name} is a bitfield: kernel fields are whole bytes")
        walked += f"{'->' if arrow else '.'}{name}"
        offset += bits // 8
        type_id = member.type_id
    offsets.append(offset)
    if len(offsets) > MAX_HOPS:
        raise wrong(f"the path follows {len(offsets) - 1} pointers; a kernel field follows at most {MAX_HOPS - 1}")
    size = btf.size_of(type_id)
    if not size:
        raise wrong(f"{walked} is {btf.describe(type_id)}, which has no size to read")
    return replace(field, exists=True, offsets=tuple(offsets), size=size, resolved=walked, missing="")


def resolve_path(path: str, btf: Btf | None = None) -> KernelField:
    """``path`` resolved in ``btf`` (default: the running kernel's), as the loader would fill a declaration."""
    from pyaya.btf import Btf  # noqa: PLC0415

    return resolve(Btf.vmlinux() if btf is None else btf, KernelField("", path, required=True, type_size=0))


def declarations(data: bytes) -> list[tuple[KernelField, bytes]]:
    """Every kernel field declared in the object ``data``, with the declaration's bytes, in symbol order."""
    if MAGIC not in data:
        return []
    from pyaya.elf import Elf, SymbolType  # noqa: PLC0415

    elf = Elf(data)
    order: Literal["little", "big"] = "little" if elf.endian == "<" else "big"
    found: list[tuple[KernelField, bytes]] = []
    contents: dict[str, bytes] = {}
    for symbol in elf.symbols:
        if symbol.type != SymbolType.OBJECT or symbol.size != DECLARATION_SIZE:
            continue
        section = elf.section_of(symbol)
        if section is None or not section.name.startswith(".rodata"):
            continue
        if section.name not in contents:
            contents[section.name] = elf.section_data(section)
        raw = contents[section.name][symbol.value : symbol.value + DECLARATION_SIZE]
        if raw[:8] != MAGIC or len(raw) != DECLARATION_SIZE:
            continue
        try:
            path = raw[8:_REQUIRED_AT].split(b"\0", 1)[0].decode("ascii")
        except UnicodeDecodeError:
            raise KernelFieldError(f"kernel field {symbol.name}: its path is not ASCII text") from None
        required = int.from_bytes(raw[_REQUIRED_AT : _REQUIRED_AT + 4], order) != 0
        type_size = int.from_bytes(raw[_REQUIRED_AT + 4 : _FILLED_AT], order)
        found.append((KernelField(symbol.name, path, required, type_size), raw))
    return found


def _encode(data: bytes, field: KernelField, order: Literal["little", "big"]) -> bytes:
    head = data[:_FILLED_AT]
    prefix = "<" if order == "little" else ">"
    offsets = list(field.offsets) + [0] * (MAX_HOPS - len(field.offsets))
    filled = struct.pack(f"{prefix}4I{MAX_HOPS}I", int(field.exists), len(field.offsets), field.size, 0, *offsets)
    return head + filled


def fill(
    data: bytes, given: set[str], btf: Btf | None = None, btf_label: str = ""
) -> tuple[dict[str, bytes], dict[str, KernelField]]:
    """The bytes of every kernel field the object ``data`` declares, filled from ``btf`` (default: the running
    kernel's; ``btf_label`` names a given one in messages), as ``globals=`` values by name, and the fields
    themselves. Names in ``given`` (globals the caller set) are left as the caller set them. Raises
    :class:`KernelFieldError` naming a required field the BTF lacks, with what was tried and the kernel's release."""
    declared = declarations(data)
    if not declared:
        return {}, {}
    from pyaya.variables import byte_order  # noqa: PLC0415

    order = byte_order(data)
    release = os.uname().release
    given_btf = btf is not None
    wanted = [(declaration, raw) for declaration, raw in declared if declaration.name not in given]
    known = {} if given_btf else _cached()
    kernel_error = ""
    if btf is None and any(declaration.path not in known for declaration, _ in wanted):
        from pyaya.btf import Btf  # noqa: PLC0415

        try:
            btf = Btf.vmlinux()
        except PyayaError as error:
            kernel_error = str(error)
    whose = f"{btf_label or 'the given BTF'} (loading on {release})" if given_btf else f"this kernel ({release})"
    values: dict[str, bytes] = {}
    fields: dict[str, KernelField] = {}
    resolved_now: dict[str, KernelField] = {}
    for declaration, raw in wanted:
        cached = known.get(declaration.path)
        if cached is not None:
            field = replace(
                cached, name=declaration.name, required=declaration.required, type_size=declaration.type_size
            )
        elif btf is None:
            field = replace(declaration, missing=f"the kernel's BTF cannot be read ({kernel_error})")
        else:
            field = resolve(btf, declaration)
            if not given_btf:
                resolved_now[declaration.path] = field
        if not field.exists and field.required:
            raise KernelFieldError(
                f"kernel field {field.name}: {whose} lacks {field.path}: {field.missing}; "
                f"declare it `kernel_field!(optional {field.name}: ...)` to load anyway and branch on "
                f"{field.name}.exists()"
            )
        values[field.name] = _encode(raw, field, order)
        fields[field.name] = field
    if resolved_now:
        _remember({**known, **resolved_now})
    return values, fields


# -- the running kernel's resolutions, cached for the boot ------------------------------------------------------
#
# Resolving a path needs the kernel's BTF: reading and parsing /sys/kernel/btf/vmlinux costs ~9 ms and ~10 MiB at
# every load, the largest part of a start-up (issue 13). The kernel's types cannot change until it reboots, so
# each path's resolution is kept in one file per boot (named by the kernel's boot_id, checked against the BTF's
# size): later loads in the same boot read a few hundred bytes instead. A missing, foreign or unreadable file only
# means resolving again; one that cannot be written is not an error. Fields resolved in a given BTF (``btf=``) are
# never cached.

_CACHE_FORMAT = "pyaya-kernel-fields 1"
_BOOT_ID = "/proc/sys/kernel/random/boot_id"
_VMLINUX = "/sys/kernel/btf/vmlinux"


def _cache_key() -> tuple[str, str] | None:
    """(the cache file's path, the header it must start with), or None when this kernel has no boot id or BTF."""
    try:
        with open(_BOOT_ID) as file:
            boot_id = file.read().strip()
        size = os.stat(_VMLINUX).st_size
    except OSError:
        return None
    if not boot_id.replace("-", "").isalnum():
        return None
    path = os.path.join(cache_folder(), "kernel-fields", f"{boot_id}.txt")
    return path, f"{_CACHE_FORMAT} boot={boot_id} vmlinux-size={size} release={os.uname().release}"


def _cached() -> dict[str, KernelField]:
    """The fields cached for this boot by path (``name`` empty), {} when there is no usable file."""
    key = _cache_key()
    if key is None:
        return {}
    path, header = key
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().split("\n")
    except (OSError, UnicodeDecodeError):
        return {}
    if not lines or lines[0] != header:
        return {}
    found: dict[str, KernelField] = {}
    for line in lines[1:]:
        if not line:
            continue
        columns = line.split("\t")
        if len(columns) != 6 or columns[1] not in ("0", "1"):
            return {}  # not a file this code wrote: resolve everything again
        field_path, exists, size, offsets, resolved, missing = columns
        try:
            numbers = tuple(int(offset) for offset in offsets.split(",")) if offsets else ()
            found[field_path] = KernelField(
                "", field_path, True, 0, exists == "1", numbers, int(size), resolved, missing
            )
        except ValueError:
            return {}
    return found


def _remember(fields: dict[str, KernelField]) -> None:
    """Write ``fields`` (by path) as this boot's cache file, atomically; files of other boots are removed."""
    key = _cache_key()
    if key is None:
        return
    path, header = key
    lines = [header]
    for field_path, field in sorted(fields.items()):
        texts = (field_path, field.resolved, field.missing)
        if any("\t" in text or "\n" in text for text in texts):
            continue
        offsets = ",".join(str(offset) for offset in field.offsets)
        lines.append(f"{field_path}\t{int(field.exists)}\t{field.size}\t{offsets}\t{field.resolved}\t{field.missing}")
    folder = os.path.dirname(path)
    scratch = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(folder, exist_ok=True)
        with open(scratch, "w", encoding="utf-8") as file:
            file.write("\n".join(lines) + "\n")
        os.replace(scratch, path)
        for name in os.listdir(folder):
            if name != os.path.basename(path) and name.endswith(".txt"):
                os.unlink(os.path.join(folder, name))
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(scratch)
