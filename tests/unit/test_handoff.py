"""The handoff channel of `pyaya run --watch` (pyaya._handoff): both ends, in real processes over a real socket pair."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest
from pyaya._handoff import HANDOFF_ENV, Handoff

CHILD = """\
import json, os, sys
from pathlib import Path
from pyaya import _handoff
from pyaya.errors import PyayaError
fd = int(os.environ[_handoff.HANDOFF_ENV])
_handoff.claim()
end = _handoff.claimed()
state = {"claimed": end is not None, "env": os.environ.get(_handoff.HANDOFF_ENV), "inheritable": os.get_inheritable(fd)}
print(json.dumps(state), flush=True)
action, marker = sys.argv[1], Path(sys.argv[2])
try:
    if action == "load":
        end.loaded(timeout=float(sys.argv[3]) if len(sys.argv) > 3 else 30)
        print(json.dumps({"went": True, "marker_seen": marker.exists()}), flush=True)
    elif action == "fail":
        end.failed("verifier said no\\n  at instruction 7")
    elif action == "exit":
        pass
except PyayaError as error:
    print(json.dumps({"error": str(error)}), flush=True)
    raise SystemExit(3)
"""


def _child(handoff: Handoff, *args: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        env={**os.environ, **handoff.environment()},
        pass_fds=(handoff.child_fd,),
        stdout=subprocess.PIPE,
        text=True,
    )
    handoff.started()
    return child


def _line(child: subprocess.Popen[str]) -> dict[str, object]:
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], 30)
    assert ready, "the child said nothing in 30 s"
    return dict(json.loads(child.stdout.readline()))


def _message(handoff: Handoff) -> tuple[str, str]:
    ready, _, _ = select.select([handoff], [], [], 30)
    assert ready, "the child sent nothing in 30 s"
    message = handoff.receive()
    assert message is not None
    return message


def test_child_claims_the_channel_and_waits_for_go(tmp_path: Path) -> None:
    marker = tmp_path / "old-stopped"
    handoff = Handoff()
    child = _child(handoff, "load", str(marker))
    # Its environment no longer names the fd, and processes it starts do not inherit it.
    assert _line(child) == {"claimed": True, "env": None, "inheritable": False}
    assert _message(handoff) == ("loaded", "")
    marker.touch()  # what the parent does between "loaded" and "go": stop the old run
    handoff.go()
    assert _line(child) == {"went": True, "marker_seen": True}  # it went on only after go
    assert child.wait(timeout=30) == 0
    assert _message(handoff) == ("gone", "")
    handoff.close()


def test_go_said_before_the_child_asks_is_kept(tmp_path: Path) -> None:
    handoff = Handoff()
    handoff.go()  # nothing to stop: the parent says go at once
    child = _child(handoff, "load", str(tmp_path / "unused"))
    _line(child)
    assert _message(handoff) == ("loaded", "")
    assert _line(child)["went"] is True
    assert child.wait(timeout=30) == 0
    handoff.close()


def test_failure_reaches_the_parent_as_one_line(tmp_path: Path) -> None:
    handoff = Handoff()
    child = _child(handoff, "fail", str(tmp_path / "unused"))
    _line(child)
    assert _message(handoff) == ("failed", "verifier said no at instruction 7")
    assert child.wait(timeout=30) == 0
    assert _message(handoff) == ("gone", "")
    handoff.close()


def test_child_exiting_without_a_word_reads_as_gone(tmp_path: Path) -> None:
    handoff = Handoff()
    child = _child(handoff, "exit", str(tmp_path / "unused"))
    _line(child)
    assert child.wait(timeout=30) == 0
    assert _message(handoff) == ("gone", "")
    handoff.close()


def test_parent_gone_before_go_is_an_error_in_the_child(tmp_path: Path) -> None:
    handoff = Handoff()
    child = _child(handoff, "load", str(tmp_path / "unused"))
    _line(child)
    assert _message(handoff) == ("loaded", "")
    handoff.close()  # the parent went away without saying go
    error = str(_line(child)["error"])
    assert "pyaya run --watch" in error
    assert "is gone" in error
    assert child.wait(timeout=30) == 3


def test_silent_parent_times_out_in_the_child(tmp_path: Path) -> None:
    handoff = Handoff()
    child = _child(handoff, "load", str(tmp_path / "unused"), "0.2")
    _line(child)
    assert _message(handoff) == ("loaded", "")
    assert "did not say go within 0.2s" in str(_line(child)["error"])
    assert child.wait(timeout=30) == 3
    handoff.close()


def test_a_variable_naming_no_socket_is_ignored(tmp_path: Path) -> None:
    script = (
        "import os; from pyaya import _handoff\n"
        "_handoff.claim(); print(_handoff.claimed() is None, os.environ.get(_handoff.HANDOFF_ENV))\n"
    )
    with (tmp_path / "file").open("w") as stray:
        result = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, HANDOFF_ENV: str(stray.fileno())},
            pass_fds=(stray.fileno(),),
            capture_output=True,
            text=True,
            check=True,
        )
    assert result.stdout.split() == ["True", "None"]


@pytest.mark.parametrize("value", ["", "nine", "987654"])
def test_a_bad_variable_is_ignored(value: str) -> None:
    script = "from pyaya import _handoff\n_handoff.claim(); print(_handoff.claimed() is None)\n"
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, HANDOFF_ENV: value},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "True"
