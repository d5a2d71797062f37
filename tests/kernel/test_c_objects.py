"""C objects as libbpf users build them (clang, libbpf's headers), loaded by pyaya into this kernel: perf buffers
open from load, and a C program's globals by name (``const volatile`` set before load, ``.bss``/``.data`` while it
runs). Sources are written here in the patterns of libbpf-tools; each is built by _c_objects.py."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import _c_objects
import pytest
from pyaya import Btf, Ebpf
from pyaya.errors import NotFoundError, PyayaError

pytestmark = pytest.mark.smoke

PERF_EXEC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
    __uint(key_size, sizeof(__u32));
    __uint(value_size, sizeof(__u32));
} events SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_execve")
int on_exec(void *ctx)
{
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &tgid, sizeof(tgid));
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

# The globals of a libbpf-tools-style filter: a `const volatile` set before load, a .bss counter, a .data step.
GLOBALS = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 target_tgid = 0;
__u64 hits = 0;
__u64 step = 1;

SEC("tracepoint/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
    if (target_tgid && (bpf_get_current_pid_tgid() >> 32) != target_tgid)
        return 0;
    hits += step; /* one thread calls getppid here: no atomic needed (clang 20+'s default -mcpu=v3 would make
                     __sync_fetch_and_add a BPF_ATOMIC with fetch, which kernels before 5.12 refuse) */
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


def test_perf_samples_right_after_attach_arrive_before_the_map_is_touched() -> None:
    """The per-CPU perf buffers are open from load: a sample emitted between attach and the first use of
    ``bpf.maps[...]`` is delivered, and nothing is counted lost."""
    path = _c_objects.build("perf_exec", PERF_EXEC)
    with Ebpf.load_file(path) as bpf:
        bpf.programs["on_exec"].attach("syscalls", "sys_enter_execve")
        child = subprocess.Popen(["/bin/true"])
        child.wait()
        time.sleep(0.05)
        events = bpf.maps["events"]
        seen: list[int] = []
        deadline = time.monotonic() + 5
        while child.pid not in seen and time.monotonic() < deadline:
            seen += [int.from_bytes(record[:4], "little") for record in events.drain(timeout=0.5)]
        assert child.pid in seen
        assert events.lost == 0


def test_c_globals_by_name_before_load_and_while_running() -> None:
    path = _c_objects.build("c_globals", GLOBALS)
    with Ebpf.load_file(path, globals={"target_tgid": os.getpid()}) as bpf:
        assert bpf.globals["target_tgid"] == os.getpid()
        bpf.programs["on_getppid"].attach("syscalls", "sys_enter_getppid")
        for _ in range(5):
            os.getppid()
        assert bpf.globals["hits"] == 5  # .bss, read from the kernel's memory map while the program runs
        bpf.globals["step"] = 10  # .data, written while it runs
        for _ in range(3):
            os.getppid()
        assert bpf.globals["hits"] == 35
        with pytest.raises(NotFoundError) as missing:
            bpf.globals["target_pid"]
        assert "target_tgid" in str(missing.value)
        assert "hits" in str(missing.value)
        with pytest.raises(PyayaError) as frozen:
            bpf.globals["target_tgid"] = 1
        message = str(frozen.value)
        assert "rodata" in message or "read-only" in message or "frozen" in message, message
        assert "permission" not in message.lower(), message


def test_unknown_global_at_load_names_the_existing_ones() -> None:
    path = _c_objects.build("c_globals", GLOBALS)
    with pytest.raises(PyayaError) as refused:
        Ebpf.load_file(path, globals={"target_pid": 1})
    message = str(refused.value)
    assert "target_pid" in message
    assert "target_tgid" in message, message
    assert "not a valid BPF object" not in message


# CO-RE as libbpf-tools write it: the offset of task_struct.tgid and its value, relocated at load.
CORE_TGID = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

const volatile __u32 target_tgid = 0;
__u64 tgid_offset = 0;
__u32 seen_tgid = 0;

SEC("tracepoint/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();

    if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
        return 0;
    tgid_offset = bpf_core_field_offset(task->tgid);
    seen_tgid = BPF_CORE_READ(task, tgid);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


def _btf_with_task_tgid_at(offset: int) -> bytes:
    from bpfobj import BtfBuilder  # noqa: PLC0415 - tests/unit's builder, on the path through conftest

    b = BtfBuilder()
    integer = b.int_("int", 4, signed=True)
    b.composite("STRUCT", "task_struct", 4096, [("tgid", integer, offset * 8, 0)])
    return b.to_bytes()


def test_core_relocations_use_the_btf_given_at_load(tmp_path: Path) -> None:
    """``btf=`` (libbpf's ``btf_custom_path``): a C object's CO-RE relocations are made against that BTF. With
    a copy of this kernel's BTF the program reads its own tgid; with a BTF that puts ``tgid`` elsewhere, the
    relocated offset the program reports is that BTF's."""
    path = _c_objects.build("core_tgid", CORE_TGID, vmlinux=True)
    copy = tmp_path / "vmlinux"
    copy.write_bytes(Path("/sys/kernel/btf/vmlinux").read_bytes())
    kernel_offset = Btf.vmlinux().member_offset("task_struct", "tgid")
    crafted = tmp_path / "crafted.btf"
    crafted.write_bytes(_btf_with_task_tgid_at(kernel_offset + 64))
    for given, offset in ((copy, kernel_offset), (Btf.from_path(crafted), kernel_offset + 64)):
        with Ebpf.load_file(path, globals={"target_tgid": os.getpid()}, btf=given) as bpf:
            bpf.programs["on_getppid"].attach("syscalls", "sys_enter_getppid")
            os.getppid()
            assert bpf.globals["tgid_offset"] == offset
            if offset == kernel_offset:
                assert bpf.globals["seen_tgid"] == os.getpid()
