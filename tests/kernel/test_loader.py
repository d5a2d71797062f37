"""The Python loader against the real kernel: load, attach, stream, maps, errors and cleanup."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pyaya
import pytest
from pyaya import Ebpf, HashMap, RingBuf, TracePoint, features, loaded_programs


def _object(project: Path) -> Path:
    return project / "target" / "bpfel-unknown-none" / "release" / project.name


@pytest.mark.smoke
def test_attach_stream_and_count(execwatch: Path, tmp_path: Path) -> None:
    probe = tmp_path / "loader-probe"
    shutil.copy("/bin/true", probe)
    # The template's kernel_field! (the parent's tgid) is filled by the load itself: no globals to pass.
    with Ebpf.load_file(_object(execwatch)) as bpf:
        program = bpf.programs[execwatch.name]
        assert isinstance(program, TracePoint)
        with program.attach("syscalls", "sys_enter_execve") as link:
            assert link.attached
            events = bpf.maps["EVENTS"]
            assert isinstance(events, RingBuf)
            child = subprocess.run([str(probe)], check=True)
            del child
            seen = []
            for event in events.records(timeout=5):  # ExecEvent records, decoded by the object's BTF
                if event.filename == str(probe):
                    seen.append(event)
                    break
            assert seen
            assert seen[0].ppid == os.getpid()
        assert not link.attached

        counts = bpf.maps["EXEC_COUNTS"]
        assert isinstance(counts, HashMap)
        assert counts[0] >= 1
        assert 0 in counts
        assert list(counts) == list(counts.keys())
        counts[4_000_000_000] = 7  # user space can write too
        assert counts[4_000_000_000] == 7
        del counts[4_000_000_000]
        assert 4_000_000_000 not in counts
        with pytest.raises(KeyError):
            del counts[4_000_000_000]
        info = program.info()
        assert info["name"] == execwatch.name
        assert isinstance(info["id"], int)
        program_id = info["id"]
    assert bpf.closed
    assert program_id not in {pid for pid, _, _ in loaded_programs()}
    with pytest.raises(pyaya.ClosedError):
        counts[0]


def test_drain_returns_many_records_per_call(execwatch: Path) -> None:
    with Ebpf.load_file(_object(execwatch)) as bpf:
        bpf.programs[execwatch.name].attach("syscalls", "sys_enter_execve")
        for _ in range(5):
            subprocess.run(["/bin/true"], check=True)
        records = bpf.maps["EVENTS"].drain(timeout=2)  # type: ignore[attr-defined]
        assert len(records) >= 5


def test_missing_names_list_the_existing_ones(execwatch: Path) -> None:
    with Ebpf.load_file(_object(execwatch)) as bpf:
        with pytest.raises(pyaya.NotFoundError, match=execwatch.name):
            bpf.programs["nope"]
        with pytest.raises(KeyError, match="EXEC_COUNTS"):
            bpf.maps["NOPE"]
        assert set(bpf.maps) >= {"EVENTS", "EXEC_COUNTS"}


def test_unknown_tracepoint_is_explained(execwatch: Path) -> None:
    with (
        Ebpf.load_file(_object(execwatch)) as bpf,
        pytest.raises(pyaya.ProgramError, match="no tracepoint syscalls/sys_enter_nothing"),
    ):
        bpf.programs[execwatch.name].attach("syscalls", "sys_enter_nothing")


@pytest.mark.smoke
def test_verifier_rejection_carries_the_log(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "rejected") as bpf, pytest.raises(pyaya.VerifierError) as caught:
        bpf.programs["rejected"].load()
    assert caught.value.log.strip()
    assert "ctx" in caught.value.log  # the verifier's own words about the bad context access
    assert caught.value.errno == 13


@pytest.mark.smoke
def test_helper_refusal_names_the_helper(fixtures_dir: Path) -> None:
    # A socket filter calling bpf_get_func_ret, which only fexit programs may call: the probe agrees with the load.
    assert not features.helper_supported("SocketFilter", "bpf_get_func_ret").ok
    with Ebpf.load_file(fixtures_dir / "rejected") as bpf, pytest.raises(pyaya.VerifierError) as caught:
        bpf.programs["helper_refused"].load()
    hint = caught.value.hint
    assert hint is not None
    assert "bpf_get_func_ret (#184)" in hint
    assert os.uname().release in hint
    assert hint in str(caught.value)
    known = features.helper_known("bpf_get_func_ret")
    assert known.ok == (features.kernel_version() >= (5, 17, 0)), known.reason


def test_load_from_bytes_and_bad_bytes(execwatch: Path) -> None:
    with Ebpf.load(_object(execwatch).read_bytes()) as bpf:
        assert execwatch.name in bpf.programs
    with pytest.raises(pyaya.ObjectError):
        Ebpf.load(b"\x7fELF not really")


def test_unprivileged_load_raises_permission_error(execwatch: Path, tmp_path: Path) -> None:
    # A world-readable copy, loaded by `nobody` with this same interpreter and pyaya.
    shared = Path("/tmp") / f"pyaya-unpriv-{os.getpid()}.o"
    shutil.copy(_object(execwatch), shared)
    shared.chmod(0o644)
    # pyaya is imported as root (this interpreter lives under /root), then the process drops to nobody, which
    # also clears every capability, before it loads.
    script = (
        # pyaya imports its API on first use: import it while root can still read the files.
        "import os, sys, pyaya\nfrom pyaya import Ebpf, PermissionDeniedError\n"
        "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
        "try:\n"
        f"    pyaya.Ebpf.load_file({str(shared)!r})\n"
        "except pyaya.PermissionDeniedError as error:\n"
        "    print('denied:', error); sys.exit(0)\n"
        "sys.exit('loaded without privilege?')\n"
    )
    try:
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd="/", check=False)
    finally:
        shared.unlink()
    assert result.returncode == 0, result.stderr + result.stdout
    assert "CAP_BPF" in result.stdout
    assert "sudo" in result.stdout


def test_errors_raised_while_other_threads_use_the_object(execwatch: Path) -> None:
    # Failing attaches run with the GIL released and the object locked; their exceptions must be built only after
    # the lock is released, or a thread holding the GIL and waiting for the lock would deadlock with them.
    with Ebpf.load_file(_object(execwatch)) as bpf:
        program = bpf.programs[execwatch.name]
        program.load()
        failures: list[BaseException] = []

        def attach_missing_tracepoints() -> None:
            for _ in range(200):
                try:
                    program.attach("syscalls", "sys_enter_nothing")
                except pyaya.ProgramError as error:
                    failures.append(error)

        worker = threading.Thread(target=attach_missing_tracepoints)
        worker.start()
        while worker.is_alive():
            assert execwatch.name in bpf.programs
            assert "EVENTS" in bpf.maps
        worker.join(timeout=30)
        assert not worker.is_alive()
        assert len(failures) == 200
