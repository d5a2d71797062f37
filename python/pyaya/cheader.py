"""``vmlinux.h`` written by pyaya itself: the C header of the running kernel's BTF (or any BTF file), which C BPF
programs (``*.bpf.c``) include for CO-RE. The dump is native (``_native.btf_to_c_header``, libbpf's ``btf_dump``
algorithm); this module reads the BTF and writes the file atomically, only when its content changed, so a build
that depends on the header's mtime stays incremental."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pyaya import _native
from pyaya.btf import VMLINUX_PATH
from pyaya.errors import BuildError, NotFoundError

__all__ = ["HEADER_NAME", "vmlinux_header", "write_vmlinux_header"]

HEADER_NAME = "vmlinux.h"


def _read_btf(btf: Path) -> bytes:
    try:
        return btf.read_bytes()
    except FileNotFoundError:
        if btf == VMLINUX_PATH:
            raise NotFoundError(
                f"no kernel BTF at {VMLINUX_PATH}: this kernel was built without CONFIG_DEBUG_INFO_BTF=y; use a "
                "kernel that has it, or pass a BTF file of the target kernel (btf=PATH, or --btf PATH)"
            ) from None
        raise NotFoundError(f"{btf}: no such BTF file (pass a raw BTF file, such as {VMLINUX_PATH})") from None
    except OSError as error:
        raise NotFoundError(f"cannot read BTF from {btf}: {error.strerror or error}") from None


def vmlinux_header(btf: Path = VMLINUX_PATH) -> str:
    """The C header of the BTF file ``btf`` (by default the running kernel's: ``vmlinux.h``). :class:`NotFoundError`
    when there is no such file, :class:`ObjectError` when it is not valid BTF."""
    return _native.btf_to_c_header(_read_btf(Path(btf)))


def write_vmlinux_header(directory: Path, btf: Path = VMLINUX_PATH) -> Path:
    """Write ``directory/vmlinux.h`` from ``btf`` and return its path. The file is replaced atomically (a temporary
    file renamed over it) and only when its content changes: an unchanged header keeps its mtime."""
    directory = Path(directory)
    return write_header(directory / HEADER_NAME, btf)


def write_header(target: Path, btf: Path = VMLINUX_PATH) -> Path:
    """Write the C header of ``btf`` to the file ``target`` (atomically, only when changed); return ``target``."""
    text = vmlinux_header(btf).encode()
    target = Path(target)
    try:
        if target.read_bytes() == text:
            return target
    except OSError:
        pass
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(text)
            os.chmod(temporary, 0o644)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise BuildError(
            f"cannot write {target}: {error.strerror or error} (choose a writable folder with -o)"
        ) from None
    return target
