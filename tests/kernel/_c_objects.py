"""C BPF objects the tests build with clang, as libbpf users build theirs: ``-target bpf -O2 -g`` against the
libbpf headers Debian ships (``libbpf-dev``) and, for CO-RE code, a ``vmlinux.h`` that pyaya dumps from this
kernel's BTF (so these tests check pyaya's dumper too).

Sources are written in the tests themselves (patterns of libbpf-tools and libbpf-bootstrap, no copied code). Each
object is cached under pyaya's cache folder by the hash of its source, the compiler and its flags, so a run in a
``pyaya test`` guest (the host's root read-only) finds it built. Tests that need a compiler skip, with the command
that installs it, where there is none.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from pyaya._cache import cache_home

#: Compilers tried in order: Debian's versioned clang (what `make setup` installs), then any clang.
CLANGS = ("clang-22", "clang-21", "clang-20", "clang-19", "clang")
VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")


def _clang() -> str | None:
    return next((found for name in CLANGS if (found := shutil.which(name))), None)


def _multiarch_include() -> list[str]:
    # <asm/types.h>, which <linux/bpf.h> includes, lives in the multiarch folder on Debian.
    machine = os.uname().machine
    folder = Path(f"/usr/include/{machine}-linux-gnu")
    return ["-I", str(folder)] if folder.is_dir() else []


def _cache() -> Path:
    """pyaya's cache folder, or a temporary one where that is read-only (a `pyaya test` guest sees the host's
    root read-only: it finds there what the host built, and builds the rest here)."""
    folder = cache_home() / "test-c-objects"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / "pyaya-test-c-objects"


def _cached(name: str) -> Path | None:
    found = cache_home() / "test-c-objects" / name
    return found if found.is_file() else None


def vmlinux_header() -> Path:
    """``vmlinux.h`` of this kernel as pyaya writes it (:func:`pyaya.cheader.write_vmlinux_header`), so every C
    object built with ``vmlinux=True`` checks pyaya's dumper; cached by the BTF's hash, alone in its folder
    (sources ``#include "vmlinux.h"``); skips without BTF."""
    from pyaya.cheader import write_vmlinux_header  # noqa: PLC0415 - only the CO-RE objects need it

    if not VMLINUX_BTF.is_file():
        pytest.skip(f"{VMLINUX_BTF} is missing: this kernel has no BTF (CONFIG_DEBUG_INFO_BTF)")
    digest = hashlib.sha256(VMLINUX_BTF.read_bytes()).hexdigest()[:16]
    folder = _cache() / f"pyaya-vmlinux-{digest}"
    header = folder / "vmlinux.h"
    if not header.is_file():
        write_vmlinux_header(folder, VMLINUX_BTF)
    return header


def build(name: str, source: str, *, vmlinux: bool = False, extra_flags: tuple[str, ...] = ()) -> Path:
    """The object compiled from ``source`` (cached); ``vmlinux`` puts this kernel's ``vmlinux.h`` on the include
    path (then the source includes it instead of ``<linux/bpf.h>``). Skips when no clang is installed; a compile
    error fails the test with clang's message."""
    clang = _clang()
    if clang is None:
        pytest.skip("no clang to build C BPF objects (apt-get install clang-22; make setup installs it)")
    flags = ["-target", "bpf", "-O2", "-g", f"-D__TARGET_ARCH_{_target_arch()}", *_multiarch_include(), *extra_flags]
    if vmlinux:
        flags += ["-I", str(vmlinux_header().parent)]
    version = subprocess.run([clang, "--version"], capture_output=True, text=True, check=False).stdout
    digest = hashlib.sha256("\0".join([source, clang, version, *flags]).encode()).hexdigest()[:16]
    cached = _cached(f"{name}-{digest}.o")
    if cached is not None:
        return cached
    target = _cache() / f"{name}-{digest}.o"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    source_path = target.with_suffix(".bpf.c")
    source_path.write_text(source)
    temporary = target.with_suffix(f".{os.getpid()}.tmp")
    result = subprocess.run(
        [clang, *flags, "-c", str(source_path), "-o", str(temporary)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if result.returncode != 0:
        pytest.fail(f"clang could not build the {name} test object:\n{result.stderr}")
    temporary.replace(target)
    return target


def _target_arch() -> str:
    # bpf_tracing.h's names for PT_REGS access.
    return {"x86_64": "x86", "aarch64": "arm64", "s390x": "s390", "ppc64le": "powerpc"}.get(os.uname().machine, "x86")
