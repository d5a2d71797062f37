"""Python logging levels to aya-log's AYA_LOG_LEVEL numbers (1 error ... 5 trace, 0 off)."""

from __future__ import annotations

import logging

import pytest
from pyaya.loader import aya_log_level


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (logging.NOTSET, 5),
        (5, 5),
        (logging.DEBUG, 4),
        (15, 3),
        (logging.INFO, 3),
        (logging.WARNING, 2),
        (logging.ERROR, 1),
        (logging.CRITICAL, 0),
    ],
)
def test_levels(level: int, expected: int) -> None:
    assert aya_log_level(level) == expected
