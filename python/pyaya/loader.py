"""The Python face of the loader: objects, programs and maps with the shapes Python users expect.

``pyaya._native`` (Rust over aya) owns every fd and does every syscall; this module gives it mappings, context
managers, iteration and typed keys and values.
"""

from __future__ import annotations

import os
import resource
import sys
import warnings
import weakref
from collections.abc import Iterable, Iterator, Mapping
from functools import cached_property
from types import MappingProxyType

from pyaya import _args, _native
from pyaya.btf import Btf
from pyaya.errors import InvalidArgumentTypeError, NotFoundError, ObjectError, PyayaError
from pyaya.kernel_fields import KernelField
from pyaya.kernel_fields import fill as fill_kernel_fields
from pyaya.maps import Buffer, Map, wrap_map
from pyaya.programs import Program, class_for
from pyaya.types import MapTypes, Types, apply_btf_types, map_types

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from types import TracebackType
    from typing import Any

    from pyaya.variables import Globals

__all__ = ["Ebpf", "Maps", "Programs", "loaded_links", "loaded_maps", "loaded_programs"]

#: The logger kernel-side log records go to (``pyaya.ebpf.<target>``).
EBPF_LOGGER = "pyaya.ebpf"
# logging's level numbers, so that a load need not import logging (~12 ms) to compare them.
_DEBUG, _INFO, _WARNING, _ERROR = 10, 20, 30, 40


#: Where kernel-side log records go instead of logging while a :class:`pyaya.runtime.Session` runs (the last one
#: set wins): ``sink(level, target, message)``. A session shows every record itself, and would otherwise import
#: logging (~12 ms of its start-up) only to be handed them back.
_log_sinks: list[Callable[[int, str, str], None]] = []


def _forward_log(level: int, target: str, message: str) -> None:
    """Hands one aya-log record from the kernel to the session's sink, else to Python's logging, under
    ``pyaya.ebpf.<target>``."""
    if _log_sinks:
        _log_sinks[-1](level, target, message)
        return
    import logging  # noqa: PLC0415 - imported with the first record, not with pyaya

    logging.getLogger(f"{EBPF_LOGGER}.{target}" if target else EBPF_LOGGER).log(level, message)


def _effective_log_level() -> int:
    """The effective level of the ``pyaya.ebpf`` logger: WARNING, logging's default, while nothing has imported
    logging (nothing can have configured it then)."""
    logging = sys.modules.get("logging")
    if logging is None:
        return _WARNING
    level: int = logging.getLogger(EBPF_LOGGER).getEffectiveLevel()
    return level


def aya_log_level(level: int) -> int:
    """aya-log's level number (5 trace, 4 debug, 3 info, 2 warn, 1 error, 0 off) that lets through the records
    Python ``logging`` shows at ``level`` (aya-log's trace records arrive at level 5)."""
    for threshold, aya_level in (
        (5, 5),
        (_DEBUG, 4),
        (_INFO, 3),
        (_WARNING, 2),
        (_ERROR, 1),
    ):
        if level <= threshold:
            return aya_level
    return 0


def _target_btf(btf: object) -> tuple[Btf | None, str]:
    """``btf=`` of a load, parsed, and how messages name it."""
    if btf is None:
        return None, ""
    if isinstance(btf, Btf):
        return btf, "the given BTF"
    if not isinstance(btf, (str, os.PathLike)):
        raise InvalidArgumentTypeError(f"btf must be a pyaya.Btf or the path of a BTF file, not {type(btf).__name__}")
    path = os.fspath(btf)
    if not os.path.isfile(path):
        raise NotFoundError(
            f"btf={path}: no such file (give a raw BTF file, like /sys/kernel/btf/vmlinux, "
            "or an ELF file with a .BTF section)"
        )
    try:
        parsed = Btf.from_path(path)
    except PyayaError as error:
        raise ObjectError(f"btf={path}: {error}") from None
    return parsed, f"the BTF in {path}"


def _kconfig_values() -> dict[str, str]:
    """What a C object's ``__kconfig`` externs read, as libbpf fills them: the kernel's config (/proc/config.gz,
    else /boot/config-$(uname -r); an option that "is not set" reads as ``n``) and ``LINUX_KERNEL_VERSION``."""
    from pyaya import features  # noqa: PLC0415 (read only for objects with __kconfig externs)

    found = features.kernel_config()
    values = dict(found[0]) if found is not None else {}
    values["LINUX_KERNEL_VERSION"] = str(linux_kernel_version())
    return values


def linux_kernel_version(release: str | None = None, version: str | None = None) -> int:
    """``LINUX_KERNEL_VERSION`` as libbpf computes it: ``KERNEL_VERSION(major, minor, patch)`` of ``uname -r``
    (the patch capped at 255), or of the ``Debian X.Y.Z`` in ``uname -v`` where there is one (Debian's release
    names say ``6.1.0`` for every 6.1 kernel)."""
    import re  # noqa: PLC0415

    from pyaya.features import kernel_version  # noqa: PLC0415

    debian = re.search(r"Debian (\d+)\.(\d+)\.(\d+)", os.uname().version if version is None else version)
    if debian is not None:
        major, minor, patch = (int(part) for part in debian.groups())
    else:
        major, minor, patch = kernel_version(release)
    return (major << 16) + (minor << 8) + min(patch, 255)


def _kernel_needs_memlock() -> bool:
    """Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones use the memory cgroup."""
    release = os.uname().release.split("-")[0].split(".")
    try:
        major, minor = int(release[0]), int(release[1])
    except (IndexError, ValueError):
        return True
    return (major, minor) < (5, 11)


def _raise_memlock_limit() -> None:
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError) as error:
        warnings.warn(
            f"could not raise RLIMIT_MEMLOCK ({error}); this kernel ({os.uname().release}) may fail to create "
            "large maps: run as root with CAP_SYS_RESOURCE or raise the limit with `ulimit -l unlimited`",
            RuntimeWarning,
            stacklevel=3,
        )


def _global_bytes(data: bytes, values: Mapping[object, object]) -> dict[str, bytes]:
    """``globals=`` as bytes: buffers as they are, other values encoded as the global's BTF type (or an integer
    of its size) says (:mod:`pyaya.variables`). A name the object lacks is left to the native load, which refuses
    it listing the globals there are."""
    found: dict[str, bytes] = {}
    layout: dict[str, Any] | None = None
    for key, value in values.items():
        name = _args.string(key, "a name in globals")
        if isinstance(value, bytes | bytearray | memoryview) or _has_buffer(value):
            found[name] = _args.buffer(value, f"globals[{name!r}]")
            continue
        if layout is None:
            from pyaya.variables import layout as globals_layout  # noqa: PLC0415 - only for plain values

            layout = globals_layout(data, Btf.from_object(data))
        info = layout.get(name)
        if info is None:
            found[name] = b""  # the native load refuses it, listing the globals (or saying it is a map)
            continue
        from pyaya.variables import byte_order, encode  # noqa: PLC0415

        found[name] = encode(info, value, byte_order(data))
    return found


def _has_buffer(value: object) -> bool:
    try:
        memoryview(value)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


class Ebpf:
    """A loaded BPF object: its maps exist in the kernel, its programs are ready to load and attach.

    Use it as a context manager: leaving the block detaches every link no :class:`~pyaya.Link` handle holds, unloads
    every program and closes every map. Dropping the last reference to the object does the same at once (nothing
    here makes a reference cycle, so no garbage collection is needed); a program or map handle keeps its object.

    >>> with Ebpf.load_file("target/bpfel-unknown-none/release/execwatch") as bpf:  # doctest: +SKIP
    ...     bpf.programs["execwatch"].load()
    """

    def __init__(self, native: _native.Ebpf, path: Path | None = None, *, data: bytes | None = None) -> None:
        self._native = native
        self._path: str | Path | None = path
        self._data = data
        native.set_log_handler(_forward_log)
        # The views below refer to this object; it keeps their contents but not the views, so that nothing here is
        # a reference cycle. Map handles refer to their object, so the object keeps them weakly.
        self._programs: dict[str, Program] = {}
        self._maps: weakref.WeakValueDictionary[str, Map] = weakref.WeakValueDictionary()
        self._kernel_fields: dict[str, KernelField] = {}

    @property
    def path(self) -> Path | None:
        """The file :meth:`load_file` read, None for :meth:`load`."""
        if isinstance(self._path, str):
            from pathlib import Path  # noqa: PLC0415 - load_file keeps a str: pathlib costs ~9 ms to import

            self._path = Path(self._path)
        return self._path

    @path.setter
    def path(self, value: Path | None) -> None:
        self._path = value

    @property
    def programs(self) -> Programs:
        """The object's programs by name, each as its typed class."""
        return Programs(self)

    @property
    def maps(self) -> Maps:
        """The object's maps by name, each as its typed class (the same handle while anyone holds it)."""
        return Maps(self)

    @cached_property
    def globals(self) -> Globals:
        """The object's global variables by name (``.bss``, ``.data``, ``.rodata``): ``bpf.globals["COUNT"]`` reads
        the value the programs see now, ``bpf.globals["LIMIT"] = 10`` writes it (not ``.rodata``, frozen at load:
        set it with ``load_file(..., globals=...)``); memory-mapped where the kernel allows (no syscall per
        access)."""
        from pyaya.variables import Globals  # noqa: PLC0415

        return Globals(self)

    @property
    def kernel_fields(self) -> Mapping[str, KernelField]:
        """The kernel fields the object declares (``pyaya_fields::kernel_field!``) by global name, as the loader
        filled them from the running kernel's BTF: offsets, size, whether each exists (see
        :mod:`pyaya.kernel_fields`). Fields set through ``globals=`` are not in here."""
        return MappingProxyType(self._kernel_fields)

    @cached_property
    def btf(self) -> Btf | None:
        """The object's own BTF (its ``.BTF`` section), None when it was built without one."""
        if self._data is None:
            return None
        try:
            return Btf.from_object(self._data)
        except PyayaError as error:
            # aya loaded the object, so its BTF is at least readable to aya: keep going, without typed data.
            warnings.warn(f"the object's BTF cannot be read ({error}): its maps stay untyped", stacklevel=2)
            return None

    @cached_property
    def types(self) -> Types:
        """The object's named types (``#[repr(C)]`` structs, enums...) by name, each a codec that decodes bytes to
        a record with named fields: ``bpf.types["ExecEvent"](data).pid``. Names the BTF lacks come from the object's
        DWARF when it was built with ``-g`` (read only when such a name is asked for)."""
        btf = self.btf
        data = self._data
        dwarf = (lambda: _native.btf_from_dwarf(data)) if data is not None else None
        if btf is None:
            empty = Btf.from_bytes(_EMPTY_BTF)
            return Types(empty, dwarf)
        return Types(btf, dwarf)

    @cached_property
    def map_types(self) -> dict[str, MapTypes]:
        """Key and value codecs of the maps whose BTF reveals them, by map name."""
        return map_types(self.types) if self.btf is not None else {}

    @classmethod
    def load(
        cls,
        data: Buffer,
        *,
        globals: Mapping[str, object] | None = None,
        max_entries: Mapping[str, int] | None = None,
        log_level: int | None = None,
        pin_maps: str | os.PathLike[str] | None = None,
        btf: str | os.PathLike[str] | Btf | None = None,
        extensions: Iterable[str] | None = None,
    ) -> Ebpf:
        """Load an object from its bytes.

        ``globals`` sets globals (``#[no_mangle] static`` items, C's ``const volatile`` and other globals) by name
        before load: plain Python values (ints, strings, records, as the global's BTF type says), or bytes or
        ctypes values of the global's size; ``max_entries`` resizes maps by name before they are created (1 to 2**32 - 1
        entries). A name that is not a global (or a map) of the object, or a value of another size, raises
        :class:`~pyaya.InvalidArgumentError` listing the globals (or maps) the object has.

        ``log_level`` (a :mod:`logging` level; default: the effective level of the ``pyaya.ebpf`` logger) is
        applied in the kernel: aya-log records below it are never sent.

        ``pin_maps`` (a folder on bpffs, e.g. ``/sys/fs/bpf/myapp``) pins every map declared with ``#[map]`` or
        ``#[btf_map]`` there by name (not the maps holding globals, nor aya-log's ``AYA_LOGS``, which belong to
        one load), and reuses the maps already pinned there by an earlier load, so both see the
        same contents. A pin whose type or sizes differ from the object's map raises :class:`MapError` naming it.
        Pins outlive the process: remove them with ``rm`` (or ``Map.unpin()``) when done.

        ``btf`` (a :class:`~pyaya.Btf`, or the path of a raw BTF file or of an ELF file with a ``.BTF`` section)
        stands in for the running kernel's BTF where the loader reads kernel types: CO-RE relocations and
        ``kernel_field!`` declarations (libbpf's ``btf_custom_path``). Use it on kernels without
        ``/sys/kernel/btf/vmlinux``, with a BTF made for that kernel (BTFHub's, or ``pahole`` from its DWARF).
        Attach targets (fentry, tp_btf, LSM hooks) are still looked up in the kernel's own BTF, whose ids the
        kernel checks.

        ``extensions`` names programs to prepare as :class:`~pyaya.Extension` programs whatever their section
        says (aya's ``EbpfLoader::extension``, libxdp's way): an ``#[xdp]`` program written as an ordinary one
        can then replace a global function of a dispatcher (``bpf.programs[name].load(dispatcher, "slot")``).
        A name that is not a program of the object raises :class:`~pyaya.InvalidArgumentError` listing them.
        """
        raw = _args.buffer(data, "data (the object's bytes)")
        extension_names = _names(extensions, "extensions")
        target_btf, btf_label = _target_btf(btf)
        global_values = _global_bytes(raw, _mapping(globals, "globals"))
        field_values, kernel_fields = fill_kernel_fields(raw, set(global_values), target_btf, btf_label)
        global_values.update(field_values)
        sizes = {
            _args.string(name, "a name in max_entries"): _args.integer(
                entries, f"max_entries[{name!r}]", low=1, high=_args.U32
            )
            for name, entries in _mapping(max_entries, "max_entries").items()
        }
        if log_level is not None:
            _args.integer(log_level, "log_level (a logging level)", low=0, high=2**31 - 1)
        pin_folder = None if pin_maps is None else _args.fs_path(pin_maps, "pin_maps")
        if _kernel_needs_memlock():
            _raise_memlock_limit()
        level = _effective_log_level() if log_level is None else log_level
        native = _native.Ebpf.load(
            raw,
            globals=global_values,
            max_entries=sizes,
            log_level=aya_log_level(level),
            pin_maps=pin_folder,
            target_btf=None if target_btf is None else target_btf.to_bytes(),
            kconfig=_kconfig_values() if b".kconfig" in raw else None,
            extensions=extension_names,
        )
        ebpf = cls(native, data=raw)
        ebpf._kernel_fields = kernel_fields
        return ebpf

    @classmethod
    def load_file(
        cls,
        path: str | os.PathLike[str],
        *,
        globals: Mapping[str, object] | None = None,
        max_entries: Mapping[str, int] | None = None,
        log_level: int | None = None,
        pin_maps: str | os.PathLike[str] | None = None,
        btf: str | os.PathLike[str] | Btf | None = None,
        extensions: Iterable[str] | None = None,
    ) -> Ebpf:
        """Load an object from a file (``pyaya build`` prints the paths of the objects it builds); the options are
        :meth:`load`'s."""
        file = _args.fs_path(path, "path")
        try:
            with open(file, "rb") as opened:
                data = opened.read()
        except FileNotFoundError:
            raise ObjectError(f"no object at {file}: build it first with `pyaya build`") from None
        except IsADirectoryError:
            raise ObjectError(f"{file} is a folder, not a BPF object file") from None
        ebpf = cls.load(
            data,
            globals=globals,
            max_entries=max_entries,
            log_level=log_level,
            pin_maps=pin_maps,
            btf=btf,
            extensions=extensions,
        )
        ebpf._path = file
        return ebpf

    def flush_logs(self) -> int:
        """Deliver pending kernel-side log records to :mod:`logging`; returns how many there were."""
        return self._native.flush_logs()

    @property
    def closed(self) -> bool:
        return self._native.closed

    def close(self) -> None:
        """Detach every link no :class:`~pyaya.Link` handle holds, unload every program and close every map. Safe
        to call twice."""
        globals_ = self.__dict__.get("globals")
        if globals_ is not None:
            globals_._close()  # their fds and memory maps hold the data sections' maps
        if not self._native.closed:
            try:
                self._native.flush_logs()
            finally:
                self._native.close()

    def __enter__(self) -> Ebpf:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self.programs)} programs, {len(self.maps)} maps"
        where = f" from {self._path}" if self._path else ""
        return f"<pyaya.Ebpf{where}: {state}>"


class Programs(Mapping[str, "Program"]):
    """The object's programs by name, each as its typed class (:class:`TracePoint`, ...)."""

    def __init__(self, ebpf: Ebpf) -> None:
        self._ebpf = ebpf
        self._cache = ebpf._programs

    def __getitem__(self, name: str) -> Program:
        if not isinstance(name, str):
            raise NotFoundError(f"programs are named by str, not {type(name).__name__}: the object has {list(self)}")
        if name not in self._cache:
            native = self._ebpf._native.program(name)
            self._cache[name] = class_for(native.kind)(native)
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._ebpf._native.programs())

    def __len__(self) -> int:
        return len(self._ebpf._native.programs())

    def __contains__(self, name: object) -> bool:
        return any(name == existing for existing, _ in self._ebpf._native.programs())


class Maps(Mapping[str, "Map"]):
    """The object's maps by name, each as its typed class (:class:`HashMap`, :class:`RingBuf`, ...)."""

    def __init__(self, ebpf: Ebpf) -> None:
        self._ebpf = ebpf
        self._cache = ebpf._maps

    def __getitem__(self, name: str) -> Map:
        if not isinstance(name, str):
            raise NotFoundError(f"maps are named by str, not {type(name).__name__}: the object has {list(self)}")
        found = self._cache.get(name)
        if found is None:
            wrapped = wrap_map(self._ebpf._native.map(name), self._ebpf)
            found = apply_btf_types(wrapped, self._ebpf.map_types.get(name))
            self._cache[name] = found
        return found

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._ebpf._native.maps())

    def __len__(self) -> int:
        return len(self._ebpf._native.maps())

    def __contains__(self, name: object) -> bool:
        return any(name == existing for existing, _ in self._ebpf._native.maps())


def _mapping(value: object, what: str) -> Mapping[object, object]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgumentTypeError(f"{what} must be a mapping of names to values, not {type(value).__name__}")
    return value


def _names(value: object, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidArgumentTypeError(f"{what} must be an iterable of program names, not {type(value).__name__}")
    return [_args.string(name, f"a name in {what}") for name in value]


# A valid BTF blob with no types: the header (24 bytes) and a one-byte string section holding "".
_EMPTY_BTF = bytes.fromhex("9feb01001800000000000000000000000000000001000000") + b"\0"


def loaded_programs() -> list[tuple[int, str, int]]:
    """``(id, name, type number)`` of every BPF program loaded in the kernel, by anyone. Needs privilege."""
    return _native.loaded_programs()


def loaded_maps() -> list[tuple[int, str, int]]:
    """``(id, name, type number)`` of every map in the kernel, by anyone; open one with
    :meth:`pyaya.Map.from_id`. Needs privilege."""
    return _native.loaded_maps()


def loaded_links() -> list[tuple[int, int, str]]:
    """``(id, program id, type)`` of every bpf_link in the kernel, by anyone (types as aya names them: ``"Xdp"``,
    ``"Tcx"``, ``"PerfEvent"``, ...). Needs privilege."""
    return _native.loaded_links()
