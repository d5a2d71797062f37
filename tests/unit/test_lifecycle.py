"""A run's life: the parent-death check of a supervised main.py, and Session's handling of stop signals."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pyaya import _native
from pyaya._launch import PARENT_ENV
from pyaya.runtime import RunOptions, Session

CHECK = """\
import os, sys
from pyaya import _native
from pyaya.runtime import parse_options
parse_options(["--object", "obj"])
print(_native.parent_death_signal(), os.environ.get("PYAYA_PARENT_PID"))
"""


def _python(code: str, parent: str | None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != PARENT_ENV}
    if parent is not None:
        environment[PARENT_ENV] = parent
    return subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=60, check=False
    )


def test_supervised_process_gets_sigterm_on_parent_death() -> None:
    result = _python(CHECK, str(os.getpid()))  # this test is its parent
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(int(signal.SIGTERM)), "None"]


def test_parent_gone_before_the_check_exits_at_once() -> None:
    """A parent that died before the death signal was asked for cannot send it: the child sees a parent that is
    not the one named and exits instead of running orphaned."""
    not_the_parent = subprocess.Popen(["sleep", "0"])
    not_the_parent.wait()
    result = _python(CHECK, str(not_the_parent.pid))
    assert result.returncode == 1
    assert f"(pid {not_the_parent.pid}) is gone; exiting" in result.stderr
    assert result.stdout == ""


def test_unsupervised_process_asks_for_nothing() -> None:
    result = _python(CHECK, None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "None"]


def test_parent_death_signal_is_checked() -> None:
    with pytest.raises(ValueError, match="not a signal number"):
        _native.set_parent_death_signal(65)
    with pytest.raises(ValueError, match="not a signal number"):
        _native.set_parent_death_signal(-1)


def _session() -> Session:
    return Session("t", options=RunOptions(object_path=Path("obj")), out=io.StringIO())


def test_first_stop_signal_ends_the_session_and_repeats_are_ignored() -> None:
    session = _session()
    with session:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        # A repeat (the terminal's Ctrl-C and a forwarded SIGTERM reach a --watch child both): ignored.
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_sigterm_ends_the_session_like_ctrl_c() -> None:
    reached_the_end = False
    with _session():
        os.kill(os.getpid(), signal.SIGTERM)
        reached_the_end = True
    assert not reached_the_end  # the with block ended there, and the session swallowed the stop


def test_ignored_sigint_stays_ignored() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with _session():
            os.kill(os.getpid(), signal.SIGINT)  # a background job's Ctrl-C is not for it
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
