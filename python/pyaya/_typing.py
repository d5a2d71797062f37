"""The few :mod:`typing` helpers pyaya calls at run time, without importing :mod:`typing`.

``import typing`` costs ~9 ms on a small VM, a fifth of what ``from pyaya import Ebpf`` may cost (issue 13's
start-up goal), and the loader's path needs nothing of it but these. Type checkers read the real ones (the
``TYPE_CHECKING`` branch; ruff's ``typing-modules`` names this module); at run time they are the identity they
amount to. Modules on the load path spell ``TYPE_CHECKING = False`` themselves and import annotation-only names
under it; ``tests/unit/test_import_cost.py`` holds the load path free of typing and the other heavy modules.
"""

from __future__ import annotations

TYPE_CHECKING = False

__all__ = ["cast", "overload"]

if TYPE_CHECKING:
    from typing import cast, overload
else:

    def overload(function):
        """typing.overload's run-time effect on a module that defines the implementation next: none."""
        return function

    def cast(kind, value):
        """typing.cast at run time: ``value``."""
        return value
