"""numpy dtypes of the types in an object's BTF, for columnar reads (:meth:`Stream.drain_array`,
:meth:`KeyValueMap.to_array`): one structured array per batch instead of one Python object per record.

numpy is optional (``pip install pyaya[numpy]``); without it these calls raise :class:`~pyaya.UnsupportedError`
saying so, and the rest of pyaya works as before.
"""

from __future__ import annotations

import importlib
from typing import Any

from pyaya.errors import UnsupportedError
from pyaya.maps._codec import BytesCodec, IntCodec
from pyaya.types import (
    EnumCodec,
    RecordType,
    _Array,
    _Bitfield,
    _ByteArray,
    _Float,
    _Int,
    _Named,
    _Node,
    _Opaque,
)

__all__ = ["dtype_of", "numpy"]


def numpy() -> Any:
    """The numpy module, or UnsupportedError saying how to install it."""
    try:
        return importlib.import_module("numpy")  # imported on first use: an optional dependency
    except ImportError:
        raise UnsupportedError(
            "columnar reads (drain_array, to_array, items_array) need numpy: pip install 'pyaya[numpy]'"
        ) from None


def _spec(node: _Node, endian: str) -> Any:
    """The dtype spec (as numpy.dtype takes it) of ``node``."""
    if isinstance(node, _Named):
        return _spec(node.target, endian)
    if isinstance(node, EnumCodec):
        return _spec(node._int, endian)  # the enum's integer; its names are in records.types[...]
    if isinstance(node, _Int):
        if node.boolean and node.size == 1:
            return "?"
        return f"{endian}{'i' if node.signed else 'u'}{node.size}"
    if isinstance(node, _Float):
        return f"{endian}f{node.size}"
    if isinstance(node, _ByteArray):
        return f"S{node.size}"  # fixed bytes: numpy strips the trailing NULs on reading, as C strings end
    if isinstance(node, _Array):
        return (_spec(node.element, endian), (node.count,))
    if isinstance(node, _Opaque):
        return f"V{node.size}"
    if isinstance(node, RecordType):
        names, formats, offsets = [], [], []
        for field in node.fields:
            if isinstance(field.node, _Bitfield):
                raise UnsupportedError(
                    f"{node.label()}.{field.name} is a bitfield, which numpy has no dtype for: "
                    "read this type with drain() / items() (typed records) instead"
                )
            if isinstance(field.node, _Opaque) and field.node.size == 0:
                continue
            names.append(field.name)
            formats.append(_spec(field.node, endian))
            offsets.append(field.offset)
        return {"names": names, "formats": formats, "offsets": offsets, "itemsize": node.size}
    raise UnsupportedError(f"pyaya has no numpy dtype for {type(node).__name__}")


def dtype_of(codec: Any, size: int) -> Any:
    """The numpy dtype of records decoded by ``codec`` (a BTF type's codec) that are ``size`` bytes long; a codec
    that is no BTF type (a struct format, bytes) gives integers for sizes 1, 2, 4 and 8, else ``V<size>``."""
    np = numpy()
    if isinstance(codec, _Node):
        endian = getattr(codec, "endian", "<")
        return np.dtype(_spec(codec, endian))
    if isinstance(codec, IntCodec) and codec.size in (1, 2, 4, 8):
        return np.dtype(f"={'i' if codec.signed else 'u'}{codec.size}")
    if isinstance(codec, BytesCodec) or codec is None:
        return np.dtype(f"V{size}")
    raise UnsupportedError(
        f"pyaya has no numpy dtype for a {type(codec).__name__}: type the map or stream with a BTF type name "
        "(.typed('TypeName')), int or bytes for columnar reads"
    )
