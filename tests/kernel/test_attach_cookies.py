"""bpf cookies on the tracing attach types (``cookie=``): one program attached twice with two cookies reads each
back with ``bpf_get_attach_cookie`` (the ``trace_cookie`` fixture counts its runs per cookie in ``COOKIES``)."""

from __future__ import annotations

import ctypes
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyaya
import pytest
from pyaya import Ebpf, KProbe, PerfEvent, TracePoint, UProbe

pytestmark = pytest.mark.needs("bpf cookies")

CALLS = 3

TWO_FUNCTIONS = r"""
#include <stdio.h>
__attribute__((noinline)) int pyaya_cookie_target(int a) { __asm__ volatile("" ::: "memory"); return a + 1; }
int main(void) {
    int total = 0;
    for (int i = 0; i < CALLS; i++) total += pyaya_cookie_target(i);
    printf("%d\n", total);
    return 0;
}
""".replace("CALLS", str(CALLS))


@pytest.fixture
def target_binary(tmp_path: Path) -> Path:
    """A C program that calls ``pyaya_cookie_target`` three times and exits."""
    source = tmp_path / "target.c"
    source.write_text(TWO_FUNCTIONS)
    binary = tmp_path / "target"
    subprocess.run(["gcc", "-O1", "-o", str(binary), str(source)], check=True, capture_output=True)
    return binary


@pytest.fixture
def cookies(fixtures_dir: Path) -> Iterator[Ebpf]:
    with Ebpf.load_file(fixtures_dir / "trace_cookie") as bpf:
        yield bpf


def _counts(bpf: Ebpf) -> dict[int, int]:
    table = bpf.maps["COOKIES"]
    assert isinstance(table, pyaya.HashMap)
    return {int(key): int(value) for key, value in table.items()}


def test_uprobe_cookies_tell_two_attachments_apart(cookies: Ebpf, target_binary: Path) -> None:
    program = cookies.programs["cookie_uprobe"]
    assert isinstance(program, UProbe)
    first = program.attach(target_binary, "pyaya_cookie_target", cookie=11)
    second = program.attach(target_binary, "pyaya_cookie_target", cookie=2**64 - 1)
    subprocess.run([target_binary], check=True, capture_output=True)
    assert _counts(cookies) == {11: CALLS, 2**64 - 1: CALLS}
    second.detach()
    assert not second.attached
    subprocess.run([target_binary], check=True, capture_output=True)
    assert _counts(cookies) == {11: 2 * CALLS, 2**64 - 1: CALLS}
    assert first in program.links


def test_tracepoint_cookies_and_their_link(cookies: Ebpf) -> None:
    program = cookies.programs["cookie_tracepoint"]
    assert isinstance(program, TracePoint)
    # A tracepoint runs a program once however often it is attached (the kernel refuses a second attachment), so
    # the two cookies go to two tracepoints that one `true` run passes both of.
    first = program.attach("sched", "sched_process_exec", cookie=33)
    second = program.attach("sched", "sched_process_exit", cookie=44)
    assert set(program.links) == {first, second}
    subprocess.run(["true"], check=True)
    counts = _counts(cookies)
    assert counts.get(33, 0) >= 1
    assert counts.get(44, 0) >= 1
    assert 0 not in counts
    pin = Path("/sys/fs/bpf") / f"pyaya-test-cookie-{uuid.uuid4().hex[:8]}"
    first.pin(pin)
    try:
        assert pin.exists()
        assert first.pinned_path == pin
    finally:
        first.unpin()
    assert not pin.exists()
    first.detach()
    del second  # its program still holds it: it stays attached until the object closes
    before = _counts(cookies)
    subprocess.run(["true"], check=True)
    after = _counts(cookies)
    assert after[33] == before[33]
    assert after[44] > before[44]


def test_tracepoint_cookie_on_a_missing_tracepoint_says_where_to_look(cookies: Ebpf) -> None:
    program = cookies.programs["cookie_tracepoint"]
    with (
        program.attach("sched", "sched_process_exec", cookie=1),
        pytest.raises(pyaya.ProgramError, match="already attached to this event"),
    ):
        program.attach("sched", "sched_process_exec", cookie=2)
    with pytest.raises(pyaya.NotFoundError, match="no tracepoint sched/no_such_event"):
        program.attach("sched", "no_such_event", cookie=1)
    assert program.links == []


def _burn_cpu(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_perf_event_cookies_per_attach(cookies: Ebpf) -> None:
    program = cookies.programs["cookie_perf"]
    assert isinstance(program, PerfEvent)
    every_cpu = program.attach("cpu-clock", sample_frequency=1000, cookie=55)
    this_process = program.attach("cpu-clock", sample_frequency=1000, pid=0, cookie=66)
    _burn_cpu(0.3)
    every_cpu.detach()
    this_process.detach()
    counts = _counts(cookies)
    assert counts.get(55, 0) > 0
    assert counts.get(66, 0) > 0
    assert set(counts) == {55, 66}
    _burn_cpu(0.1)
    assert _counts(cookies) == counts  # detached: no more runs


def test_perf_breakpoint_cookie(cookies: Ebpf) -> None:
    program = cookies.programs["cookie_perf"]
    assert isinstance(program, PerfEvent)
    watched = ctypes.c_uint32(0)
    with program.attach_breakpoint(ctypes.addressof(watched), "w", length=4, pid=0, cookie=77):
        for value in range(CALLS):
            watched.value = value
    assert _counts(cookies) == {77: CALLS}


def test_perf_event_cookie_link_of_several_cpus_refuses_a_pin(cookies: Ebpf) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs")
    program = cookies.programs["cookie_perf"]
    link = program.attach("cpu-clock", cookie=1)
    with pytest.raises(pyaya.UnsupportedError, match="one per CPU"):
        link.pin(Path("/sys/fs/bpf/pyaya-test-cookie-refused"))
    assert link.attached


@pytest.mark.parametrize("cookie", [-1, 2**64, "1"])
def test_cookie_must_be_a_u64(cookies: Ebpf, cookie: object) -> None:
    program = cookies.programs["cookie_tracepoint"]
    with pytest.raises((pyaya.errors.InvalidArgumentError, pyaya.errors.InvalidArgumentTypeError)):
        program.attach("sched", "sched_process_exec", cookie=cookie)  # type: ignore[arg-type]
    assert program.links == []


@pytest.mark.needs("kprobes")
def test_kprobe_cookies(cookies: Ebpf, tmp_path: Path) -> None:
    program = cookies.programs["cookie_kprobe"]
    assert isinstance(program, KProbe)
    with program.attach("do_unlinkat", cookie=77), program.attach("do_unlinkat", cookie=88):
        victim = tmp_path / "victim"
        victim.touch()
        victim.unlink()
        counts = _counts(cookies)
    assert counts.get(77, 0) >= 1
    assert counts.get(88, 0) >= 1


def _getppid_calls(bpf: Ebpf, count: int = CALLS) -> None:
    """``count`` getppid() calls by this process, the only one whose runs the busy-path programs count."""
    bpf.globals["COOKIE_TGID"] = os.getpid()
    for _ in range(count):
        os.getppid()


@pytest.mark.parametrize("program_name", ["cookie_raw_tp", "cookie_tp_btf"])
def test_raw_tracepoint_and_tp_btf_cookies(cookies: Ebpf, program_name: str) -> None:
    """Both raw tracepoint kinds take a cookie (BPF_RAW_TRACEPOINT_OPEN and a tracing link, kernel 6.10): one
    program attached twice to ``sys_enter`` counts each of this process's syscalls under both cookies."""
    if program_name == "cookie_tp_btf" and not pyaya.features.tp_btf_supported().ok:
        pytest.skip(pyaya.features.tp_btf_supported().reason)
    program = cookies.programs[program_name]
    if isinstance(program, pyaya.RawTracePoint):
        first, second = program.attach("sys_enter", cookie=101), program.attach("sys_enter", cookie=102)
    else:
        first, second = program.attach(cookie=101), program.attach(cookie=102)
    _getppid_calls(cookies)
    counts = _counts(cookies)
    assert counts.get(102, 0) >= CALLS  # and other syscalls of this process meanwhile
    assert counts.get(101, 0) >= counts[102]  # attached first, so it saw at least as many
    assert 0 not in counts
    second.detach()
    before = _counts(cookies)
    _getppid_calls(cookies)
    after = _counts(cookies)
    assert after[101] - before[101] >= CALLS
    assert after[102] == before[102]
    first.detach()


@pytest.mark.needs("fentry/fexit")
@pytest.mark.parametrize("program_name", ["cookie_fentry", "cookie_fexit"])
def test_fentry_and_fexit_cookies(cookies: Ebpf, program_name: str) -> None:
    """A trampoline program takes a cookie on its link (kernel 6.0); the kernel keeps one link of a program per
    trampoline, so the two cookies come one after the other."""
    program = cookies.programs[program_name]
    with program.attach(cookie=201):
        _getppid_calls(cookies)
    with program.attach(cookie=202):
        _getppid_calls(cookies, 2 * CALLS)
    counts = _counts(cookies)
    assert counts.get(201, 0) >= CALLS
    assert counts.get(202, 0) >= 2 * CALLS
    assert 0 not in counts


@pytest.mark.needs("lsm")
def test_lsm_cookies(cookies: Ebpf, tmp_path: Path) -> None:
    program = cookies.programs["cookie_lsm"]
    cookies.globals["COOKIE_TGID"] = os.getpid()
    opened = tmp_path / "opened"
    opened.write_text("x")
    for cookie in (301, 302):
        with program.attach(cookie=cookie):
            for _ in range(CALLS):
                opened.read_text()
    counts = _counts(cookies)
    assert counts.get(301, 0) >= CALLS
    assert counts.get(302, 0) >= CALLS


def test_programs_without_a_cookie_slot_refuse_one(cookies: Ebpf, requires_root: None) -> None:
    with pytest.raises((pyaya.errors.InvalidArgumentError, pyaya.errors.InvalidArgumentTypeError)):
        cookies.programs["cookie_raw_tp"].attach("sys_enter", cookie=-5)
