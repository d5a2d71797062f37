"""Checks of the arguments of pyaya's public calls, before anything reaches the kernel.

Each check raises :class:`~pyaya.errors.InvalidArgumentError` (a ``ValueError``) for a value the call cannot take,
saying which values it can, or :class:`~pyaya.errors.InvalidArgumentTypeError` (also a ``TypeError``) for a value
of the wrong type, and returns the value in the form the native layer takes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from pyaya.errors import InvalidArgumentError, InvalidArgumentTypeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

__all__ = [
    "U16",
    "U32",
    "U64",
    "buffer",
    "callback",
    "choice",
    "fileno",
    "flag",
    "fs_path",
    "integer",
    "interface",
    "optional_string",
    "path",
    "string",
]

U16 = 2**16 - 1
U32 = 2**32 - 1
U64 = 2**64 - 1


def _type_name(value: object) -> str:
    return type(value).__name__


def integer(value: object, what: str, *, low: int = 0, high: int = U64) -> int:
    """An ``int`` (not a ``bool``) in ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentTypeError(f"{what} must be an int, not {_type_name(value)} ({value!r})")
    if not low <= value <= high:
        raise InvalidArgumentError(f"{what} = {value} is out of range: give {low} to {high}")
    return value


def integers(value: object, what: str, *, expected: str, item: str, high: int = U64) -> list[int]:
    """A list of ints in ``0..high`` from any iterable but a string (iterating one would give its characters):
    ``expected`` says what ``what`` must be, ``item`` names one of its values in a range error."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidArgumentTypeError(f"{what} must be {expected}, not {_type_name(value)}")
    return [integer(one, item, high=high) for one in value]


def flag(value: object, what: str) -> bool:
    """A ``bool``."""
    if not isinstance(value, bool):
        raise InvalidArgumentTypeError(f"{what} must be True or False, not {_type_name(value)} ({value!r})")
    return value


def string(value: object, what: str, *, empty: bool = False) -> str:
    """A ``str`` (non-empty unless ``empty``, and without NUL: the kernel reads C strings)."""
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(f"{what} must be a str, not {_type_name(value)} ({value!r})")
    if not value and not empty:
        raise InvalidArgumentError(f"{what} is empty: give a name")
    if "\0" in value:
        raise InvalidArgumentError(f"{what} {value!r} holds a NUL byte, which the kernel would cut it at")
    return value


def optional_string(value: object, what: str) -> str | None:
    """``None`` or a :func:`string`."""
    return None if value is None else string(value, what)


def choice(value: object, what: str, choices: Iterable[str | None]) -> Any:
    """One of ``choices`` (``None`` among them when the call takes it)."""
    options = list(choices)
    if value in options and (value is None or isinstance(value, str)):
        return value
    shown = ", ".join("None" if option is None else repr(option) for option in options)
    if value is not None and not isinstance(value, str):
        raise InvalidArgumentTypeError(f"{what} must be one of {shown}, not {_type_name(value)} ({value!r})")
    import difflib  # noqa: PLC0415 - only a refused value asks

    words = [option for option in options if isinstance(option, str)]
    close = difflib.get_close_matches(str(value), words, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise InvalidArgumentError(f"{what} must be one of {shown}, not {value!r}{hint}")


def path(value: object, what: str) -> Path:
    """A filesystem path: ``str``, ``bytes`` (both kept byte-exact) or ``os.PathLike``."""
    from pathlib import Path  # noqa: PLC0415 - off the load path, which takes fs_path (pathlib costs ~9 ms)

    return Path(fs_path(value, what))


def fs_path(value: object, what: str) -> str:
    """:func:`path` as the ``str`` that ``Path(path)`` would print (``os.fspath`` of it)."""
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    if not isinstance(value, str | os.PathLike):
        raise InvalidArgumentTypeError(f"{what} must be a path (str or os.PathLike), not {_type_name(value)}")
    text = os.fspath(value)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    # What Path() makes of it, without pathlib: "" is "." there, so refused as before; "//" kept, "a//b/" folded.
    if not text or "\0" in text:
        raise InvalidArgumentError(f"{what} {os.fspath(value)!r} is not a usable path")
    return _normalized(text)


def _normalized(text: str) -> str:
    """``str(PurePosixPath(text))``: repeated and trailing slashes and "." parts dropped, a leading "//" kept."""
    leading = "//" if text.startswith("//") and not text.startswith("///") else ("/" if text.startswith("/") else "")
    parts = [part for part in text.split("/") if part and part != "."]
    return leading + "/".join(parts) if parts or leading else "."


def buffer(value: object, what: str) -> bytes:
    """The bytes of a bytes-like object (``bytes``, ``bytearray``, ``memoryview``, ctypes values, ...). An ``int``
    is refused: ``bytes(5)`` would silently be five zero bytes."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, int | str):
        raise InvalidArgumentTypeError(
            f"{what} must be bytes or a buffer (e.g. a ctypes value), not {_type_name(value)} ({value!r})"
        )
    try:
        return bytes(memoryview(value))  # type: ignore[arg-type]
    except TypeError:
        raise InvalidArgumentTypeError(
            f"{what} must be bytes or a buffer (e.g. a ctypes value), not {_type_name(value)}"
        ) from None


def fileno(value: object, what: str) -> int:
    """An open file descriptor from an object with ``fileno()`` (a socket) or an ``int``."""
    method = getattr(value, "fileno", None)
    if callable(method):
        number = method()
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise InvalidArgumentTypeError(f"{what} must be a socket (an object with fileno()), not {_type_name(value)}")
    if isinstance(number, bool) or not isinstance(number, int):
        raise InvalidArgumentTypeError(f"{what}.fileno() returned {_type_name(number)}, not an int")
    if number < 0:
        raise InvalidArgumentError(f"{what} is closed (fileno() is {number}): pass an open socket")
    return number


def interface(value: object, what: str = "interface") -> str | int:
    """A network interface: a name (``"eth0"``) or an index (a positive int)."""
    if isinstance(value, str):
        return string(value, what)
    if isinstance(value, int) and not isinstance(value, bool):
        return integer(value, what, low=1, high=U32)
    raise InvalidArgumentTypeError(
        f"{what} must be an interface name (str) or index (int), not {_type_name(value)} ({value!r})"
    )


def callback(value: object, what: str) -> Callable[..., Any]:
    """Something callable."""
    if not callable(value):
        raise InvalidArgumentTypeError(f"{what} must be callable, not {_type_name(value)} ({value!r})")
    return value
