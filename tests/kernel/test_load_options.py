"""Load-time settings against the real kernel: globals, max_entries, the kernel-side log level, map pinning."""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pyaya
import pytest
from pyaya import Ebpf, features


def _getppid_records(fixtures_dir: Path, level: int | None, caplog: pytest.LogCaptureFixture) -> list[str]:
    target = {"TARGET_PID": ctypes.c_uint32(os.getpid())}
    with caplog.at_level(logging.DEBUG, logger="pyaya.ebpf"):
        with Ebpf.load_file(fixtures_dir / "types_records", globals=target, log_level=level) as bpf:
            bpf.programs["types_records"].attach("syscalls", "sys_enter_getppid")
            os.getppid()
            bpf.flush_logs()
        return [record.getMessage().split()[1] for record in caplog.records if record.name.startswith("pyaya.ebpf")]


def test_log_level_info_filters_debug_in_the_kernel(fixtures_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    # caplog lets every level through in Python: what is missing was never sent by the kernel.
    assert _getppid_records(fixtures_dir, logging.INFO, caplog) == ["error", "warn", "info"]


def test_log_level_debug_lets_debug_through(fixtures_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert _getppid_records(fixtures_dir, logging.DEBUG, caplog) == ["error", "warn", "info", "debug"]


def test_log_level_defaults_to_the_pyaya_ebpf_logger(fixtures_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("pyaya.ebpf")
    previous = logger.level
    logger.setLevel(logging.WARNING)
    try:
        target = {"TARGET_PID": ctypes.c_uint32(os.getpid())}
        with Ebpf.load_file(fixtures_dir / "types_records", globals=target) as bpf:
            logger.setLevel(logging.DEBUG)  # Python would show everything now; the kernel sends warn and up
            bpf.programs["types_records"].attach("syscalls", "sys_enter_getppid")
            with caplog.at_level(logging.DEBUG, logger="pyaya.ebpf"):
                os.getppid()
                bpf.flush_logs()
        levels = [record.levelname for record in caplog.records if record.name.startswith("pyaya.ebpf")]
        assert levels == ["ERROR", "WARNING"]
    finally:
        logger.setLevel(previous)


def test_object_without_logs_loads_without_warnings(fixtures_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with caplog.at_level(logging.DEBUG), Ebpf.load_file(fixtures_dir / "types_plain", log_level=logging.DEBUG):
            pass
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_globals_override(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "types_plain", globals={"FACTOR": ctypes.c_uint64(1234)}) as bpf:
        bpf.programs["types_plain"].attach("syscalls", "sys_enter_getppid")
        os.getppid()
        assert bpf.maps["SHARED"][os.getpid()] == 1234


def test_unknown_global_is_an_error(fixtures_dir: Path) -> None:
    with pytest.raises(pyaya.PyayaError, match="NO_SUCH_GLOBAL"):
        Ebpf.load_file(fixtures_dir / "types_plain", globals={"NO_SUCH_GLOBAL": b"\0" * 8})


def test_max_entries_override(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "types_plain", max_entries={"SHARED": 5, "SLOTS": 7}) as bpf:
        assert bpf.maps["SHARED"].max_entries == 5
        assert len(bpf.maps["SLOTS"]) == 7
        shared = bpf.maps["SHARED"]
        for key in range(5):
            shared[key] = key
        with pytest.raises(pyaya.PyayaError):
            shared[5] = 5  # the kernel refuses a sixth entry: the map really has 5


@pytest.fixture
def pin_dir() -> Iterator[Path]:
    mount = features.bpffs_mount()
    if mount is None:
        pytest.skip("bpffs is not mounted (pyaya.features.bpffs_mount() found none)")
    path = mount / f"pyaya-test-{uuid.uuid4().hex[:12]}"
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_pinned_maps_are_shared_between_loads(fixtures_dir: Path, pin_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "types_plain", pin_maps=pin_dir) as first:
        first.maps["SHARED"][42] = 4242
        first.maps["SLOTS"][1] = 7
    assert sorted(p.name for p in pin_dir.iterdir()) == ["SHARED", "SLOTS"]  # not .rodata
    with Ebpf.load_file(fixtures_dir / "types_plain", pin_maps=pin_dir) as second:
        assert second.maps["SHARED"][42] == 4242
        assert second.maps["SLOTS"][1] == 7
        second.programs["types_plain"].attach("syscalls", "sys_enter_getppid")
        os.getppid()
        with Ebpf.load_file(fixtures_dir / "types_plain", pin_maps=pin_dir) as third:
            assert third.maps["SHARED"][os.getpid()] == 1  # written by the second load's program


def test_pin_maps_handles_report_their_pin_and_unpin_it(fixtures_dir: Path, pin_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "types_plain", pin_maps=pin_dir) as bpf:
        shared = bpf.maps["SHARED"]
        assert shared.pinned_path == pin_dir / "SHARED"
        shared.unpin()
        assert shared.pinned_path is None
        assert not (pin_dir / "SHARED").exists()
        assert (pin_dir / "SLOTS").exists()  # only the map asked


def test_incompatible_pin_is_a_clear_error(fixtures_dir: Path, pin_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "types_plain", pin_maps=pin_dir, max_entries={"SHARED": 8}):
        pass
    with pytest.raises(pyaya.MapError) as caught:
        Ebpf.load_file(fixtures_dir / "types_plain", pin_maps=pin_dir)
    message = str(caught.value)
    assert str(pin_dir / "SHARED") in message
    assert "max_entries 8 (the object wants 32)" in message
    assert f"rm {pin_dir / 'SHARED'}" in message


def test_pin_of_another_type_is_refused(fixtures_dir: Path, pin_dir: Path) -> None:
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        pytest.skip("bpftool is not installed: it makes the foreign pin (bpffs does not allow renaming pins)")
    pin_dir.mkdir()
    subprocess.run(
        [bpftool, "map", "create", str(pin_dir / "SHARED"), "type", "array", "key", "4", "value", "4", "entries", "4",
         "name", "SHARED"],
        check=True,
    )  # fmt: skip
    with pytest.raises(pyaya.MapError, match=r"type Array \(the object wants HashMap\)"):
        Ebpf.load_file(fixtures_dir / "types_plain", pin_maps=pin_dir)


def test_failed_load_leaves_no_pins(fixtures_dir: Path, pin_dir: Path) -> None:
    with pytest.raises(pyaya.PyayaError, match="NO_SUCH_GLOBAL"):
        Ebpf.load_file(fixtures_dir / "types_plain", pin_maps=pin_dir, globals={"NO_SUCH_GLOBAL": b"\0" * 8})
    assert not pin_dir.exists()


def _bytes_read() -> int:
    """What this process has read through read() and its kin so far (every thread's, exited ones included)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("/proc/self/io has no rchar line")


def test_an_object_without_core_relocations_loads_without_reading_the_kernels_btf(fixtures_dir: Path) -> None:
    vmlinux = Path("/sys/kernel/btf/vmlinux")
    if not vmlinux.exists():
        pytest.skip("this kernel exposes no BTF at /sys/kernel/btf/vmlinux")
    size = len(vmlinux.read_bytes())
    before = _bytes_read()
    vmlinux.read_bytes()
    assert _bytes_read() - before >= size  # the measure sees a read of the file
    before = _bytes_read()
    with Ebpf.load_file(fixtures_dir / "types_records", globals={"TARGET_PID": ctypes.c_uint32(0)}) as bpf:
        assert bpf.maps
    assert _bytes_read() - before < size // 4
