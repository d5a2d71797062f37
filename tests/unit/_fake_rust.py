"""Fake rust toolchains for unit tests: small shell scripts printing canned answers, and fake sysroot trees."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def write_script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def fake_rustc(
    bin_dir: Path,
    sysroot: Path,
    *,
    release: str = "1.90.0",
    llvm: str = "22.1.8",
    bpf_target: bool = False,
    rust_src: bool = False,
    with_cargo: bool = True,
) -> Path:
    """A ``rustc`` in ``bin_dir`` answering ``-vV`` and ``--print sysroot``; optionally a prebuilt BPF target."""
    sysroot.mkdir(parents=True, exist_ok=True)
    if bpf_target:
        (sysroot / "lib" / "rustlib" / "bpfel-unknown-none" / "lib").mkdir(parents=True, exist_ok=True)
        (sysroot / "lib" / "rustlib" / "bpfeb-unknown-none" / "lib").mkdir(parents=True, exist_ok=True)
    if rust_src:
        (sysroot / "lib" / "rustlib" / "src" / "rust" / "library").mkdir(parents=True, exist_ok=True)
    rustc = write_script(
        bin_dir / "rustc",
        f"""case "$1" in
  -vV) printf 'rustc {release} (fake)\\nbinary: rustc\\nhost: x86_64-unknown-linux-gnu\\n'
       printf 'release: {release}\\nLLVM version: {llvm}\\n' ;;
  --print) echo "{sysroot}" ;;
  *) exit 1 ;;
esac
""",
    )
    if with_cargo:
        write_script(bin_dir / "cargo", 'echo "cargo 1.0 (fake)"\n')
    return rustc


def fake_rustup(bin_dir: Path, nightly_sysroot: Path | None) -> Path:
    """A ``rustup`` whose ``run nightly rustc --print sysroot`` prints ``nightly_sysroot`` (or fails)."""
    if nightly_sysroot is None:
        body = "echo \"error: toolchain 'nightly' is not installed\" >&2; exit 1\n"
    else:
        body = f'if [ "$1 $2" = "run nightly" ]; then echo "{nightly_sysroot}"; else exit 1; fi\n'
    return write_script(bin_dir / "rustup", body)


def fake_linker(bin_dir: Path, llvm_major: int | None) -> Path:
    """A ``bpf-linker`` whose bytes mention its LLVM (the static-binary detection path)."""
    marker = f"# built with LLVM {llvm_major}.1.0\n" if llvm_major is not None else ""
    return write_script(bin_dir / "bpf-linker", marker + 'echo "bpf-linker 0.13.0"\n')


def isolated_path(*dirs: Path) -> str:
    """A PATH with only ``dirs``: the fake scripts use /bin/sh and shell built-ins, nothing else."""
    return os.pathsep.join(str(d) for d in dirs)
