"""C objects in the patterns of libbpf-tools (execsnoop, opensnoop, exitsnoop, bashreadline, runqlat, syscount,
tcpstates, a task iterator, uprobes), built by clang as libbpf users build them (_c_objects.py), loaded by pyaya,
attached, triggered by a real event of this test, and checked on what comes back. Each source is written here
(the tools' patterns, not their code). The last test holds ``pyaya inspect`` to what libbpf (bpftool) makes of
each object."""

from __future__ import annotations

import json
import os
import platform
import pty
import re
import select
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _c_objects
import pytest
from pyaya import Ebpf, UProbe, features
from pyaya.errors import InvalidArgumentError
from pyaya.inspect import inspect_file
from pyaya.runtime import log2_buckets

pytestmark = pytest.mark.smoke

# execsnoop: argv read from the syscall's arguments (BPF_CORE_READ(ctx, args[1]) of vmlinux.h's
# trace_event_raw_sys_enter, whose args[] is sized 6 on this kernel; the trailing flexible array of
# syscall_trace_enter is test_c_objects.py's) into a per-CPU scratch event, of which only the filled prefix
# (offsetof(struct event, args) + args_size) goes out over a perf event array.
EXECSNOOP = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define ARG_LEN 128
#define MAX_ARGS 8
#define ARGS_BUF (ARG_LEN * MAX_ARGS)

struct event {
    __u32 pid;
    __u32 ppid;
    __u32 args_count;
    __u32 args_size;
    char comm[16];
    char args[ARGS_BUF];
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct event);
} scratch SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
    __uint(key_size, sizeof(__u32));
    __uint(value_size, sizeof(__u32));
} events SEC(".maps");

const volatile __u32 parent_tgid = 0;

SEC("tp/syscalls/sys_enter_execve")
int on_execve(struct trace_event_raw_sys_enter *ctx)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    const char *const *argv;
    const char *arg;
    struct event *e;
    __u32 zero = 0, ppid, size;
    int i, n;

    ppid = BPF_CORE_READ(task, real_parent, tgid);
    if (ppid != parent_tgid)
        return 0;
    e = bpf_map_lookup_elem(&scratch, &zero);
    if (!e)
        return 0;
    e->pid = bpf_get_current_pid_tgid() >> 32;
    e->ppid = ppid;
    e->args_count = 0;
    e->args_size = 0;
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    argv = (const char *const *)BPF_CORE_READ(ctx, args[1]);
    for (i = 0; i < MAX_ARGS; i++) {
        if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) || !arg)
            break;
        size = e->args_size;
        if (size > ARGS_BUF - ARG_LEN)
            break;
        n = bpf_probe_read_user_str(&e->args[size], ARG_LEN, arg);
        if (n <= 0)
            break;
        e->args_count++;
        e->args_size = size + n;
    }
    size = e->args_size;
    if (size > ARGS_BUF)
        size = ARGS_BUF;
    bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, e, __builtin_offsetof(struct event, args) + size);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

# opensnoop: the entry stores the arguments by thread id, the exit sends them with the result.
OPENSNOOP = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct args_t {
    const char *fname;
    __s64 flags;
};

struct event {
    __u32 pid;
    __s32 ret;
    __s64 flags;
    char fname[256];
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, __u32);
    __type(value, struct args_t);
} start SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 64 * 1024);
} events SEC(".maps");

const volatile __u32 target_tgid = 0;

SEC("tp/syscalls/sys_enter_openat")
int on_enter_openat(struct trace_event_raw_sys_enter *ctx)
{
    __u64 id = bpf_get_current_pid_tgid();
    __u32 tid = id;
    struct args_t args = {};

    if ((id >> 32) != target_tgid)
        return 0;
    args.fname = (const char *)BPF_CORE_READ(ctx, args[1]);
    args.flags = BPF_CORE_READ(ctx, args[2]);
    bpf_map_update_elem(&start, &tid, &args, BPF_ANY);
    return 0;
}

SEC("tp/syscalls/sys_exit_openat")
int on_exit_openat(struct trace_event_raw_sys_exit *ctx)
{
    __u64 id = bpf_get_current_pid_tgid();
    __u32 tid = id;
    struct args_t *args = bpf_map_lookup_elem(&start, &tid);
    struct event *e;

    if (!args)
        return 0;
    e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (e) {
        e->pid = id >> 32;
        e->ret = BPF_CORE_READ(ctx, ret);
        e->flags = args->flags;
        bpf_probe_read_user_str(e->fname, sizeof(e->fname), args->fname);
        bpf_ringbuf_submit(e, 0);
    }
    bpf_map_delete_elem(&start, &tid);
    return 0;
}

/* Puts struct event into the object's BTF (ring buffers take no __type), for user space to decode by name. */
const struct event *unused_event __attribute__((unused));

char LICENSE[] SEC("license") = "GPL";
"""

# exitsnoop: the exit code of a child of this process, read from its task with BPF_CORE_READ (the BTF pointer of
# bpf_get_current_task_btf, or with -DUNTYPED_TASK bpf_get_current_task's plain address).
EXITSNOOP = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct event {
    __u32 pid;
    __u32 ppid;
    __s32 exit_code;
    __u32 exit_signal;
    char comm[16];
};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 64 * 1024);
} events SEC(".maps");

const volatile __u32 parent_tgid = 0;

SEC("tp/sched/sched_process_exit")
int on_exit(void *ctx)
{
#ifdef UNTYPED_TASK
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
#else
    struct task_struct *task = bpf_get_current_task_btf();
#endif
    __u64 id = bpf_get_current_pid_tgid();
    struct event *e;

    if ((id >> 32) != (__u32)id) /* threads: only the group leader's exit is the process's */
        return 0;
    if (BPF_CORE_READ(task, real_parent, tgid) != parent_tgid)
        return 0;
    e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e)
        return 0;
    e->pid = id >> 32;
    e->ppid = parent_tgid;
    e->exit_code = BPF_CORE_READ(task, exit_code);
    e->exit_signal = BPF_CORE_READ(task, exit_signal);
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    bpf_ringbuf_submit(e, 0);
    return 0;
}

/* Puts struct event into the object's BTF (ring buffers take no __type), for user space to decode by name. */
const struct event *unused_event __attribute__((unused));

char LICENSE[] SEC("license") = "GPL";
"""

# bashreadline: a uretprobe on readline reads the line it returns; the section names the binary and the function,
# so attach() takes them from it (libbpf's auto-attach).
READLINE = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct event {
    __u32 pid;
    char comm[16];
    char line[120];
};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 64 * 1024);
} events SEC(".maps");

SEC("uretprobe//bin/bash:readline")
int BPF_KRETPROBE(on_readline_return, const void *ret)
{
    struct event *e;

    if (!ret)
        return 0;
    e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e)
        return 0;
    e->pid = bpf_get_current_pid_tgid() >> 32;
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    bpf_probe_read_user_str(e->line, sizeof(e->line), ret);
    bpf_ringbuf_submit(e, 0);
    return 0;
}

/* Puts struct event into the object's BTF (ring buffers take no __type), for user space to decode by name. */
const struct event *unused_event __attribute__((unused));

char LICENSE[] SEC("license") = "GPL";
"""

# runqlat: the time from a task's wakeup to its switch-in, as a log2 histogram (per CPU: no atomics, no races).
# BPF_PROG gives the tracepoint's typed arguments; raw_tp reads through them with BPF_CORE_READ (bpf_probe_read),
# tp_btf dereferences them directly.
RUNQLAT = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#define MAX_SLOTS 32

struct hist {
    __u64 samples;
    __u32 slots[MAX_SLOTS];
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 10240);
    __type(key, __u32);
    __type(value, __u64);
} wakeups SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct hist);
} hists SEC(".maps");

const volatile __u32 target_tgid = 0;

static __always_inline __u32 bit_length(__u64 v)
{
    __u32 n = 0;
    for (int i = 0; i < 64 && v; i++) {
        v >>= 1;
        n++;
    }
    return n;
}

static __always_inline int woken(struct task_struct *p)
{
    __u32 tid = BPF_CORE_READ(p, pid);
    __u64 now = bpf_ktime_get_ns();

    if (BPF_CORE_READ(p, tgid) != target_tgid)
        return 0;
    bpf_map_update_elem(&wakeups, &tid, &now, BPF_ANY);
    return 0;
}

static __always_inline int switched_in(struct task_struct *next)
{
    __u32 tid = BPF_CORE_READ(next, pid), zero = 0, slot;
    __u64 *then = bpf_map_lookup_elem(&wakeups, &tid);
    struct hist *h;

    if (!then)
        return 0;
    slot = bit_length(bpf_ktime_get_ns() - *then);
    bpf_map_delete_elem(&wakeups, &tid);
    h = bpf_map_lookup_elem(&hists, &zero);
    if (!h)
        return 0;
    if (slot >= MAX_SLOTS)
        slot = MAX_SLOTS - 1;
    h->slots[slot]++;
    h->samples++;
    return 0;
}

#ifdef RAW_TP
SEC("raw_tp/sched_wakeup")
#else
SEC("tp_btf/sched_wakeup")
#endif
int BPF_PROG(on_wakeup, struct task_struct *p)
{
    return woken(p);
}

#ifdef RAW_TP
SEC("raw_tp/sched_switch")
#else
SEC("tp_btf/sched_switch")
#endif
int BPF_PROG(on_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
    return switched_in(next);
}

char LICENSE[] SEC("license") = "GPL";
"""

# syscount: raw_tp sys_enter keeps the syscall id by thread, raw_tp sys_exit counts it (and its time) by id.
SYSCOUNT = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct start_t {
    __u64 id;
    __u64 ts;
};

struct data_t {
    __u64 count;
    __u64 total_ns;
    __u64 errors;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, __u32);
    __type(value, struct start_t);
} start SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, __u32);
    __type(value, struct data_t);
} counts SEC(".maps");

const volatile __u32 target_tgid = 0;

SEC("raw_tp/sys_enter")
int on_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
    __u64 id = bpf_get_current_pid_tgid();
    __u32 tid = id;
    struct start_t s = {};

    if ((id >> 32) != target_tgid)
        return 0;
    s.id = ctx->args[1];
    s.ts = bpf_ktime_get_ns();
    bpf_map_update_elem(&start, &tid, &s, BPF_ANY);
    return 0;
}

SEC("raw_tp/sys_exit")
int on_sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
    __u32 tid = bpf_get_current_pid_tgid();
    struct start_t *s = bpf_map_lookup_elem(&start, &tid);
    struct data_t zero = {}, *d;
    __u32 key;

    if (!s)
        return 0;
    key = s->id;
    d = bpf_map_lookup_elem(&counts, &key);
    if (!d) {
        bpf_map_update_elem(&counts, &key, &zero, BPF_NOEXIST);
        d = bpf_map_lookup_elem(&counts, &key);
        if (!d)
            goto out;
    }
    d->count++; /* one thread of the test makes the calls counted */
    d->total_ns += bpf_ktime_get_ns() - s->ts;
    if ((long)ctx->args[1] < 0)
        d->errors++;
out:
    bpf_map_delete_elem(&start, &tid);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

# tcpstates: the fields of the tracepoint's own context struct (vmlinux.h, CO-RE), for the sockets of one port.
TCPSTATES = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define AF_INET 2

struct event {
    __u64 skaddr;
    __s32 oldstate;
    __s32 newstate;
    __u16 sport;
    __u16 dport;
    __u32 pid;
};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 64 * 1024);
} events SEC(".maps");

const volatile __u16 target_port = 0;

SEC("tp/sock/inet_sock_set_state")
int on_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
    struct event *e;
    __u16 sport = BPF_CORE_READ(ctx, sport), dport = BPF_CORE_READ(ctx, dport);

    if (BPF_CORE_READ(ctx, protocol) != IPPROTO_TCP || BPF_CORE_READ(ctx, family) != AF_INET)
        return 0;
    if (sport != target_port && dport != target_port)
        return 0;
    e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e)
        return 0;
    e->skaddr = (__u64)BPF_CORE_READ(ctx, skaddr);
    e->oldstate = BPF_CORE_READ(ctx, oldstate);
    e->newstate = BPF_CORE_READ(ctx, newstate);
    e->sport = sport;
    e->dport = dport;
    e->pid = bpf_get_current_pid_tgid() >> 32;
    bpf_ringbuf_submit(e, 0);
    return 0;
}

/* Puts struct event into the object's BTF (ring buffers take no __type), for user space to decode by name. */
const struct event *unused_event __attribute__((unused));

char LICENSE[] SEC("license") = "GPL";
"""

# A task iterator: one line per task, "tgid pid comm".
TASK_ITER = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("iter/task")
int dump_task(struct bpf_iter__task *ctx)
{
    struct seq_file *seq = ctx->meta->seq;
    struct task_struct *task = ctx->task;

    if (!task)
        return 0;
    BPF_SEQ_PRINTF(seq, "%d %d %s\n", task->tgid, task->pid, task->comm);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

# A uprobe and a uretprobe on a function of a small program, arguments through BPF_KPROBE (PT_REGS_PARMn).
UPROBE = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct call {
    __u32 pid;
    __u32 kind; /* 0: entry, 1: return */
    __s64 a;
    __s64 b;
    __s64 ret;
};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 64 * 1024);
} calls SEC(".maps");

static __always_inline void send(__u32 kind, __s64 a, __s64 b, __s64 ret)
{
    struct call *c = bpf_ringbuf_reserve(&calls, sizeof(*c), 0);

    if (!c)
        return;
    c->pid = bpf_get_current_pid_tgid() >> 32;
    c->kind = kind;
    c->a = a;
    c->b = b;
    c->ret = ret;
    bpf_ringbuf_submit(c, 0);
}

SEC("uprobe")
int BPF_KPROBE(on_mul, int a, int b)
{
    send(0, a, (int)PT_REGS_PARM2(ctx), 0);
    return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(on_mul_return, int ret)
{
    send(1, 0, 0, ret);
    return 0;
}

/* Puts struct call into the object's BTF (ring buffers take no __type), for user space to decode by name. */
const struct call *unused_call __attribute__((unused));

char LICENSE[] SEC("license") = "GPL";
"""

MUL_PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) int pyaya_mul(int a, int b)
{
    __asm__ volatile("" ::: "memory");
    return a * b;
}

int main(int argc, char **argv)
{
    int total = 0;
    for (int i = 1; i <= 3; i++)
        total += pyaya_mul(i, -7);
    printf("%d\n", total);
    return 0;
}
"""

# execsnoop as older libbpf-tools wrote it: the event is a stack variable sent whole over a perf event array, so
# clang leaves `struct event` out of the object's .BTF (no map, global or signature uses it); its DWARF (-g) has it.
EXECSNOOP_STACK = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct event {
    __u32 pid;
    __s32 retval;
    char comm[16];
};

struct {
    __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
    __uint(key_size, sizeof(__u32));
    __uint(value_size, sizeof(__u32));
} events SEC(".maps");

SEC("tp/syscalls/sys_enter_execve")
int on_execve(void *ctx)
{
    struct event e = {};

    e.pid = bpf_get_current_pid_tgid() >> 32;
    e.retval = -7;
    bpf_get_current_comm(e.comm, sizeof(e.comm));
    bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &e, sizeof(e));
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

#: name -> (source, build options) of every object of this file, for the inspect-against-bpftool test.
OBJECTS: dict[str, tuple[str, dict[str, Any]]] = {
    "lt_execsnoop": (EXECSNOOP, {"vmlinux": True}),
    "lt_execsnoop_stack": (EXECSNOOP_STACK, {"vmlinux": True}),
    "lt_opensnoop": (OPENSNOOP, {"vmlinux": True}),
    "lt_exitsnoop": (EXITSNOOP, {"vmlinux": True}),
    "lt_exitsnoop_untyped": (EXITSNOOP, {"vmlinux": True, "extra_flags": ("-DUNTYPED_TASK",)}),
    "lt_readline": (READLINE, {"vmlinux": True}),
    "lt_runqlat": (RUNQLAT, {"vmlinux": True}),
    "lt_runqlat_raw": (RUNQLAT, {"vmlinux": True, "extra_flags": ("-DRAW_TP",)}),
    "lt_syscount": (SYSCOUNT, {"vmlinux": True}),
    "lt_tcpstates": (TCPSTATES, {"vmlinux": True}),
    "lt_task_iter": (TASK_ITER, {"vmlinux": True}),
    "lt_uprobe": (UPROBE, {"vmlinux": True}),
}


def _build(name: str) -> Path:
    source, options = OBJECTS[name]
    return _c_objects.build(name, source, **options)


def _gcc(tmp_path: Path, name: str, source: str) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed (apt-get install gcc): the test builds the program it probes")
    (tmp_path / f"{name}.c").write_text(source)
    binary = tmp_path / name
    subprocess.run([gcc, "-O1", "-o", str(binary), str(tmp_path / f"{name}.c")], check=True, capture_output=True)
    return binary


def _collect(drain: Callable[[], list[Any]], done: Callable[[list[Any]], bool], timeout: float = 5) -> list[Any]:
    """Records drained until ``done(records)`` or the timeout."""
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    while not done(found) and time.monotonic() < deadline:
        found += drain()
    return found


def test_execsnoop_reads_argv_of_an_exec_into_a_prefix_sent_over_perf() -> None:
    with Ebpf.load_file(_build("lt_execsnoop"), globals={"parent_tgid": os.getpid()}) as bpf:
        events = bpf.maps["events"].typed("event", partial=True, as_bytes=["args"])
        with bpf.programs["on_execve"].attach():
            child = subprocess.Popen(["/bin/echo", "hello", "pyaya"], stdout=subprocess.DEVNULL)
            child.wait()
            seen = _collect(lambda: events.drain(timeout=0.2), lambda found: any(e.pid == child.pid for e in found))
        ours = [e for e in seen if e.pid == child.pid]
        assert len(ours) == 1, seen
        event = ours[0]
        assert event.ppid == os.getpid()
        assert event.args_count == 3
        assert event.args_size == len(b"/bin/echo\0hello\0pyaya\0")
        # The prefix sent, and no more than the kernel's padding: a perf sample's raw data is padded with zeros
        # so that its size field and data end on 8 bytes (libbpf's callbacks see the same padded size).
        assert event.args[: event.args_size] == b"/bin/echo\0hello\0pyaya\0"
        assert set(event.args[event.args_size :]) <= {0}
        assert (4 + 32 + len(event.args)) % 8 == 0
        assert len(event.args) - event.args_size < 8
        assert event.args.split(b"\0")[:3] == [b"/bin/echo", b"hello", b"pyaya"]
        assert events.undecoded == 0
        assert bpf.maps["events"].lost == 0
        assert bpf.maps["events"].max_entries == _possible_cpus()  # sized at load, as libbpf sizes it


def test_execsnoop_stack_event_decodes_by_name_from_dwarf() -> None:
    with Ebpf.load_file(_build("lt_execsnoop_stack")) as bpf:
        assert bpf.btf is not None
        assert not [t for t in bpf.btf.find_all("event") if t.kind.name == "STRUCT"]  # only the DWARF has it
        assert "event" in bpf.types
        events = bpf.maps["events"].typed("event")
        with bpf.programs["on_execve"].attach():
            child = subprocess.Popen(["/bin/true"])
            child.wait()
            seen = _collect(lambda: events.drain(timeout=0.2), lambda found: any(e.pid == child.pid for e in found))
        ours = [e for e in seen if e.pid == child.pid]
        assert len(ours) == 1, seen
        assert ours[0].retval == -7
        assert isinstance(ours[0].comm, str)
        assert events.undecoded == 0


@pytest.mark.needs("map:RingBuf")
def test_opensnoop_pairs_openat_entry_and_exit(tmp_path: Path) -> None:
    known = tmp_path / "known-file"
    known.write_text("x")
    missing = tmp_path / "no-such-file"
    with Ebpf.load_file(_build("lt_opensnoop"), globals={"target_tgid": os.getpid()}) as bpf:
        with bpf.programs["on_enter_openat"].attach(), bpf.programs["on_exit_openat"].attach():
            fd = os.open(known, os.O_RDONLY | os.O_CLOEXEC)
            os.close(fd)
            with pytest.raises(FileNotFoundError):
                os.open(missing, os.O_RDONLY)
        events = bpf.maps["events"].typed("event")
        names = {str(known), str(missing)}
        seen = [e for e in events.drain(timeout=0.5) if e.fname in names]
        by_name = {e.fname: e for e in seen}
        assert set(by_name) == names, seen
        assert by_name[str(known)].ret == fd
        assert by_name[str(known)].pid == os.getpid()
        assert by_name[str(known)].flags & os.O_CLOEXEC
        assert by_name[str(missing)].ret == -2  # -ENOENT
        assert len(bpf.maps["start"]) == 0  # every entry was paired with its exit


@pytest.mark.needs("map:RingBuf")
@pytest.mark.parametrize(
    ("name", "requirement"),
    [
        ("lt_exitsnoop", "helper:TracePoint:bpf_get_current_task_btf"),
        ("lt_exitsnoop_untyped", "helper:bpf_get_current_task"),
    ],
    ids=["task_btf", "task"],
)
def test_exitsnoop_sees_a_childs_exit_status(name: str, requirement: str) -> None:
    if not (probe := features.requirement(requirement)).ok:
        pytest.skip(f"this kernel lacks {requirement}: {probe.reason}")
    with Ebpf.load_file(_build(name), globals={"parent_tgid": os.getpid()}) as bpf:
        with bpf.programs["on_exit"].attach():
            child = subprocess.Popen(["/bin/sh", "-c", "exit 7"])
            assert child.wait() == 7
        events = bpf.maps["events"].typed("event")
        ours = [e for e in events.drain(timeout=0.5) if e.pid == child.pid]
        assert len(ours) == 1, ours
        assert (ours[0].exit_code >> 8) & 0xFF == 7
        assert ours[0].exit_code & 0x7F == 0  # no signal
        assert ours[0].comm == "sh"


def _bash_has_readline(bash: str) -> str | None:
    nm = shutil.which("nm")
    if nm is None:
        return "nm is not installed (binutils): cannot tell whether bash exports readline"
    symbols = subprocess.run([nm, "-D", "--defined-only", bash], capture_output=True, text=True, check=False).stdout
    if not any(line.split()[-1:] == ["readline"] for line in symbols.splitlines()):
        return f"{bash} does not export readline (linked against a shared libreadline?)"
    return None


def _bash_on_a_pty(bash: str, line: bytes) -> int:
    """Runs an interactive bash on a pseudo-terminal (readline is used only on a tty), types ``line`` and
    ``exit``; returns its pid once it exited."""
    master, slave = pty.openpty()
    env = {"PATH": "/usr/bin:/bin", "TERM": "dumb", "HOME": "/nonexistent", "PS1": "$ "}
    child = subprocess.Popen(
        [bash, "--norc", "--noprofile", "-i"], stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    try:
        os.write(master, line + b"\nexit\n")
        deadline = time.monotonic() + 10
        while child.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    os.read(master, 4096)
                except OSError:
                    break
        child.wait(timeout=5)
    finally:
        os.close(master)
    return child.pid


@pytest.mark.needs("map:RingBuf")
def test_bashreadline_uretprobe_reads_the_line_bash_returns() -> None:
    """An interactive bash on a pty (stdin a tty, so it reads with readline) types a command; the uretprobe on
    /bin/bash's readline, attached where ``SEC("uretprobe//bin/bash:readline")`` says, reads the returned
    string."""
    bash = "/bin/bash"
    if not os.path.exists(bash):
        pytest.skip(f"{bash} does not exist")
    if reason := _bash_has_readline(bash):
        pytest.skip(reason)
    line = b"echo pyaya-readline-marker"
    with Ebpf.load_file(_build("lt_readline")) as bpf:
        with bpf.programs["on_readline_return"].attach():  # /bin/bash:readline, from SEC()
            pid = _bash_on_a_pty(bash, line)
        lines = [e.line for e in bpf.maps["events"].typed("event").drain(timeout=0.5) if e.pid == pid]
        assert lines[:2] == [line.decode(), "exit"], lines


@pytest.mark.parametrize(
    ("name", "requirement"),
    [("lt_runqlat", "tp_btf"), ("lt_runqlat_raw", "program:RawTracePoint")],
    ids=["tp_btf", "raw_tp"],
)
def test_runqlat_fills_a_log2_histogram(name: str, requirement: str) -> None:
    """Wakeup-to-switch-in latencies of this process, a log2 slot per sample in a per-CPU array of struct hist,
    read back and summed across CPUs: each sleep of the test is a wakeup then a switch-in."""
    probe = features.requirement(requirement)
    if not probe.ok:
        pytest.skip(f"this kernel lacks {requirement}: {probe.reason}")
    with Ebpf.load_file(_build(name), globals={"target_tgid": os.getpid()}) as bpf:
        with bpf.programs["on_wakeup"].attach(), bpf.programs["on_switch"].attach():
            for _ in range(20):
                time.sleep(0.001)
        total = bpf.maps["hists"][0].sum()
        slots = list(total.slots)
        assert len(slots) == 32
        assert total.samples >= 10  # most of the 20 sleeps (a wakeup may race the task's own switch-out)
        assert sum(slots) == total.samples  # every sample in exactly one slot
        assert slots[0] == 0  # slot 0 is a latency of 0 ns: the clock moved between wakeup and switch-in
        assert slots[31] == 0  # nothing near 2**31 ns
        buckets = log2_buckets(slots)
        assert sum(bucket["count"] for bucket in buckets) == total.samples
        assert all(bucket["low"] <= bucket["high"] for bucket in buckets)


#: getppid's number on the architectures the tests run on.
NR_GETPPID = {"x86_64": 110, "aarch64": 173, "s390x": 64, "ppc64le": 64}


def test_syscount_counts_syscalls_by_id() -> None:
    machine = platform.machine()
    if machine not in NR_GETPPID:
        pytest.skip(f"getppid's syscall number on {machine} is not in this test's table")
    calls = 25
    with Ebpf.load_file(_build("lt_syscount"), globals={"target_tgid": os.getpid()}) as bpf:
        with bpf.programs["on_sys_enter"].attach(), bpf.programs["on_sys_exit"].attach():
            for _ in range(calls):
                os.getppid()
        counts = dict(bpf.maps["counts"].items())
        getppid = counts[NR_GETPPID[machine]]
        assert getppid.count >= calls
        assert getppid.errors == 0
        assert getppid.total_ns > 0


#: include/net/tcp_states.h
TCP_ESTABLISHED, TCP_SYN_SENT, TCP_SYN_RECV, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_CLOSE, TCP_LISTEN = 1, 2, 3, 4, 5, 7, 10


@pytest.mark.needs("map:RingBuf")
def test_tcpstates_sees_a_loopback_connections_transitions() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        with Ebpf.load_file(_build("lt_tcpstates"), globals={"target_port": port}) as bpf:
            with bpf.programs["on_state"].attach():
                listener.listen(1)
                client = socket.create_connection(("127.0.0.1", port), timeout=5)
                server, _ = listener.accept()
                client_port = client.getsockname()[1]
                client.close()
                server.close()
                time.sleep(0.05)
            events = bpf.maps["events"].typed("event").drain(timeout=0.5)
    by_socket: dict[int, list[tuple[int, int]]] = {}
    ports: dict[int, set[tuple[int, int]]] = {}
    for e in events:
        by_socket.setdefault(e.skaddr, []).append((e.oldstate, e.newstate))
        ports.setdefault(e.skaddr, set()).add((e.sport, e.dport))
    # The client's socket: its port is set after CLOSE->SYN_SENT (connect() picks it then), so find it by address.
    (client_socket,) = [skaddr for skaddr, seen in ports.items() if (client_port, port) in seen]
    transitions = by_socket[client_socket]
    assert transitions[:2] == [(TCP_CLOSE, TCP_SYN_SENT), (TCP_SYN_SENT, TCP_ESTABLISHED)], transitions
    assert (TCP_ESTABLISHED, TCP_FIN_WAIT1) in transitions, transitions
    all_transitions = {t for seen in by_socket.values() for t in seen}
    assert (TCP_CLOSE, TCP_LISTEN) in all_transitions  # the listener
    assert (TCP_SYN_RECV, TCP_ESTABLISHED) in all_transitions  # the accepted socket


@pytest.mark.needs("iter")
def test_task_iterator_lists_this_process_and_its_threads() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="pyaya-iter")
    thread.start()
    try:
        with Ebpf.load_file(_build("lt_task_iter")) as bpf:
            link = bpf.programs["dump_task"].attach()
            try:
                lines = link.read().decode().splitlines()
            finally:
                link.detach()
    finally:
        stop.set()
        thread.join()
    tasks = {(int(tgid), int(pid)): comm for tgid, pid, comm in (line.split(" ", 2) for line in lines)}
    me = os.getpid()
    assert tasks[(me, me)] == Path("/proc/self/comm").read_text().strip()
    assert thread.native_id is not None
    assert (me, thread.native_id) in tasks  # every thread is a task
    assert len(tasks) == len(lines) > 2


@pytest.mark.needs("map:RingBuf")
def test_uprobe_and_uretprobe_read_arguments_and_result(tmp_path: Path) -> None:
    binary = _gcc(tmp_path, "mul", MUL_PROGRAM)
    with Ebpf.load_file(_build("lt_uprobe")) as bpf:
        entry, ret = bpf.programs["on_mul"], bpf.programs["on_mul_return"]
        assert isinstance(entry, UProbe)
        assert isinstance(ret, UProbe)
        assert (entry.retprobe, ret.retprobe) == (False, True)  # SEC("uprobe"), SEC("uretprobe")
        with pytest.raises(InvalidArgumentError, match=r"does not name its binary and function .* attach\(binary"):
            entry.attach()  # a bare SEC("uprobe") names no target: libbpf's auto-attach skips it too
        with pytest.raises(InvalidArgumentError, match="give the target with symbol='pyaya_mul'"):
            entry.attach(symbol="pyaya_mul")
        with (
            bpf.programs["on_mul"].attach(binary, "pyaya_mul"),
            bpf.programs["on_mul_return"].attach(binary, "pyaya_mul"),
        ):
            run = subprocess.run([str(binary)], capture_output=True, text=True, check=True)
            assert run.stdout.strip() == str(-7 * (1 + 2 + 3))
        calls = bpf.maps["calls"].typed("call").drain(timeout=0.5)
    # Only that run calls pyaya_mul (the probe is on that file alone).
    assert [(c.kind, c.a, c.b, c.ret) for c in calls] == [
        (0, 1, -7, 0),
        (1, 0, 0, -7),
        (0, 2, -7, 0),
        (1, 0, 0, -14),
        (0, 3, -7, 0),
        (1, 0, 0, -21),
    ]


#: pyaya's program types as libbpf (bpftool prog show) names the kernel's.
_KERNEL_PROGRAM_TYPE = {
    "TracePoint": "tracepoint",
    "RawTracePoint": "raw_tracepoint",
    "BtfTracePoint": "tracing",
    "Iter": "tracing",
    "UProbe": "kprobe",
    "URetProbe": "kprobe",
}


#: pyaya's map types as bpftool names them.
_KERNEL_MAP_TYPE = {
    "HashMap": "hash",
    "Array": "array",
    "PerCpuArray": "percpu_array",
    "PerfEventArray": "perf_event_array",
    "RingBuf": "ringbuf",
}


def _possible_cpus() -> int:
    count = 0
    for part in Path("/sys/devices/system/cpu/possible").read_text().strip().split(","):
        low, _, high = part.partition("-")
        count += int(high or low) - int(low) + 1
    return count


@pytest.fixture
def pin_folder(request: pytest.FixtureRequest) -> Iterator[Path]:
    folder = Path("/sys/fs/bpf") / f"pyaya-lt-{request.node.callspec.id}-{os.getpid()}"
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _bpftool_json(bpftool: str, *args: str) -> Any:
    run = subprocess.run([bpftool, "-j", *args], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(run.stdout)


#: What an object's programs need from the kernel beyond what every supported kernel has (features.requirement).
LOAD_NEEDS = {"lt_runqlat": "tp_btf", "lt_exitsnoop": "helper:TracePoint:bpf_get_current_task_btf"}


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_inspect_agrees_with_what_libbpf_loads(name: str, pin_folder: Path) -> None:
    """``pyaya inspect``'s BTF structs, programs and maps of each object against what ``bpftool btf dump`` reads
    and ``bpftool prog loadall`` (libbpf) loads and pins: the same structs (id, name, size), the same programs
    with the kernel type their section gives, the same maps with their type, key and value sizes and
    max_entries."""
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        pytest.skip("bpftool is not installed (apt-get install bpftool; make setup installs it)")
    path = _build(name)
    info = inspect_file(path)
    # The object's structs and unions, by BTF id, as `bpftool btf dump file` reads them.
    dumped = _bpftool_json(bpftool, "btf", "dump", "file", str(path))["types"]
    records = {"STRUCT", "UNION"}
    theirs_types = [(t["id"], t["kind"], t["name"], t["size"]) for t in dumped if t["kind"] in records]
    ours_types = [(t.id, t.kind, t.name or "(anon)", t.size) for t in info.btf_types if t.kind in records]
    assert ours_types == theirs_types
    requirement = LOAD_NEEDS.get(name)
    if requirement and not (probe := features.requirement(requirement)).ok:
        pytest.skip(f"the BTF agrees; libbpf cannot load {name} here, this kernel lacks {requirement}: {probe.reason}")
    programs, maps = pin_folder / "progs", pin_folder / "maps"
    run = subprocess.run(
        [bpftool, "prog", "loadall", str(path), str(programs), "pinmaps", str(maps)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    loaded = {pin.name: _bpftool_json(bpftool, "prog", "show", "pinned", str(pin)) for pin in programs.iterdir()}
    assert sorted(loaded) == sorted(p.name for p in info.programs)
    for program in info.programs:
        assert loaded[program.name]["type"] == _KERNEL_PROGRAM_TYPE[program.type], (program, loaded[program.name])
    declared = {m.name: m for m in info.maps if not m.name.startswith(".")}
    pinned = {
        pin.name: _bpftool_json(bpftool, "map", "show", "pinned", str(pin))
        for pin in maps.iterdir()
        if not re.search(r"_(rodata|bss|data|kconfig)$", pin.name)  # the globals' maps, as libbpf names them
    }
    assert sorted(pinned) == sorted(declared)
    for map_name, found in pinned.items():
        ours = declared[map_name]
        theirs = (found["type"], found["bytes_key"], found["bytes_value"], found["max_entries"])
        entries = ours.max_entries
        if ours.type == "PerfEventArray" and entries == 0:
            entries = _possible_cpus()  # an unset size: libbpf makes it one slot per possible CPU, as pyaya does
        assert (_KERNEL_MAP_TYPE[ours.type], ours.key_size, ours.value_size, entries) == theirs, (ours, found)
