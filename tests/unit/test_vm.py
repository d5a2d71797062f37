"""`pyaya test`'s input checks and the pieces of pyaya.vm that need no guest: the initramfs archive, a bzImage's
release, the JUnit outcomes. The guests themselves boot in tests/vm."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from pyaya import vm
from pyaya.cli import app
from pyaya.cli.matrix import junit_outcomes
from typer.testing import CliRunner

runner = CliRunner()


def test_unknown_series_is_one_line_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    result = runner.invoke(app, ["test", str(tmp_path), "--kernel", "4.19"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "unknown kernel series '4.19'" in lines[0]
    assert "5.10, 6.1, 6.12" in lines[0]
    assert "--kernel-image" in lines[0]


def test_no_kernel_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    result = runner.invoke(app, ["test", str(tmp_path)])
    assert result.exit_code == 2
    assert "--kernel" in result.stderr


def test_a_folder_without_tests_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["test", str(tmp_path), "--kernel", "6.12"])
    assert result.exit_code == 2
    assert "no tests/ folder" in " ".join(result.stderr.replace("│", " ").split())


def test_missing_qemu_names_the_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tests").mkdir()
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    result = runner.invoke(app, ["test", str(tmp_path), "--kernel", "6.12"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "qemu-system-x86_64 is not on PATH" in result.stderr
    assert "apt-get install qemu-system-x86 busybox-static" in result.stderr


def test_everything_after_dashes_goes_to_pytest(tmp_path: Path) -> None:
    """`pyaya test -- -k x` must not take `-k` for PATH: the usage error is about the kernel, not the path."""
    (tmp_path / "tests").mkdir()
    result = runner.invoke(app, ["test", "--", "-k", "name"], catch_exceptions=False)
    assert result.exit_code == 2
    assert "--kernel" in result.stderr


def test_a_kernel_image_that_is_not_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    bogus = tmp_path / "vmlinuz-1.2.3"
    bogus.write_bytes(b"not a kernel at all" * 100)
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86 busybox-static)")
    result = runner.invoke(app, ["test", str(tmp_path), "--kernel-image", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert "no such file" in result.stderr
    bogus.rename(tmp_path / "blob")
    with pytest.raises(vm.VmError, match="not a bzImage"):
        vm.image_kernel(tmp_path / "blob")


def test_initramfs_archive_is_newc_cpio(tmp_path: Path) -> None:
    reader = [found, "-itv"] if (found := shutil.which("cpio")) else None
    if reader is None and shutil.which("busybox"):
        reader = ["busybox", "cpio", "-itv"]
    if reader is None:
        pytest.skip("neither cpio nor busybox is installed to read the archive back")
    archive = vm._cpio(
        [
            ("bin", 0o40755, b"", (0, 0)),
            ("dev/console", 0o20600, b"", (5, 1)),
            ("init", 0o100755, b"#!/bin/sh\necho hi\n", (0, 0)),
        ]
    )
    listing = subprocess.run(reader, input=archive, capture_output=True, check=True).stdout.decode()
    names = [line.split()[-1] for line in listing.splitlines()]
    assert names == ["bin", "dev/console", "init"]
    assert listing.splitlines()[1].startswith("crw")


def test_bzimage_release_reads_the_setup_header(tmp_path: Path) -> None:
    header = bytearray(0x1000)
    header[0x202:0x206] = b"HdrS"
    header[0x20E:0x210] = (0x300).to_bytes(2, "little")  # kernel_version at 0x300 + 0x200
    text = b"6.6.6-test (builder@host) #1 SMP\0"
    header[0x500 : 0x500 + len(text)] = text
    image = tmp_path / "bzImage"
    image.write_bytes(bytes(header))
    assert vm.bzimage_release(image) == "6.6.6-test"
    image.write_bytes(b"\x7fELF" + bytes(0x1000))
    assert vm.bzimage_release(image) is None


def test_junit_outcomes() -> None:
    xml = b"""<?xml version="1.0"?><testsuites><testsuite>
    <testcase classname="tests.test_a" name="test_ok"/>
    <testcase classname="tests.test_a" name="test_bad"><failure message="assert 1 == 2&#10;more">tb</failure></testcase>
    <testcase classname="tests.test_a" name="test_error"><error message="fixture failed">tb</error></testcase>
    <testcase classname="tests.test_a" name="test_skip"><skipped message="no kprobes here"/></testcase>
    </testsuite></testsuites>"""
    assert junit_outcomes(xml) == {
        "tests.test_a::test_ok": {"outcome": "passed"},
        "tests.test_a::test_bad": {"outcome": "failed", "message": "assert 1 == 2"},
        "tests.test_a::test_error": {"outcome": "failed", "message": "fixture failed"},
        "tests.test_a::test_skip": {"outcome": "skipped", "message": "no kprobes here"},
    }
