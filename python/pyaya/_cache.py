"""Where pyaya keeps what it can rebuild: ``$PYAYA_CACHE``, else ``$XDG_CACHE_HOME/pyaya``, else ``~/.cache/pyaya``.

Standard library only (``pyaya --version`` imports it without the rest of pyaya). ``scripts/*.sh`` spell the same
rule in shell: ``${PYAYA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pyaya}``.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["cache_folder", "cache_home"]


def cache_home() -> Path:
    """The folder of every pyaya cache (kernels, the shared build folder, fuzz seeds, bpf-linker's build).

    ``$PYAYA_CACHE`` when set; else ``$XDG_CACHE_HOME/pyaya`` when that is an absolute path (the XDG rule: a relative
    one is ignored); else ``~/.cache/pyaya``. Not created here: each user makes its own subfolder when it writes.
    """
    from pathlib import Path  # noqa: PLC0415 - cache_folder serves the load path, which pathlib would slow

    return Path(cache_folder())


def cache_folder() -> str:
    """:func:`cache_home` as a ``str``, without importing pathlib."""
    explicit = os.environ.get("PYAYA_CACHE")
    if explicit:
        return os.path.expanduser(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = xdg if xdg and os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pyaya")
