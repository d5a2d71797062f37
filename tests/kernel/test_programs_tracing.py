"""Tracing program types against the real kernel: uprobes on a test binary, perf event sampling, task iterators,
BTF tracepoints, pinning of programs and links, run statistics, and the errors for what this kernel lacks."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyaya
import pytest
from pyaya import (
    BtfTracePoint,
    Ebpf,
    Extension,
    FEntry,
    FExit,
    Iter,
    KProbe,
    Link,
    Lsm,
    LsmCgroup,
    PerfEvent,
    PerfEventKind,
    Program,
    RawTracePoint,
    UProbe,
    features,
    loaded_programs,
)
from pyaya.btf import Btf
from pyaya.elf import Elf
from pyaya.testing import Cgroup

ADD_CALLS = 5

TEST_BINARY = r"""
#include <stdio.h>

__attribute__((noinline)) unsigned long pyaya_add(unsigned long a, unsigned long b) {
    __asm__ volatile("" ::: "memory");
    return a + b;
}

int main(void) {
    char line[16];
    unsigned long total = 0;
    if (!fgets(line, sizeof line, stdin)) return 1;
    for (unsigned long i = 1; i <= ADD_CALLS; i++) total += pyaya_add(i, 100);
    printf("%lu\n", total);
    return 0;
}
""".replace("ADD_CALLS", str(ADD_CALLS))


def _loaded_ids() -> set[int]:
    return {program_id for program_id, _, _ in loaded_programs()}


def _still_loaded(program_ids: set[int], timeout: float = 5) -> set[int]:
    """Which of ``program_ids`` are still loaded after ``timeout``: the kernel frees programs behind bpf_links
    after an RCU grace period, so a closed object's programs may take a moment to disappear."""
    deadline = time.monotonic() + timeout
    while (left := program_ids & _loaded_ids()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _program_ids(bpf: Ebpf) -> set[int]:
    ids = set()
    for program in bpf.programs.values():
        if program.loaded:
            ids.add(int(program.info()["id"]))
    return ids


def _fixture_programs() -> set[int]:
    """Ids of loaded programs named like this module's fixtures (the kernel keeps 15 characters of a name)."""
    return {program_id for program_id, name, _ in loaded_programs() if name.startswith("trace_")}


@pytest.fixture(autouse=True)
def no_programs_left_behind() -> Iterator[None]:
    """Every test here closes what it loaded: afterwards none of its programs is still in the kernel."""
    before = _fixture_programs()
    yield
    assert not _still_loaded(_fixture_programs() - before)


@pytest.fixture
def add_binary(tmp_path: Path) -> Path:
    """A tiny C program that waits for a line on stdin, then calls ``pyaya_add(i, 100)`` for i in 1..5."""
    source = tmp_path / "add.c"
    source.write_text(TEST_BINARY)
    binary = tmp_path / "add"
    subprocess.run(["gcc", "-O1", "-o", str(binary), str(source)], check=True, capture_output=True)
    return binary


def _calls(bpf: Ebpf, tgid: int, expected: int, timeout: float = 5) -> list[tuple[int, int]]:
    """``(kind, value)`` of the calls recorded for ``tgid``, waiting until ``expected`` arrived."""
    found: list[tuple[int, int]] = []
    deadline = time.monotonic() + timeout
    ring = bpf.maps["CALLS"]
    assert isinstance(ring, pyaya.RingBuf)
    while len(found) < expected and time.monotonic() < deadline:
        for record in ring.drain(timeout=0.2):  # `Call` records, typed by the ring's BTF definition
            if record.tgid == tgid:
                found.append((record.kind, record.value))
    return found


@pytest.mark.smoke
def test_uprobe_and_uretprobe_see_arguments_and_results(fixtures_dir: Path, add_binary: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_uprobe") as bpf:
        entry, ret = bpf.programs["trace_add_entry"], bpf.programs["trace_add_return"]
        assert isinstance(entry, UProbe)
        assert isinstance(ret, UProbe)
        assert not entry.retprobe
        assert ret.retprobe
        entry.attach(add_binary, "pyaya_add")
        ret.attach(add_binary, "pyaya_add")
        child = subprocess.run([str(add_binary)], input="go\n", capture_output=True, text=True, check=True)
        assert child.stdout.strip() == str(sum(range(1, ADD_CALLS + 1)) + 100 * ADD_CALLS)
        ids = _program_ids(bpf)
        # The child has exited; its pid is only known from the records, which all come from one process.
        ring = bpf.maps["CALLS"]
        assert isinstance(ring, pyaya.RingBuf)
        # `Call` records, typed by the ring's BTF definition.
        records = [(record.tgid, record.kind, record.value) for record in ring.drain(timeout=2)]
        deadline = time.monotonic() + 5
        while len(records) < 2 * ADD_CALLS and time.monotonic() < deadline:
            records += [(record.tgid, record.kind, record.value) for record in ring.drain(timeout=0.2)]
        tgids = {tgid for tgid, _, _ in records}
        assert len(tgids) == 1
        assert [value for _, kind, value in records if kind == 0] == list(range(1, ADD_CALLS + 1))
        assert [value for _, kind, value in records if kind == 1] == [i + 100 for i in range(1, ADD_CALLS + 1)]
    assert not _still_loaded(ids)


def test_uprobe_pid_filter_sees_only_that_process(fixtures_dir: Path, add_binary: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_uprobe") as bpf:
        chosen = subprocess.Popen([str(add_binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        other = subprocess.Popen([str(add_binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            link = bpf.programs["trace_add_entry"].attach(add_binary, "pyaya_add", pid=chosen.pid)
            assert link.attached
            for child in (other, chosen):
                child.communicate("go\n", timeout=10)
            assert chosen.returncode == 0
            assert other.returncode == 0
        finally:
            for child in (chosen, other):
                if child.poll() is None:
                    child.kill()
                    child.wait()
        calls = _calls(bpf, chosen.pid, ADD_CALLS)
        assert [value for _, value in calls] == list(range(1, ADD_CALLS + 1))
        assert _calls(bpf, other.pid, 1, timeout=0.5) == []


def _file_offset(binary: Path, symbol: str) -> int:
    """Where ``symbol``'s code is in the file: its address, less its section's address, plus the section's offset."""
    elf = Elf.from_path(binary)
    found = next(sym for sym in elf.symbols if sym.name == symbol)
    section = elf.section_of(found)
    assert section is not None
    return found.value - section.addr + section.offset


def test_uprobe_by_file_offset(fixtures_dir: Path, add_binary: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_uprobe") as bpf:
        link = bpf.programs["trace_add_entry"].attach(add_binary, offset=_file_offset(add_binary, "pyaya_add"))
        child = subprocess.Popen([str(add_binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        child.communicate("go\n", timeout=10)
        calls = _calls(bpf, child.pid, ADD_CALLS)
        assert [value for _, value in calls] == list(range(1, ADD_CALLS + 1))
        link.detach()


def test_uprobe_errors_name_what_is_missing(fixtures_dir: Path, add_binary: Path, tmp_path: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_uprobe") as bpf:
        program = bpf.programs["trace_add_entry"]
        assert isinstance(program, UProbe)
        with pytest.raises(pyaya.NotFoundError, match="no_such_function"):
            program.attach(add_binary, "no_such_function")
        with pytest.raises(pyaya.NotFoundError, match="missing"):
            program.attach(tmp_path / "missing", "pyaya_add")
        with pytest.raises(pyaya.InvalidArgumentError, match="pid"):
            program.attach(add_binary, "pyaya_add", pid=0)
        assert program.links == []


def _burn_cpu(seconds: float) -> None:
    end = time.monotonic() + seconds
    value = 0
    while time.monotonic() < end:
        value += 1


def _samples(bpf: Ebpf) -> dict[int, int]:
    counts = bpf.maps["SAMPLES"]
    assert isinstance(counts, pyaya.HashMap)
    return {int(key): int(value) for key, value in counts.items()}


@pytest.mark.smoke
def test_perf_event_samples_on_every_cpu(fixtures_dir: Path) -> None:
    online = os.sched_getaffinity(0)
    with Ebpf.load_file(fixtures_dir / "trace_perf", globals={"TARGET_TGID": ctypes.c_uint32(os.getpid())}) as bpf:
        program = bpf.programs["trace_perf_sample"]
        assert isinstance(program, PerfEvent)
        assert PerfEvent.events()["cpu-clock"] is PerfEventKind.SOFTWARE
        link = program.attach("cpu-clock", sample_frequency=1000)
        assert isinstance(link, Link)
        _burn_cpu(0.5)
        samples = _samples(bpf)
        link.detach()
        assert not link.attached
        total = sum(count for key, count in samples.items() if key % 2 == 0)
        ours = sum(count for key, count in samples.items() if key % 2 == 1)
        assert total > 0
        assert ours > 0
        assert {key // 2 for key in samples} <= online
        after = _samples(bpf)
        _burn_cpu(0.2)
        assert _samples(bpf) == after  # detached: no more samples


def test_perf_event_on_chosen_cpus_and_for_one_process(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_perf", globals={"TARGET_TGID": ctypes.c_uint32(os.getpid())}) as bpf:
        program = bpf.programs["trace_perf_sample"]
        assert isinstance(program, PerfEvent)
        cpu = min(os.sched_getaffinity(0))
        with program.attach("cpu-clock", sample_period=1_000_000, cpus=[cpu]):
            os.sched_setaffinity(0, {cpu})
            try:
                _burn_cpu(0.3)
            finally:
                os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
        assert {key // 2 for key in _samples(bpf)} == {cpu}
        counts = bpf.maps["SAMPLES"]
        assert isinstance(counts, pyaya.HashMap)
        counts.clear()
        with program.attach("task-clock", sample_frequency=1000, pid=os.getpid()):
            _burn_cpu(0.3)
        samples = _samples(bpf)
        assert sum(count for key, count in samples.items() if key % 2 == 1) > 0
        assert all(key % 2 == 1 or samples.get(key + 1) == count for key, count in samples.items())
        with pytest.raises(pyaya.InvalidArgumentError, match="no perf event named"):
            program.attach("no-such-event")
        with pytest.raises(pyaya.InvalidArgumentError, match="not both"):
            program.attach("cpu-clock", sample_period=10, sample_frequency=10)


WATCHED_WRITES = 37


def test_perf_breakpoint_runs_the_program_on_each_write_and_each_call(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_perf", globals={"TARGET_TGID": ctypes.c_uint32(os.getpid())}) as bpf:
        program = bpf.programs["trace_perf_sample"]
        assert isinstance(program, PerfEvent)
        watched = ctypes.c_uint64(0)
        address = ctypes.addressof(watched)
        with program.attach_breakpoint(address, "w", length=8, pid=0):
            for value in range(WATCHED_WRITES):
                watched.value = value
            _ = watched.value  # a read: not a write
        samples = _samples(bpf)
        assert sum(count for key, count in samples.items() if key % 2 == 1) == WATCHED_WRITES
        watched.value = 1  # detached
        assert _samples(bpf) == samples

        counts = bpf.maps["SAMPLES"]
        assert isinstance(counts, pyaya.HashMap)
        counts.clear()
        libc = ctypes.CDLL(None)
        getppid = ctypes.cast(libc.getppid, ctypes.c_void_p).value
        assert getppid is not None
        with program.attach_breakpoint(getppid, "x", pid=0, sample_period=2):
            for _ in range(10):
                libc.getppid()
        assert sum(count for key, count in _samples(bpf).items() if key % 2 == 1) == 5


def test_perf_breakpoint_refusals_name_the_fix(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_perf") as bpf:
        program = bpf.programs["trace_perf_sample"]
        assert isinstance(program, PerfEvent)
        with pytest.raises(pyaya.InvalidArgumentError, match="not aligned"):
            program.attach_breakpoint(0x1001, "w", length=4, pid=0)
        with pytest.raises(pyaya.InvalidArgumentError, match="access must be"):
            program.attach_breakpoint(0x1000, "z", pid=0)  # type: ignore[arg-type]
        with pytest.raises(pyaya.InvalidArgumentError, match="length must be"):
            program.attach_breakpoint(0x1000, "w", length=3, pid=0)  # type: ignore[arg-type]
        watched = [ctypes.c_uint64(0) for _ in range(8)]
        links = []
        refused: pyaya.ProgramError | None = None
        for value in watched:  # x86 has four debug registers per task
            try:
                links.append(program.attach_breakpoint(ctypes.addressof(value), "w", pid=0))
            except pyaya.ProgramError as error:
                refused = error
                break
        assert refused is not None, "eight breakpoints at once were accepted"
        assert "debug register" in str(refused)
        assert refused.errno == errno.ENOSPC
        assert 1 <= len(links) <= 4
        for link in links:
            link.detach()


@pytest.mark.smoke
@pytest.mark.needs("bpf_link")
def test_perf_event_link_pins_only_when_it_is_one_attachment(fixtures_dir: Path) -> None:
    with _bpffs_paths("perf") as (pin,), Ebpf.load_file(fixtures_dir / "trace_perf") as bpf:
        program = bpf.programs["trace_perf_sample"]
        assert isinstance(program, PerfEvent)
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) > 1:
            every_cpu = program.attach("cpu-clock", sample_frequency=100)
            with pytest.raises(pyaya.UnsupportedError, match="per-CPU attachments"):
                every_cpu.pin(pin)
            assert not every_cpu.attached
        one_cpu = program.attach("cpu-clock", sample_frequency=100, cpus=cpus[:1])
        one_cpu.pin(pin)
        assert pin.exists()
        one_cpu.detach()
        assert not pin.exists()


@pytest.mark.smoke
@pytest.mark.lacks("bpf_link")
def test_perf_event_link_without_bpf_links_cannot_be_pinned(fixtures_dir: Path) -> None:
    with _bpffs_paths("perf") as (pin,), Ebpf.load_file(fixtures_dir / "trace_perf") as bpf:
        program = bpf.programs["trace_perf_sample"]
        assert isinstance(program, PerfEvent)
        one_cpu = program.attach("cpu-clock", sample_frequency=100, cpus=sorted(os.sched_getaffinity(0))[:1])
        with pytest.raises(pyaya.UnsupportedError, match=r"bpf_links from kernel 5\.15"):
            one_cpu.pin(pin)
        assert not one_cpu.attached
        assert not pin.exists()


def test_perf_event_hardware_counters(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_perf") as bpf:
        program = bpf.programs["trace_perf_sample"]
        assert isinstance(program, PerfEvent)
        pmu = Path("/sys/bus/event_source/devices/cpu")
        if not pmu.exists():
            with pytest.raises(pyaya.UnsupportedError, match="no hardware PMU"):
                program.attach("cycles", sample_period=100_000)
            assert program.links == []
            pytest.skip(f"{pmu} does not exist: this machine exposes no hardware PMU")
        with program.attach("cycles", sample_period=100_000):
            _burn_cpu(0.3)
        assert sum(_samples(bpf).values()) > 0


def _task_offsets() -> dict[str, ctypes.c_uint64]:
    btf = Btf.vmlinux()
    return {
        "TASK_TGID_OFFSET": ctypes.c_uint64(btf.member_offset("task_struct", "tgid")),
        "TASK_PID_OFFSET": ctypes.c_uint64(btf.member_offset("task_struct", "pid")),
    }


@pytest.mark.smoke
@pytest.mark.needs("iter")
def test_task_iterator_lists_this_process(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_iter", globals=_task_offsets()) as bpf:
        program = bpf.programs["trace_iter_tasks"]
        assert isinstance(program, Iter)
        with program.attach() as link:
            first = link.read()
            assert len(first) % 8 == 0
            tasks = {struct.unpack_from("=II", first, offset) for offset in range(0, len(first), 8)}
            assert (os.getpid(), os.getpid()) in tasks
            assert any(tgid == os.getppid() for tgid, _ in tasks)
            child = subprocess.Popen(["sleep", "5"])
            try:
                again = link.read()
            finally:
                child.kill()
                child.wait()
            tasks = {struct.unpack_from("=II", again, offset) for offset in range(0, len(again), 8)}
            assert (child.pid, child.pid) in tasks
        with pytest.raises(pyaya.ClosedError):
            link.read()
        # A pinned iterator comes back as an Iter: the kernel's info names its bpf_iter_task target, or (5.10) does
        # not, and then the error names the class to open it with.
        with _bpffs_paths("iter") as (pin,):
            program.pin(pin)
            refusal = ""
            try:
                reopened = Program.from_pin(pin)
            except pyaya.ProgramError as error:
                refusal = str(error)
                reopened = Iter.from_pin(pin)
            assert not refusal or "attach_btf_id is 0" in refusal
            assert isinstance(reopened, Iter)
            with reopened.attach() as pinned_link:
                output = pinned_link.read()
            assert (os.getpid(), os.getpid()) in {
                struct.unpack_from("=II", output, offset) for offset in range(0, len(output), 8)
            }
            reopened.unpin()
            assert not pin.exists()


@pytest.mark.needs("tp_btf")
def test_btf_tracepoint_counts_execs(fixtures_dir: Path) -> None:
    program_ids: set[int] = set()
    with Ebpf.load_file(fixtures_dir / "trace_btf") as bpf:
        program = bpf.programs["trace_exec_btf"]
        assert isinstance(program, BtfTracePoint)
        with program.attach():
            subprocess.run(["true"], check=True)
            program_ids = _program_ids(bpf)
            hits = bpf.maps["HITS"]
            assert isinstance(hits, pyaya.HashMap)
            assert sum(int(count) for count in hits.values()) >= 1
    assert not _still_loaded(program_ids)


@pytest.mark.lacks("tp_btf")
def test_btf_tracepoint_refused_says_what_would_fix_it(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_btf") as bpf, pytest.raises(pyaya.PyayaError, match="what would fix it"):
        bpf.programs["trace_exec_btf"].attach()


FENTRY_FEXIT = [
    pytest.param("trace_unlink_entry", FEntry, marks=pytest.mark.needs("fentry"), id="fentry"),
    pytest.param("trace_unlink_exit", FExit, marks=pytest.mark.needs("fexit"), id="fexit"),
]


@pytest.mark.parametrize(("name", "cls"), FENTRY_FEXIT)
def test_fentry_fexit(fixtures_dir: Path, tmp_path: Path, name: str, cls: type[Program]) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_btf") as bpf:
        program = bpf.programs[name]
        assert isinstance(program, cls)
        assert isinstance(program, FEntry | FExit)
        with program.attach():
            victim = tmp_path / "victim"
            victim.touch()
            victim.unlink()
            hits = bpf.maps["HITS"]
            assert isinstance(hits, pyaya.HashMap)
            assert hits[0] >= 1


@pytest.mark.lacks("fentry")
@pytest.mark.parametrize("name", ["trace_unlink_entry", "trace_unlink_exit"])
def test_fentry_fexit_refused_say_what_would_fix_it(fixtures_dir: Path, name: str) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_btf") as bpf:
        program = bpf.programs[name]
        with pytest.raises(pyaya.PermissionDeniedError, match="what would fix it") as raised:
            program.attach()
        assert "do_unlinkat" in str(raised.value)
        assert not program.loaded


@pytest.mark.needs("lsm")
def test_lsm(fixtures_dir: Path, tmp_path: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_btf") as bpf:
        program = bpf.programs["trace_file_open"]
        assert isinstance(program, Lsm)
        with program.attach():
            (tmp_path / "opened").write_text("x")
            hits = bpf.maps["HITS"]
            assert isinstance(hits, pyaya.HashMap)
            assert hits[0] >= 1


@pytest.mark.lacks("lsm")
def test_lsm_refused_says_what_would_fix_it(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_btf") as bpf:
        program = bpf.programs["trace_file_open"]
        assert isinstance(program, Lsm)
        with pytest.raises(pyaya.PermissionDeniedError, match="what would fix it"):
            program.load()
        assert not program.loaded


@pytest.mark.needs("lsm_cgroup")
def test_lsm_cgroup_sees_sockets_of_its_cgroup_only(fixtures_dir: Path, cgroup: Cgroup) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_btf") as bpf:
        program = bpf.programs["trace_socket_create"]
        assert isinstance(program, LsmCgroup)
        hits = bpf.maps["HITS"]
        assert isinstance(hits, pyaya.HashMap)
        with program.attach(cgroup.path):
            socket.socket().close()  # this process is not in the cgroup
            assert hits.get(0, 0) == 0
            cgroup.run(sys.executable, "-c", "import socket; socket.socket().close()")
            assert hits[0] >= 1


@pytest.mark.lacks("lsm_cgroup")
def test_lsm_cgroup_refused_says_what_would_fix_it(fixtures_dir: Path, cgroup: Cgroup) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_btf") as bpf:
        program = bpf.programs["trace_socket_create"]
        assert isinstance(program, LsmCgroup)
        with pytest.raises(pyaya.PyayaError):
            program.attach(cgroup.path)
        assert program.links == []


KPROBES = [("trace_kprobe", False), ("trace_kretprobe", True)]


@pytest.mark.needs("kprobes")
@pytest.mark.parametrize(("name", "retprobe"), KPROBES)
def test_kprobe(fixtures_dir: Path, tmp_path: Path, name: str, retprobe: bool) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_btf") as bpf:
        program = bpf.programs[name]
        assert isinstance(program, KProbe)
        assert program.retprobe is retprobe
        with program.attach("do_unlinkat"):
            victim = tmp_path / "victim"
            victim.touch()
            victim.unlink()
            hits = bpf.maps["HITS"]
            assert isinstance(hits, pyaya.HashMap)
            assert hits[0] >= 1


@pytest.mark.lacks("kprobes")
@pytest.mark.parametrize(("name", "retprobe"), KPROBES)
def test_kprobe_refused_says_what_is_missing(fixtures_dir: Path, name: str, retprobe: bool) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_btf") as bpf:
        program = bpf.programs[name]
        assert isinstance(program, KProbe)
        assert program.retprobe is retprobe
        with pytest.raises(pyaya.UnsupportedError, match="CONFIG_KPROBES") as raised:
            program.attach("do_unlinkat")
        assert "kprobe PMU" in str(raised.value)
        assert program.links == []


def _decision(bpf: Ebpf) -> int:
    decisions = bpf.maps["DECISIONS"]
    assert isinstance(decisions, pyaya.HashMap)
    os.getppid()
    return int(decisions[os.getpid()])


@pytest.mark.needs("extension")
def test_extension_replaces_a_function_of_another_program(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_ext") as target_object, Ebpf.load_file(fixtures_dir / "trace_ext") as bpf:
        target = target_object.programs["trace_ext_target"]
        extension = bpf.programs["trace_ext_replacement"]
        assert isinstance(extension, Extension)
        with pytest.raises(pyaya.ProgramError, match="not loaded; load"):
            extension.load(target)
        target.attach("raw_syscalls", "sys_enter")
        assert _decision(target_object) == 1
        extension.load(target)
        with extension.attach():
            assert _decision(target_object) == 2
        assert _decision(target_object) == 1


@pytest.mark.lacks("extension")
def test_extension_refused_says_what_would_fix_it(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_ext") as target_object, Ebpf.load_file(fixtures_dir / "trace_ext") as bpf:
        target = target_object.programs["trace_ext_target"]
        target.attach("raw_syscalls", "sys_enter")
        with pytest.raises(pyaya.PermissionDeniedError, match="what would fix it") as raised:
            bpf.programs["trace_ext_replacement"].load(target)
        assert "trace_ext_decide" in str(raised.value)


XDP_DROP, XDP_PASS = 1, 2


@pytest.mark.smoke
@pytest.mark.needs("extension")
def test_extensions_at_load_make_an_ordinary_program_replace_a_dispatcher_slot(fixtures_dir: Path) -> None:
    """libxdp's way: ``trace_ext_drop`` is an ordinary ``#[xdp]`` program; named in ``extensions=`` it replaces
    the dispatcher's global function ``trace_ext_slot``, and the dispatcher's verdict follows."""
    object_path = fixtures_dir / "trace_ext"
    with Ebpf.load_file(object_path) as target, Ebpf.load_file(object_path, extensions=["trace_ext_drop"]) as bpf:
        dispatcher = target.programs["trace_ext_dispatcher"]
        packet = bytes(64)
        assert dispatcher.test_run(packet).return_value == XDP_PASS
        extension = bpf.programs["trace_ext_drop"]
        assert isinstance(extension, Extension)
        with pytest.raises(pyaya.ProgramError, match="does not name its function"):
            extension.load(dispatcher)
        extension.load(dispatcher, "trace_ext_slot")
        with extension.attach():
            assert dispatcher.test_run(packet).return_value == XDP_DROP
        assert dispatcher.test_run(packet).return_value == XDP_PASS
        ordinary = bpf.programs["trace_ext_dispatcher"]
        assert not isinstance(ordinary, Extension)  # only the programs named become extensions


@pytest.mark.smoke
def test_extensions_at_load_name_programs_of_the_object(fixtures_dir: Path) -> None:
    with pytest.raises(
        pyaya.InvalidArgumentError, match=r"not a program of the object; its programs are: .*trace_ext_drop"
    ):
        Ebpf.load_file(fixtures_dir / "trace_ext", extensions=["trace_ext_dorp"])
    with pytest.raises(pyaya.InvalidArgumentTypeError, match="iterable of program names"):
        Ebpf.load_file(fixtures_dir / "trace_ext", extensions="trace_ext_drop")
    with Ebpf.load_file(fixtures_dir / "trace_ext", extensions=("trace_ext_drop",)) as bpf:
        assert bpf.programs["trace_ext_drop"].kind == "Extension"
        assert bpf.programs["trace_ext_target"].kind == "TracePoint"


def test_plain_load_of_a_type_needing_arguments_says_which_call(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_btf") as bpf:
        program = bpf.programs["trace_unlink_entry"]
        with pytest.raises(pyaya.ProgramError, match=r"use FEntry\.load\(function=None\)"):
            Program.load(program)
        with pytest.raises(pyaya.ProgramError, match="is a BtfTracePoint program, not a FEntry"):
            bpf.programs["trace_exec_btf"]._native.load_fentry(None)
        with pytest.raises(pyaya.NotFoundError, match="no_such_tracepoint"):
            bpf.programs["trace_exec_btf"].load("no_such_tracepoint")


@contextlib.contextmanager
def _bpffs_paths(*names: str) -> Iterator[list[Path]]:
    root = features.bpffs_mount()
    if root is None:
        pytest.skip("bpffs is not mounted (mount -t bpf bpf /sys/fs/bpf)")
    paths = [root / f"pyaya_test_{os.getpid()}_{name}" for name in names]
    try:
        yield paths
    finally:
        for path in paths:
            path.unlink(missing_ok=True)


def _syscall_count(bpf: Ebpf) -> int:
    counts = bpf.maps["SYSCALLS"]
    assert isinstance(counts, pyaya.HashMap)
    return int(counts.get(os.getpid(), 0))


@pytest.mark.smoke
def test_program_pin_and_from_pin(fixtures_dir: Path) -> None:
    with _bpffs_paths("prog") as (pin,):
        with Ebpf.load_file(fixtures_dir / "trace_raw") as bpf:
            program = bpf.programs["trace_sys_enter"]
            assert isinstance(program, RawTracePoint)
            program.load()
            program.pin(pin)
            program_id = program.info()["id"]
            reopened = Program.from_pin(pin)
            assert isinstance(reopened, RawTracePoint)
            assert reopened.info()["id"] == program_id
            assert reopened.loaded
            # The reopened handle attaches the same kernel program, which counts into the object's map.
            before = _syscall_count(bpf)
            with reopened.attach("sys_enter"):
                for _ in range(20):
                    os.getppid()
                assert _syscall_count(bpf) >= before + 20
        # The object is closed; the pin keeps the program loaded.
        assert program_id in _loaded_ids()
        assert RawTracePoint.from_pin(pin).info()["id"] == program_id
        with pytest.raises(pyaya.ProgramError, match="not a UProbe"):
            UProbe.from_pin(pin)
        reopened.unpin()
        assert not pin.exists()
        del reopened
        assert not _still_loaded({int(program_id)})
    with pytest.raises(pyaya.NotFoundError, match="no pinned program"):
        Program.from_pin(pin)


def test_from_pin_tells_probe_kinds_apart_by_class(fixtures_dir: Path) -> None:
    with (
        _bpffs_paths("uprobe", "uretprobe") as (entry_pin, return_pin),
        Ebpf.load_file(fixtures_dir / "trace_uprobe") as bpf,
    ):
        bpf.programs["trace_add_entry"].load()
        bpf.programs["trace_add_entry"].pin(entry_pin)
        bpf.programs["trace_add_return"].load()
        bpf.programs["trace_add_return"].pin(return_pin)
        as_kprobe = Program.from_pin(entry_pin)
        assert isinstance(as_kprobe, KProbe)  # the kernel's program info says only "kprobe"
        as_uprobe = UProbe.from_pin(entry_pin)
        assert isinstance(as_uprobe, UProbe)
        assert not as_uprobe.retprobe
        assert UProbe.from_pin(return_pin, retprobe=True).retprobe
        as_uprobe.unpin()
        UProbe.from_pin(return_pin).unpin()
        assert not entry_pin.exists()
        assert not return_pin.exists()


@pytest.mark.smoke
def test_link_pin_survives_close_and_from_pin_detaches(fixtures_dir: Path) -> None:
    with _bpffs_paths("link") as (pin,):
        with Ebpf.load_file(fixtures_dir / "trace_raw") as bpf:
            program = bpf.programs["trace_sys_enter"]
            link = program.attach("sys_enter")
            program_id = program.info()["id"]
            link.pin(pin)
            assert link.pinned_path == pin
            counts = bpf.maps["SYSCALLS"]
            assert isinstance(counts, pyaya.HashMap)
        assert bpf.closed
        assert link.attached  # a held link outlives its object
        del link
        assert pin.exists()
        assert program_id in _loaded_ids()  # the pinned link holds the program attached
        reopened = Link.from_pin(pin)
        assert reopened.attached
        assert reopened.program == "trace_sys_enter"[:15]  # the kernel's name: 15 bytes at most
        reopened.detach()
        assert not pin.exists()
        assert not _still_loaded({int(program_id)})


def test_enable_stats_counts_runs(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_raw") as bpf:
        program = bpf.programs["trace_sys_enter"]
        with pyaya.enable_stats(), program.attach("sys_enter"):
            for _ in range(50):
                os.getppid()
            info = program.info()
        assert int(info["run_count"]) >= 50
        assert int(info["run_time_ns"]) > 0
        program_ids = _program_ids(bpf)
    assert not _still_loaded(program_ids)
