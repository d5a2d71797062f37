"""``pyaya --version``: pyaya's and aya's versions (from the native module, set from Cargo metadata at build time),
the toolchain a build would use, and the kernel.

Kept apart from :mod:`pyaya.cli` so that ``pyaya --version`` answers without importing Typer (see
:func:`pyaya.cli.main`).
"""

from __future__ import annotations

import os

__all__ = ["version_report"]


def _toolchain() -> str:
    from pyaya.errors import PyayaError  # noqa: PLC0415
    from pyaya.toolchain import resolve  # noqa: PLC0415 - runs rustc/bpf-linker probes: the slow part

    try:
        found = resolve()
    except PyayaError as error:
        first = str(error).splitlines()[0]
        return f"none ({first}; `pyaya doctor` says how to fix it)"
    return found.describe()


def version_report() -> str:
    """The lines ``pyaya --version`` prints."""
    from pyaya._native import AYA_VERSION, VERSION  # noqa: PLC0415

    uname = os.uname()
    return "\n".join(
        [
            f"pyaya {VERSION}",
            f"aya {AYA_VERSION}",
            f"toolchain: {_toolchain()}",
            f"kernel: {uname.sysname} {uname.release} {uname.machine}",
        ]
    )
