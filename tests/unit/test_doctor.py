"""pyaya doctor and pyaya.features: real probes on this machine, no mocks of the kernel."""

from __future__ import annotations

import json

from pyaya import features
from pyaya.cli import app
from pyaya.doctor import STATUSES, run_checks
from typer.testing import CliRunner


def test_probes_answer_with_reasons() -> None:
    for probe in (features.bpf_syscall_available, features.kprobes_supported, features.fentry_supported):
        ok, reason = probe()
        assert isinstance(ok, bool)
        assert reason
    mount = features.bpffs_mount()
    assert mount is None or mount.is_dir()
    tracefs = features.tracefs_mount()
    assert tracefs is None or tracefs.is_dir()
    assert features.kernel_version() > (3, 0, 0)


def test_kprobes_reason_matches_the_kernel_config() -> None:
    ok, reason = features.kprobes_supported()
    config = features.kernel_config()
    if config is not None and config[0].get("CONFIG_KPROBES", "n") == "n":
        assert not ok
        assert "CONFIG_KPROBES is not set" in reason


def test_checks_shape() -> None:
    checks = run_checks()
    names = [c.name for c in checks]
    assert len(names) == len(set(names))
    assert {"privileges", "bpf() syscall", "tracefs", "kprobes", "fentry/fexit", "toolchain", "bpf-linker"} <= set(
        names
    )
    for check in checks:
        assert check.status in STATUSES
        assert check.detail
        if check.status == "missing":
            assert check.fix, f"{check.name} is missing without a fix"


def test_cli_json_and_exit_code() -> None:
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code in (0, 1), result.output
    doc = json.loads(result.stdout)
    assert isinstance(doc, list)
    for entry in doc:
        assert set(entry) == {"name", "status", "detail", "fix"}
        assert entry["status"] in STATUSES
    missing = any(entry["status"] == "missing" for entry in doc)
    assert result.exit_code == (1 if missing else 0)


def test_cli_table() -> None:
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code in (0, 1)
    table, _, fixes = result.stdout.partition("\n\nWhat to do:\n")
    lines = table.splitlines()
    assert lines[0].split() == ["CHECK", "STATUS", "DETAIL"]
    assert "\x1b[" not in result.stdout  # no color when not a TTY
    status_column = lines[0].index("STATUS")
    for line in lines[1:]:
        assert line[status_column:].split()[0] in STATUSES
    for line in fixes.splitlines():
        assert line.startswith("  ")
        assert ": " in line
