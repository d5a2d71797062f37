"""`pyaya cleanup` and `pyaya doctor`'s leftovers check: arguments, the state folder's checks, which records are
listed. No kernel object is made here; removing real leftovers is tested in tests/kernel/test_attachments.py and
test_sigkill.py."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from pyaya import attachments
from pyaya.attachments import Owner, Record
from pyaya.cli import app
from typer.testing import CliRunner

#: A program id the kernel has not handed out (ids count up from 1).
UNLOADED_PROGRAM = 2**31 - 1


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    monkeypatch.setenv(attachments.STATE_DIR_ENV, str(folder))
    return folder


def _dead_owner() -> Owner:
    """A process that ran and ended: its pid may be reused, its start time will not match."""
    ended = subprocess.Popen(["true"])
    ended.wait()
    return Owner(ended.pid, 0, Owner.this_process().boot)


def _record(folder: Path, owner: Owner, name: str = "leftover.json") -> Record:
    record = Record(
        path=folder / name,
        kind="tc",
        owner=owner,
        netns=attachments._this_netns(),
        ifindex=1,
        interface="lo",
        program="gone_program",
        program_id=UNLOADED_PROGRAM,
        direction="ingress",
        priority=7,
        handle=1,
    )
    attachments._write(record.path, record)
    return record


def _cleanup(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["cleanup", *args])
    return result.exit_code, result.stdout, result.stderr


def test_help_lists_the_options() -> None:
    code, out, _ = _cleanup("--help")
    assert code == 0
    assert "--dry-run" in out
    assert "--json" in out


def test_unknown_option_is_a_usage_error() -> None:
    code, _, err = _cleanup("--force")
    assert code == 2
    assert "No such option" in err


def test_nothing_recorded(state: Path) -> None:
    code, out, _ = _cleanup("--dry-run")
    assert code == 0
    assert out.startswith("nothing to clean up")
    assert _cleanup("--json", "--dry-run")[:2] == (0, "[]\n")


def test_a_missing_state_folder_is_nothing_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(attachments.STATE_DIR_ENV, str(tmp_path / "never-made"))
    assert _cleanup("--json")[:2] == (0, "[]\n")
    assert not (tmp_path / "never-made").exists()  # cleanup never creates it


def test_a_state_folder_others_may_write_is_refused(state: Path) -> None:
    state.chmod(0o777)
    code, _, err = _cleanup("--dry-run")
    assert code == 1
    assert err.startswith("error: ")
    assert "writable by others" in err
    assert len(err.strip().splitlines()) == 1


def test_dry_run_lists_a_dead_owners_record_and_keeps_it(state: Path) -> None:
    owner = _dead_owner()
    record = _record(state, owner)
    code, out, _ = _cleanup("--dry-run", "--json")
    assert code == 0
    assert json.loads(out) == [
        {
            "kind": "tc",
            "interface": "lo",
            "ifindex": 1,
            "netns": "this network namespace",
            "where": "ingress pref 7 handle 0x1",
            "program": "gone_program",
            "program_id": UNLOADED_PROGRAM,
            "owner_pid": owner.pid,
            "action": "gone",
            "detail": f"program {UNLOADED_PROGRAM} is no longer loaded",
        }
    ]
    assert record.path.exists()  # a dry run changes nothing
    code, out, _ = _cleanup("--dry-run")
    assert out.splitlines()[0].split() == ["KIND", "INTERFACE", "HOOK", "NAMESPACE", "PROGRAM", "PID", "ACTION"]
    assert "gone_program" in out


@pytest.mark.skipif(os.geteuid() != 0, reason="removing records needs root (the non-root refusal is tested below)")
def test_cleanup_drops_the_record_of_what_is_gone(state: Path) -> None:
    record = _record(state, _dead_owner())
    code, out, _ = _cleanup("--json")
    assert code == 0
    assert [row["action"] for row in json.loads(out)] == ["gone"]
    assert not record.path.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="as root, cleanup is allowed")
def test_cleanup_without_root_says_so(state: Path) -> None:
    _record(state, _dead_owner())
    code, _, err = _cleanup()
    assert code == 1
    assert "sudo pyaya cleanup" in err


def test_live_owners_are_never_listed(state: Path) -> None:
    _record(state, Owner.this_process())
    assert _cleanup("--dry-run", "--json")[:2] == (0, "[]\n")
    assert _cleanup("--json")[:2] == (0, "[]\n")  # nothing to do, so no privilege needed either
    assert (state / "leftover.json").exists()


def test_a_file_that_is_not_a_record_is_skipped_with_a_warning(state: Path) -> None:
    (state / "broken.json").write_text("{not json")
    _record(state, _dead_owner())
    with pytest.warns(RuntimeWarning, match="broken.json: not a pyaya record"):
        code, out, _ = _cleanup("--dry-run", "--json")
    assert code == 0
    assert [row["program"] for row in json.loads(out)] == ["gone_program"]


def test_doctor_reports_leftovers_with_the_fix(state: Path) -> None:
    from pyaya.doctor import check_leftovers  # noqa: PLC0415

    assert check_leftovers().status == "ok"
    owner = _dead_owner()
    _record(state, owner)
    check = check_leftovers()
    assert check.status == "warning"
    assert f"TC filter ingress pref 7 handle 0x1 on lo (pid {owner.pid})" in check.detail
    assert check.fix.startswith("sudo pyaya cleanup")
