"""Aligned plain-text tables for human output (``pyaya inspect``, ``pyaya doctor``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def format_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    right: frozenset[int] = frozenset(),
    style: Callable[[int, int, str], str] | None = None,
) -> str:
    """Columns padded to their widest cell, two spaces apart; ``right`` holds indexes of right-aligned columns.

    ``style(row, column, padded_text)`` may decorate a cell (color) after padding, so alignment survives escapes;
    row -1 is the header. The last column is not padded, so lines carry no trailing spaces.
    """
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    last = len(headers) - 1

    def line(index: int, row: Sequence[str]) -> str:
        parts = []
        for i, cell in enumerate(row):
            padded = cell.rjust(widths[i]) if i in right else cell if i == last else cell.ljust(widths[i])
            parts.append(style(index, i, padded) if style is not None else padded)
        return "  ".join(parts).rstrip()

    return "\n".join([line(-1, list(headers)), *(line(n, row) for n, row in enumerate(cells))])
