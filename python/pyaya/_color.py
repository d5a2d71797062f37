"""Whether output gets color: one rule for every command, the builder and every project's ``main.py``.

``NO_COLOR`` (any non-empty value, https://no-color.org) turns color off; else ``FORCE_COLOR`` (non-empty and not
``0``, https://force-color.org) turns it on, even into a pipe; else color goes only to a terminal whose ``TERM`` is
not ``dumb``. Kept apart from :mod:`pyaya.cli` so that ``main.py`` and the builder use it without importing Typer.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

__all__ = ["color_enabled"]


def color_enabled(stream: TextIO | None) -> bool:
    """Whether text written to ``stream`` may carry ANSI color and style sequences."""
    if os.environ.get("NO_COLOR"):
        return False
    force = os.environ.get("FORCE_COLOR")
    if force and force != "0":
        return True
    if os.environ.get("TERM") == "dumb" or stream is None:
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False
