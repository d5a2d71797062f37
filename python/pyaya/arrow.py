"""Arrow record batches of columnar reads (:meth:`Stream.drain_arrow`, :meth:`KeyValueMap.to_arrow`), which
``polars.from_arrow(batch)``, ``batch.to_pandas()`` and DuckDB take as they are.

Built from the numpy structured array of the same read (:mod:`pyaya.dtypes`): numbers, booleans and floats become
Arrow columns of their type, nested structs Arrow structs, fixed-size arrays fixed-size lists, ``char[N]`` /
``[u8; N]`` fields of 8 bytes or more strings cut at the first NUL (when every value of the column is UTF-8
there), and shorter ones, columns with other bytes, and opaque bytes (``as_bytes`` fields) fixed-size binary of all
their bytes. Each column is built with vectorised numpy calls, no
Python object per record.

pyarrow is optional (``pip install 'pyaya[arrow]'``, which brings numpy too); without it these calls raise
:class:`~pyaya.UnsupportedError` saying so.
"""

from __future__ import annotations

import importlib
from typing import Any

from pyaya.errors import UnsupportedError

__all__ = ["pyarrow", "record_batch", "record_column"]


def pyarrow() -> Any:
    """The pyarrow module, or UnsupportedError saying how to install it."""
    try:
        return importlib.import_module("pyarrow")  # imported on first use: an optional dependency
    except ImportError:
        raise UnsupportedError(
            "Arrow batches (drain_arrow, to_arrow) need pyarrow: pip install 'pyaya[arrow]'"
        ) from None


def record_batch(array: Any) -> Any:
    """``array`` (a numpy structured array, or a plain one) as a ``pyarrow.RecordBatch``: one column per field
    (a plain array gives one column, ``value``)."""
    pa = pyarrow()
    if array.dtype.names is None:
        return pa.RecordBatch.from_arrays([_column(pa, array)], names=["value"])
    names = list(array.dtype.names)
    return pa.RecordBatch.from_arrays([_column(pa, array[name]) for name in names], names=names)


def record_column(array: Any) -> Any:
    """``array`` (a numpy array, structured or not) as one Arrow array (structs for structured dtypes)."""
    return _column(pyarrow(), array)


def _column(pa: Any, column: Any) -> Any:
    np = importlib.import_module("numpy")
    count = len(column)
    if column.ndim > 1:  # a fixed-size array field: the rows' elements in one child, listed N at a time
        per_row = column.shape[1]
        flat = column.reshape((count * per_row, *column.shape[2:]))
        return pa.FixedSizeListArray.from_arrays(_column(pa, flat), per_row)
    dtype = column.dtype
    if dtype.names is not None:
        return pa.StructArray.from_arrays([_column(pa, column[name]) for name in dtype.names], names=list(dtype.names))
    if dtype.kind == "S":
        return _text(pa, np, column)
    if dtype.kind == "V":
        data = np.ascontiguousarray(column).view(np.uint8)
        return pa.Array.from_buffers(pa.binary(dtype.itemsize), count, [None, pa.py_buffer(data)])
    return pa.array(np.ascontiguousarray(column).astype(dtype.newbyteorder("=")))


#: Shortest char array shown as text, as the typed records have it (pyaya.types): shorter ones (tags, MACs) are
#: more often numbers than words.
_MIN_TEXT_LEN = 8


def _text(pa: Any, np: Any, column: Any) -> Any:
    """A ``char[N]`` column as strings up to each value's first NUL when every value is UTF-8 there and N is at
    least 8; else as the fixed-size binary of all N bytes (nothing cut)."""
    count, size = len(column), column.dtype.itemsize
    raw = np.ascontiguousarray(column).view(np.uint8).reshape(count, size)
    fixed = pa.Array.from_buffers(pa.binary(size), count, [None, pa.py_buffer(raw)])
    if size < _MIN_TEXT_LEN:
        return fixed
    nul = raw == 0
    lengths = np.where(nul.any(axis=1), nul.argmax(axis=1), size).astype(np.int32)
    data = raw[np.arange(size) < lengths[:, None]]  # row by row: the values' bytes back to back
    offsets = np.zeros(count + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    text = pa.Array.from_buffers(pa.string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    try:
        text.validate(full=True)  # UTF-8 checked once per column, in C++
    except pa.ArrowInvalid:
        return fixed
    return text
