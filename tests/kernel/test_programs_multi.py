"""Multi-point probes against the real kernel: one uprobe_multi link on several functions of a test binary (hits
per function told apart by their bpf cookies, return values, a pid filter, patterns, file offsets), one
kprobe_multi link on several kernel functions (6.12 guest: this host has no kprobes), and the errors of what
cannot be attached, which leave nothing attached."""

from __future__ import annotations

import fnmatch
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import _c_objects
import pyaya
import pytest
from pyaya import Ebpf, KProbeMulti, MultiLink, UProbeMulti, loaded_links
from pyaya.elf import Elf
from pyaya.inspect import inspect_file

ONE_CALLS = 3
TWO_CALLS = 2

TEST_BINARY = r"""
#include <stdio.h>

__attribute__((noinline)) unsigned long pyaya_multi_one(unsigned long a) {
    __asm__ volatile("" ::: "memory");
    return a + 1;
}

__attribute__((noinline)) unsigned long pyaya_multi_two(unsigned long a) {
    __asm__ volatile("" ::: "memory");
    return a * 2;
}

int main(void) {
    char line[16];
    unsigned long total = 0;
    if (!fgets(line, sizeof line, stdin)) return 1;
    for (unsigned long i = 1; i <= ONE_CALLS; i++) total += pyaya_multi_one(i);
    for (unsigned long i = 1; i <= TWO_CALLS; i++) total += pyaya_multi_two(10 * i);
    printf("%lu\n", total);
    return 0;
}
""".replace("ONE_CALLS", str(ONE_CALLS)).replace("TWO_CALLS", str(TWO_CALLS))

ENTRY, RETURN, KENTRY, KRETURN = 0, 1, 2, 3


@pytest.fixture
def multi_binary(tmp_path: Path) -> Path:
    """A PIE C program that waits for a line on stdin, then calls ``pyaya_multi_one(i)`` for i in 1..3 and
    ``pyaya_multi_two(10 * i)`` for i in 1..2."""
    source = tmp_path / "multi.c"
    source.write_text(TEST_BINARY)
    binary = tmp_path / "multi"
    subprocess.run(["gcc", "-O1", "-fPIE", "-pie", "-o", str(binary), str(source)], check=True, capture_output=True)
    return binary


@pytest.fixture
def multi(fixtures_dir: Path) -> Iterator[Ebpf]:
    with Ebpf.load_file(fixtures_dir / "trace_multi") as bpf:
        yield bpf


def _run(binary: Path) -> int:
    child = subprocess.run([str(binary)], input="go\n", capture_output=True, text=True, check=True)
    assert child.stdout.strip() == str(sum(i + 1 for i in range(1, ONE_CALLS + 1)) + sum(20 * i for i in (1, 2)))
    return child.returncode


def _hits(bpf: Ebpf, expected: int, timeout: float = 5) -> list[tuple[int, int, int, int]]:
    """``(tgid, kind, cookie, value)`` of the hits sent, waiting until ``expected`` arrived (then a little more,
    so that extra ones would show)."""
    ring = bpf.maps["HITS"]
    assert isinstance(ring, pyaya.RingBuf)
    found: list[tuple[int, int, int, int]] = []
    deadline = time.monotonic() + timeout
    while len(found) < expected and time.monotonic() < deadline:
        found += [(hit.tgid, hit.kind, hit.cookie, hit.value) for hit in ring.drain(timeout=0.2)]
    found += [(hit.tgid, hit.kind, hit.cookie, hit.value) for hit in ring.drain(timeout=0.2)]
    return found


def _link_ids() -> set[int]:
    return {link_id for link_id, _, _ in loaded_links()}


def test_programs_have_their_multi_kinds(multi: Ebpf, fixtures_dir: Path) -> None:
    kinds = {name: type(program) for name, program in multi.programs.items()}
    assert kinds == {
        "multi_entry": UProbeMulti,
        "multi_return": UProbeMulti,
        "kmulti_entry": KProbeMulti,
        "kmulti_return": KProbeMulti,
    }
    assert not multi.programs["multi_entry"].retprobe
    assert multi.programs["multi_return"].retprobe
    assert not multi.programs["kmulti_entry"].retprobe
    assert multi.programs["kmulti_return"].retprobe
    report = inspect_file(fixtures_dir / "trace_multi")
    assert {program.name: program.type for program in report.programs} == {
        "multi_entry": "UProbeMulti",
        "multi_return": "URetProbeMulti",
        "kmulti_entry": "KProbeMulti",
        "kmulti_return": "KRetProbeMulti",
    }


@pytest.mark.needs("uprobe_multi")
def test_one_link_hits_each_function_with_its_cookie(multi: Ebpf, multi_binary: Path) -> None:
    entry, ret = multi.programs["multi_entry"], multi.programs["multi_return"]
    assert isinstance(entry, UProbeMulti)
    assert isinstance(ret, UProbeMulti)
    functions = ["pyaya_multi_one", "pyaya_multi_two"]
    entries = entry.attach(multi_binary, functions, cookies=[111, 222])
    returns = ret.attach(multi_binary, functions, cookies=[333, 444])
    assert isinstance(entries, MultiLink)
    assert [name for name, _ in entries.locations] == functions
    assert entries.locations == returns.locations
    assert entry.loaded
    assert entry.info()["name"] == "multi_entry"
    _run(multi_binary)
    hits = _hits(multi, 2 * (ONE_CALLS + TWO_CALLS))
    assert len({tgid for tgid, _, _, _ in hits}) == 1
    by_cookie: dict[int, list[int]] = {}
    for _, kind, cookie, value in hits:
        by_cookie.setdefault(cookie, []).append(value)
        assert kind == (ENTRY if cookie in (111, 222) else RETURN)
    assert by_cookie == {
        111: [1, 2, 3],  # pyaya_multi_one's argument
        222: [10, 20],
        333: [2, 3, 4],  # its return value
        444: [20, 40],
    }
    entries.detach()
    returns.detach()
    _run(multi_binary)
    assert _hits(multi, 1, timeout=0.5) == []


@pytest.mark.needs("uprobe_multi")
def test_pattern_and_offsets(multi: Ebpf, multi_binary: Path) -> None:
    entry = multi.programs["multi_entry"]
    assert isinstance(entry, UProbeMulti)
    with entry.attach(multi_binary, pattern="pyaya_multi_*") as link:
        assert [name for name, _ in link.locations] == ["pyaya_multi_one", "pyaya_multi_two"]
        # The file offsets the kernel got, as the ELF file says: address - section address + section offset.
        elf = Elf.from_path(multi_binary)
        for name, offset in link.locations:
            symbol = next(sym for sym in elf.symbols if sym.name == name)
            section = elf.section_of(symbol)
            assert section is not None
            assert offset == symbol.value - section.addr + section.offset
        _run(multi_binary)
        hits = _hits(multi, ONE_CALLS + TWO_CALLS)
        assert sorted(value for _, _, _, value in hits) == [1, 2, 3, 10, 20]
        assert {cookie for _, _, cookie, _ in hits} == {0}
        offsets = [offset for _, offset in link.locations]
    with entry.attach(multi_binary, offsets=offsets[1:], cookies=[7]) as by_offset:
        assert by_offset.locations == [("", offsets[1])]
        _run(multi_binary)
        assert Counter((cookie, value) for _, _, cookie, value in _hits(multi, TWO_CALLS)) == {(7, 10): 1, (7, 20): 1}


@pytest.mark.needs("uprobe_multi")
def test_pid_filter_sees_only_that_process(multi: Ebpf, multi_binary: Path) -> None:
    chosen = subprocess.Popen([str(multi_binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    other = subprocess.Popen([str(multi_binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        program = multi.programs["multi_entry"]
        assert isinstance(program, UProbeMulti)
        program.attach(multi_binary, ["pyaya_multi_one", "pyaya_multi_two"], pid=chosen.pid, cookies=[1, 2])
        for child in (other, chosen):
            child.communicate("go\n", timeout=10)
            assert child.returncode == 0
    finally:
        for child in (chosen, other):
            if child.poll() is None:
                child.kill()
                child.wait()
    hits = _hits(multi, ONE_CALLS + TWO_CALLS)
    assert {tgid for tgid, _, _, _ in hits} == {chosen.pid}
    assert Counter(cookie for _, _, cookie, _ in hits) == {1: ONE_CALLS, 2: TWO_CALLS}


@pytest.mark.needs("uprobe_multi")
def test_errors_say_what_to_do_and_leave_nothing_attached(multi: Ebpf, multi_binary: Path) -> None:
    program = multi.programs["multi_entry"]
    assert isinstance(program, UProbeMulti)
    before = _link_ids()
    with pytest.raises(pyaya.NotFoundError, match=r'no symbol "pyaya_multi_three" \(close: pyaya_multi_one'):
        program.attach(multi_binary, ["pyaya_multi_one", "pyaya_multi_three"])
    with pytest.raises(pyaya.NotFoundError, match=r'no function of .* matches "nothing_\*"'):
        program.attach(multi_binary, pattern="nothing_*")
    with pytest.raises(pyaya.InvalidArgumentError, match="exactly one of functions=, pattern= or offsets="):
        program.attach(multi_binary, ["pyaya_multi_one"], pattern="pyaya_*")
    with pytest.raises(pyaya.InvalidArgumentError, match="exactly one of"):
        program.attach(multi_binary)
    with pytest.raises(pyaya.InvalidArgumentError, match="1 cookies for 2 locations"):
        program.attach(multi_binary, ["pyaya_multi_one", "pyaya_multi_two"], cookies=[1])
    with pytest.raises(pyaya.InvalidArgumentError, match="not with pattern="):
        program.attach(multi_binary, pattern="pyaya_*", cookies=[1])
    with pytest.raises(pyaya.InvalidArgumentTypeError, match="list of names"):
        program.attach(multi_binary, "pyaya_multi_one")
    with pytest.raises(pyaya.errors.ProgramError, match="not a UProbe"):
        multi.programs["kmulti_entry"]._native.attach_uprobe_multi(multi_binary, ["pyaya_multi_one"])
    with pytest.raises(pyaya.UnsupportedError, match="pin its link instead"):
        UProbeMulti.from_pin("/sys/fs/bpf/anything")
    assert program.links == []
    assert _link_ids() <= before


@pytest.mark.needs("uprobe_multi")
def test_link_pins_and_unload_detaches(multi: Ebpf, multi_binary: Path, tmp_path: Path) -> None:
    program = multi.programs["multi_entry"]
    assert isinstance(program, UProbeMulti)
    program.attach(multi_binary, ["pyaya_multi_one"], cookies=[5])
    assert len(program.links) == 1
    program.unload()
    assert not program.loaded
    assert program.links == []
    _run(multi_binary)
    assert _hits(multi, 1, timeout=0.5) == []
    # Loaded again (a new fd), attached again.
    with program.attach(multi_binary, ["pyaya_multi_two"], cookies=[6]):
        _run(multi_binary)
        assert {cookie for _, _, cookie, _ in _hits(multi, TWO_CALLS)} == {6}


#: A libbpf-style C object: SEC("uprobe.multi/...") with libbpf's auto-attach spec (pyaya takes the target at
#: attach), a CO-RE read (relocated by pyaya for this program, as aya does for the others), a BTF-defined hash map.
C_MULTI = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16);
    __type(key, __u64);
    __type(value, __u64);
} calls SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16);
    __type(key, __u64);
    __type(value, __u64);
} tgids SEC(".maps");

SEC("uretprobe.multi/placeholder:pyaya_multi_*")
int BPF_KRETPROBE(c_multi_return, unsigned long ret)  /* libbpf 1.1 has no BPF_URETPROBE: the same pt_regs */
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    __u64 cookie = bpf_get_attach_cookie(ctx);
    __u64 tgid = BPF_CORE_READ(task, tgid);
    __u64 one = 1, *count = bpf_map_lookup_elem(&calls, &cookie);
    if (count)
        __sync_fetch_and_add(count, ret);
    else
        bpf_map_update_elem(&calls, &cookie, &ret, BPF_NOEXIST);
    bpf_map_update_elem(&tgids, &cookie, &tgid, BPF_ANY);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.mark.needs("uprobe_multi")
def test_c_object_with_core_reads(multi_binary: Path) -> None:
    path = _c_objects.build("uprobe_multi", C_MULTI, vmlinux=True)
    assert {program.name: program.type for program in inspect_file(path).programs} == {
        "c_multi_return": "URetProbeMulti"
    }
    with Ebpf.load_file(path) as bpf:
        program = bpf.programs["c_multi_return"]
        assert isinstance(program, UProbeMulti)
        assert program.retprobe
        program.attach(multi_binary, ["pyaya_multi_one", "pyaya_multi_two"], cookies=[1, 2])
        child = subprocess.Popen([str(multi_binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        child.communicate("go\n", timeout=10)
        assert child.returncode == 0
        # The sums of the return values: (1+1) + (2+1) + (3+1), and 20 + 40.
        assert dict(bpf.maps["calls"].items()) == {1: 9, 2: 60}
        assert dict(bpf.maps["tgids"].items()) == {1: child.pid, 2: child.pid}


def _getpgid_and_getppid(bpf: Ebpf, times: int) -> None:
    bpf.globals["MULTI_TGID"] = os.getpid()
    for _ in range(times):
        os.getpgid(0)
        os.getppid()
    bpf.globals["MULTI_TGID"] = 0


@pytest.mark.needs("kprobe_multi")
def test_kprobe_multi_hits_each_function_with_its_cookie(multi: Ebpf) -> None:
    entry, ret = multi.programs["kmulti_entry"], multi.programs["kmulti_return"]
    assert isinstance(entry, KProbeMulti)
    assert isinstance(ret, KProbeMulti)
    functions = ["__x64_sys_getpgid", "__x64_sys_getppid"]
    with entry.attach(functions, cookies=[1, 2]) as entries, ret.attach(functions, cookies=[3, 4]):
        assert entries.locations == functions
        _getpgid_and_getppid(multi, 4)
        hits = _hits(multi, 16)
    assert {tgid for tgid, _, _, _ in hits} == {os.getpid()}
    assert Counter((kind, cookie) for _, kind, cookie, _ in hits) == {
        (KENTRY, 1): 4,
        (KENTRY, 2): 4,
        (KRETURN, 3): 4,
        (KRETURN, 4): 4,
    }
    # The syscalls' return values: getpgid(0) is this process group, getppid() the parent.
    assert {value for _, kind, cookie, value in hits if kind == KRETURN and cookie == 3} == {os.getpgid(0)}
    assert {value for _, kind, cookie, value in hits if kind == KRETURN and cookie == 4} == {os.getppid()}


def _filter_functions(pattern: str) -> list[str]:
    listed: list[str] = []
    for line in Path("/sys/kernel/tracing/available_filter_functions").read_text().splitlines():
        name = line.split()[0] if line.strip() else ""
        if name and fnmatch.fnmatchcase(name, pattern) and name not in listed:
            listed.append(name)
    return listed


@pytest.mark.needs("kprobe_multi")
def test_kprobe_multi_pattern_and_errors(multi: Ebpf) -> None:
    entry = multi.programs["kmulti_entry"]
    assert isinstance(entry, KProbeMulti)
    with entry.attach(pattern="__x64_sys_getp*") as link:
        # What ftrace lists (not every syscall of the family is there), in its order, each name once.
        assert link.locations == _filter_functions("__x64_sys_getp*")
        assert "__x64_sys_getpgid" in link.locations
        assert len(link.locations) > 1
        _getpgid_and_getppid(multi, 2)
        kinds = Counter(kind for _, kind, _, _ in _hits(multi, 2))
        assert set(kinds) == {KENTRY}
        assert kinds[KENTRY] >= 2
    before = _link_ids()
    with pytest.raises(pyaya.NotFoundError, match=r'matches "pyaya_no_such_function_\*"'):
        entry.attach(pattern="pyaya_no_such_function_*")
    with pytest.raises(pyaya.NotFoundError, match="BPF_LINK_CREATE"):
        entry.attach(["__x64_sys_getppid", "pyaya_no_such_function"])
    with pytest.raises(pyaya.InvalidArgumentError, match="exactly one of"):
        entry.attach(["__x64_sys_getppid"], pattern="x")
    assert entry.links == []
    assert _link_ids() <= before


@pytest.mark.lacks("kprobes")
def test_kprobe_multi_without_kprobes_says_so(multi: Ebpf) -> None:
    entry = multi.programs["kmulti_entry"]
    assert isinstance(entry, KProbeMulti)
    with pytest.raises(pyaya.UnsupportedError, match="CONFIG_KPROBES=y"):
        entry.attach(["__x64_sys_getppid"])
    assert entry.links == []
