"""The Python face of the loader: objects, programs and maps with the shapes Python users expect.

``pyaya._native`` (Rust over aya) owns every fd and does every syscall; this module gives it mappings, context
managers, iteration and typed keys and values.
"""

from __future__ import annotations

import logging
import os
import platform
import resource
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType

from pyaya import _native
from pyaya.errors import ObjectError
from pyaya.maps import Buffer, Map, as_bytes, wrap_map
from pyaya.programs import Program, class_for

__all__ = ["Ebpf", "Maps", "Programs", "loaded_programs"]

_ebpf_log = logging.getLogger("pyaya.ebpf")


def _forward_log(level: int, target: str, message: str) -> None:
    """Hands one aya-log record from the kernel to Python's logging, under ``pyaya.ebpf.<target>``."""
    logger = _ebpf_log.getChild(target) if target else _ebpf_log
    logger.log(level, message)


def _kernel_needs_memlock() -> bool:
    """Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones use the memory cgroup."""
    release = platform.release().split("-")[0].split(".")
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
            f"could not raise RLIMIT_MEMLOCK ({error}); this kernel ({platform.release()}) may fail to create "
            "large maps: run as root with CAP_SYS_RESOURCE or raise the limit with `ulimit -l unlimited`",
            RuntimeWarning,
            stacklevel=3,
        )


class Ebpf:
    """A loaded BPF object: its maps exist in the kernel, its programs are ready to load and attach.

    Use it as a context manager: leaving the block detaches every link, unloads every program and closes every map.

    >>> with Ebpf.load_file("target/bpfel-unknown-none/release/execwatch") as bpf:  # doctest: +SKIP
    ...     bpf.programs["execwatch"].load()
    """

    def __init__(self, native: _native.Ebpf, path: Path | None = None) -> None:
        self._native = native
        self.path = path
        native.set_log_handler(_forward_log)
        self.programs: Programs = Programs(self)
        self.maps: Maps = Maps(self)

    @classmethod
    def load(
        cls,
        data: Buffer,
        *,
        globals: Mapping[str, object] | None = None,
        max_entries: Mapping[str, int] | None = None,
    ) -> Ebpf:
        """Load an object from its bytes.

        ``globals`` overrides read-only globals (``#[no_mangle] static`` items) by name with bytes or ctypes
        values of the global's size; ``max_entries`` resizes maps by name before they are created.
        """
        if _kernel_needs_memlock():
            _raise_memlock_limit()
        native = _native.Ebpf.load(
            bytes(data),
            globals={name: as_bytes(value) for name, value in (globals or {}).items()},
            max_entries=dict(max_entries or {}),
        )
        return cls(native)

    @classmethod
    def load_file(
        cls,
        path: str | os.PathLike[str],
        *,
        globals: Mapping[str, object] | None = None,
        max_entries: Mapping[str, int] | None = None,
    ) -> Ebpf:
        """Load an object from a file (``pyaya build`` prints the paths of the objects it builds)."""
        file = Path(path)
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            raise ObjectError(f"no object at {file}: build it first with `pyaya build`") from None
        except IsADirectoryError:
            raise ObjectError(f"{file} is a folder, not a BPF object file") from None
        ebpf = cls.load(data, globals=globals, max_entries=max_entries)
        ebpf.path = file
        return ebpf

    def flush_logs(self) -> int:
        """Deliver pending kernel-side log records to :mod:`logging`; returns how many there were."""
        return self._native.flush_logs()

    @property
    def closed(self) -> bool:
        return self._native.closed

    def close(self) -> None:
        """Detach every link, unload every program and close every map. Safe to call twice."""
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
        where = f" from {self.path}" if self.path else ""
        return f"<pyaya.Ebpf{where}: {state}>"


class Programs(Mapping[str, "Program"]):
    """The object's programs by name, each as its typed class (:class:`TracePoint`, ...)."""

    def __init__(self, ebpf: Ebpf) -> None:
        self._ebpf = ebpf
        self._cache: dict[str, Program] = {}

    def __getitem__(self, name: str) -> Program:
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
        self._cache: dict[str, Map] = {}

    def __getitem__(self, name: str) -> Map:
        if name not in self._cache:
            self._cache[name] = wrap_map(self._ebpf._native.map(name), self._ebpf)
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._ebpf._native.maps())

    def __len__(self) -> int:
        return len(self._ebpf._native.maps())

    def __contains__(self, name: object) -> bool:
        return any(name == existing for existing, _ in self._ebpf._native.maps())


def loaded_programs() -> list[tuple[int, str, int]]:
    """``(id, name, type number)`` of every BPF program loaded in the kernel, by anyone. Needs privilege."""
    return _native.loaded_programs()
