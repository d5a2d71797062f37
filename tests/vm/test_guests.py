"""Real QEMU guests of a Debian 6.12 kernel (fetched once into ~/.cache/pyaya/kernels): a command runs as root with
the caller's environment and folder, `pyaya test` reports per kernel, and every way a guest can go wrong (a
kernel that does not boot, a boot or a run that takes too long, Ctrl-C) ends in one line, exit 1 (130 for
Ctrl-C) and no QEMU process left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyaya import vm
from pyaya.errors import VmError

SERIES = "6.12"


@pytest.fixture(scope="module")
def kernel() -> vm.Kernel:
    try:
        vm.qemu_binary()
        vm.busybox_binary()
    except VmError as error:
        pytest.skip(str(error))
    return vm.debian_kernel(SERIES)


def _qemus(memory: str) -> list[int]:
    """QEMU processes started with ``-m memory`` (each test uses a size of its own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"qemu-system-x86_64") and memory.encode() in argv:
            found.append(int(entry.name))
    return found


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with a tests/ of one passing, one failing and one skipped test (no pyaya.toml: nothing to build)."""
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_sample.py").write_text(
        "import os, platform, pytest\n"
        "def test_root_in_the_guest():\n"
        "    assert os.geteuid() == 0\n"
        f"    assert platform.release().startswith({SERIES + '.'!r})\n"
        "def test_fails():\n"
        "    assert 1 == 2, 'meant to fail'\n"
        "def test_skips():\n"
        "    pytest.skip('meant to skip')\n"
    )
    return tmp_path


def pyaya_test(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyaya", "test", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_command_runs_as_root_with_the_callers_environment(kernel: vm.Kernel, tmp_path: Path) -> None:
    out: list[str] = []
    script = 'id -u; pwd; echo "$PYAYA_MARK"; uname -r; echo written > here; cat /sys/kernel/security/lsm; exit 3'
    result = vm.run(
        kernel,
        ["sh", "-c", script],
        config=vm.VmConfig(memory="1101M"),
        cwd=tmp_path,
        env={**os.environ, "PYAYA_MARK": "two words"},
        output=out.append,
    )
    lines = "".join(out).splitlines()
    assert result.returncode == 3
    assert lines[:4] == ["0", str(tmp_path), "two words", kernel.release]
    assert not (tmp_path / "here").exists()  # the guest writes into its own overlay
    assert result.boot_seconds > 0
    assert result.accel in ("kvm", "tcg")
    assert not _qemus("1101M")


def test_pyaya_test_reports_each_kernel(kernel: vm.Kernel, project: Path) -> None:
    result = pyaya_test(str(project), "--kernel", SERIES, "--memory", "1102M", "--json", "-q")
    assert result.returncode == 1, result.stderr
    (row,) = json.loads(result.stdout)
    assert (row["kernel"], row["release"]) == (SERIES, kernel.release)
    assert (row["passed"], row["failed"], row["skipped"]) == (1, 1, 1)
    assert row["seconds"]["boot"] > 0
    assert row["seconds"]["run"] > 0
    assert row["failures"] == [{"test": "tests.test_sample::test_fails", "message": "AssertionError: meant to fail"}]
    assert row["tests"]["tests.test_sample::test_skips"]["outcome"] == "skipped"
    assert Path(row["console_log"]).is_file()
    assert "booted to the command in" in result.stderr
    assert not _qemus("1102M")
    # After `--`, arguments are pytest's: only the passing test runs, and the table says so.
    table = pyaya_test(str(project), "--kernel", SERIES, "--memory", "1102M", "-q", "--", "-k", "root")
    assert table.returncode == 0, table.stderr
    header, line = table.stdout.splitlines()[:2]
    assert header.split() == ["KERNEL", "RELEASE", "ACCEL", "PASSED", "FAILED", "SKIPPED", "BOOT", "S", "RUN", "S"]
    assert line.split()[:6] == [SERIES, kernel.release, line.split()[2], "1", "0", "0"]


def test_a_kernel_that_does_not_boot(kernel: vm.Kernel, project: Path) -> None:
    result = pyaya_test(str(project), "--kernel", SERIES, "--memory", "1103M", "--append", "rdinit=/no/such/init")
    assert result.returncode == 1
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error == [], result.stderr  # a kernel that fails is a row, not a crash
    assert "stopped before it reached the command" in result.stdout
    assert "console log:" in result.stdout
    assert not _qemus("1103M")


def test_a_boot_that_takes_too_long_is_killed(kernel: vm.Kernel, project: Path) -> None:
    result = pyaya_test(str(project), "--kernel", SERIES, "--memory", "1104M", "--boot-timeout", "2")
    assert result.returncode == 1
    assert "did not reach the command within 2 s" in result.stdout
    assert not _qemus("1104M")


def test_a_run_that_takes_too_long_is_killed(kernel: vm.Kernel, tmp_path: Path) -> None:
    with pytest.raises(VmError, match=r"timed out after 60 s") as raised:
        vm.run(kernel, ["sleep", "600"], config=vm.VmConfig(memory="1105M", timeout=60), output=lambda _: None)
    assert len(str(raised.value).splitlines()[0]) < 300
    assert not _qemus("1105M")


@pytest.fixture
def sleeping_project(tmp_path: Path) -> Path:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_sleep.py").write_text("import time\ndef test_sleeps():\n    time.sleep(600)\n")
    return tmp_path


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupting_pyaya_test_kills_the_guest(
    kernel: vm.Kernel, sleeping_project: Path, signum: signal.Signals
) -> None:
    memory = f"{1106 + int(signum)}M"
    runner = subprocess.Popen(
        [sys.executable, "-m", "pyaya", "test", str(sleeping_project), "--kernel", SERIES, "--memory", memory],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _qemus(memory) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _qemus(memory), "QEMU did not start"
        time.sleep(3)
        runner.send_signal(signum)
        _, errors = runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == 130, errors
    assert "interrupted" in errors
    assert not _qemus(memory)
