"""Frozen record classes for the load path, without :mod:`dataclasses`.

``@dataclass(frozen=True, slots=True)`` costs ~14 ms to import (``dataclasses`` pulls in ``inspect``, ``ast``,
``tokenize``...) and ~1.5 ms per class on a small VM: more than a whole load may take at start-up (issue 13).
:func:`frozen` gives a class what those dataclasses gave it, from its annotations and defaults: ``__slots__``, an
``__init__`` taking the fields in order (keywords too), the dataclass ``repr``, ``==`` and ``hash`` over the fields
(instances of the same class only), assignment refused with :class:`FrozenInstanceError` (an ``AttributeError``, as
dataclasses raises), ``__match_args__`` and pickling. :func:`replace` and :func:`as_dict` are ``dataclasses.replace``
and a shallow ``dataclasses.asdict``. Field defaults must be immutable (no default factories). A class that needs
its own ``__init__`` or slots (fresh defaults, fields kept in another form than shown) subclasses
:class:`FrozenFields` for the rest.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from typing_extensions import dataclass_transform

    RecordT = TypeVar("RecordT")

__all__ = ["FrozenFields", "FrozenInstanceError", "as_dict", "frozen", "replace"]

_MISSING = object()


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen record."""


def _refuse_set(self: object, name: str, value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _refuse_delete(self: object, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _frozen(cls: type[RecordT]) -> type[RecordT]:
    """``cls`` as a frozen, slotted record of its annotated fields (see the module's docstring)."""
    if type(cls) is not type:
        raise TypeError(f"{cls.__name__}: a record class has no metaclass")
    annotations = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 - inspect is what this module avoids
    names = tuple(name for name in annotations if not name.startswith("__"))
    defaults = {name: cls.__dict__[name] for name in names if name in cls.__dict__}
    required = len(names) - len(defaults)
    if any(name in defaults for name in names[:required]):
        raise TypeError(f"{cls.__name__}: a field without a default follows one with a default")
    body = {key: value for key, value in cls.__dict__.items() if key not in defaults and key != "__dict__"}
    body.pop("__weakref__", None)
    fields = tuple(names)
    body.update(
        __slots__=fields,
        __init__=_initializer(cls.__name__, names, tuple(defaults.values())),
        __match_args__=fields,
        _record_fields=fields,
        __reduce__=_reduce,
    )
    # repr, ==, hash and the refused assignment from FrozenFields (the class's own, where it has them, win).
    bases = (*(base for base in cls.__bases__ if base is not object), FrozenFields)
    made: type[RecordT] = type(cls.__name__, bases, body)
    made.__qualname__ = cls.__qualname__
    return made


if TYPE_CHECKING:
    # Type checkers read a decorated class as the frozen dataclass it amounts to (PEP 681).
    @dataclass_transform(frozen_default=True)
    def frozen(cls: type[RecordT]) -> type[RecordT]:
        return _frozen(cls)

else:
    frozen = _frozen


def _initializer(class_name: str, names: tuple[str, ...], defaults: tuple[Any, ...]) -> Any:
    """An ``__init__`` taking ``names`` in order or by keyword, the last ``len(defaults)`` optional. A closure, not
    generated source as dataclasses makes: a process's first compile() costs ~2 ms, more than the class."""
    count = len(names)
    required = count - len(defaults)
    positions = {name: index for index, name in enumerate(names)}
    assign = object.__setattr__

    def __init__(self: object, *args: Any, **kwargs: Any) -> None:
        if len(args) > count:
            raise TypeError(f"{class_name}() takes {count} arguments but {len(args)} were given")
        values = [*args, *defaults[len(args) - required :]] if len(args) >= required else [*args]
        values += [_MISSING] * (count - len(values))
        for key, value in kwargs.items():
            index = positions.get(key)
            if index is None:
                raise TypeError(f"{class_name}() got an unexpected keyword argument {key!r}")
            if index < len(args):
                raise TypeError(f"{class_name}() got multiple values for argument {key!r}")
            values[index] = value
        for index, given in enumerate(values):
            if given is _MISSING:
                if index < required:
                    raise TypeError(f"{class_name}() missing required argument: {names[index]!r}")
                given = defaults[index - required]  # noqa: PLW2901 - a keyword left it unset
            assign(self, names[index], given)

    return __init__


def _values(record: Any) -> tuple[Any, ...]:
    return tuple(getattr(record, name) for name in record._record_fields)


def _repr(self: Any) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._record_fields)
    return f"{type(self).__qualname__}({shown})"


def _eq(self: Any, other: object) -> object:
    if other.__class__ is not self.__class__:
        return NotImplemented
    same: bool = _values(self) == _values(other)
    return same


def _hash(self: Any) -> int:
    return hash(_values(self))


def _reduce(self: Any) -> tuple[type, tuple[Any, ...]]:
    return type(self), _values(self)


class FrozenFields:
    """What :func:`frozen` gives a record, for a class that writes its own ``__slots__`` and ``__init__`` (fields
    with fresh defaults, fields kept in another form than they are shown): the dataclass ``repr``, ``==`` and
    ``hash`` over :attr:`_record_fields`, assignment refused. Its ``__init__`` sets the fields with
    ``object.__setattr__``."""

    __slots__ = ()
    _record_fields: tuple[str, ...] = ()

    __repr__ = _repr
    __eq__ = _eq  # type: ignore[assignment]
    __hash__ = _hash
    __setattr__ = _refuse_set
    __delattr__ = _refuse_delete


def replace(record: RecordT, **changes: Any) -> RecordT:
    """A copy of ``record`` with ``changes`` (field names) applied, as ``dataclasses.replace`` makes it."""
    fields: tuple[str, ...] = record._record_fields  # type: ignore[attr-defined]
    unknown = set(changes) - set(fields)
    if unknown:
        raise TypeError(f"{type(record).__name__} has no field {sorted(unknown)[0]!r}")
    return type(record)(**{name: changes.get(name, getattr(record, name)) for name in fields})


def as_dict(record: object) -> dict[str, Any]:
    """The fields of ``record`` by name, in order (values as they are)."""
    return {name: getattr(record, name) for name in record._record_fields}  # type: ignore[attr-defined]
