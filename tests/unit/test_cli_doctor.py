"""`pyaya doctor`'s table: every problem gets a line under "What to do:", even without a command."""

from __future__ import annotations

from pyaya.cli.doctor import _render, _summary
from pyaya.doctor import Check

CHECKS = [
    Check("privileges", "ok", "root"),
    Check("tracefs", "missing", "not mounted", "mount -t tracefs nodev /sys/kernel/tracing"),
    Check("toolchain", "warning", "the check itself failed: OSError: boom"),
]


def test_every_problem_has_a_fix_line() -> None:
    table, _, fixes = _render(CHECKS, color=False).partition("\n\nWhat to do:\n")
    assert table.splitlines()[0].split() == ["CHECK", "STATUS", "DETAIL"]
    assert fixes.splitlines() == [
        "  tracefs: mount -t tracefs nodev /sys/kernel/tracing",
        "  toolchain: no command fixes this; the detail above says what is wrong",
    ]


def test_color_only_when_asked() -> None:
    assert "\x1b[" not in _render(CHECKS, color=False)
    assert "\x1b[" in _render(CHECKS, color=True)


def test_summary_counts_statuses() -> None:
    assert _summary(CHECKS) == "1 ok, 1 warning, 1 missing"
