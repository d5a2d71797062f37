"""``pyaya vmlinux-h``: the C header of the running kernel's BTF (``vmlinux.h``), for C BPF programs built outside
``pyaya build`` (see :mod:`pyaya.cheader`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pyaya.cli._common import handle_errors

__all__ = ["vmlinux_h"]

_VMLINUX = Path("/sys/kernel/btf/vmlinux")


@handle_errors
def vmlinux_h(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="A folder (vmlinux.h is written in it) or a file; rewritten only when its content changes. "
            "Default: standard output.",
        ),
    ] = None,
    btf: Annotated[
        Path, typer.Option("--btf", help="The BTF to dump: a raw BTF file of the target kernel.")
    ] = _VMLINUX,
) -> None:
    """Write vmlinux.h, every type of the kernel's BTF as C (as bpftool btf dump ... format c does), for C BPF
    programs that include "vmlinux.h"."""
    from pyaya import cheader  # noqa: PLC0415 - see pyaya.cli: imported when run

    if output is None:
        sys.stdout.write(cheader.vmlinux_header(btf))
        return
    target = output / cheader.HEADER_NAME if output.is_dir() else output
    written = cheader.write_header(target, btf)
    typer.echo(f"wrote {written}", err=True)
