"""C objects as libbpf users build them (clang, libbpf's headers), loaded by pyaya into this kernel: perf buffers
open from load, and a C program's globals by name (``const volatile`` set before load, ``.bss``/``.data`` while it
runs). Sources are written here in the patterns of libbpf-tools; each is built by _c_objects.py."""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import re
import socket
import subprocess
import time
from pathlib import Path

import _c_objects
import pytest
from pyaya import Btf, Ebpf, SchedClassifier, features
from pyaya.btf import Kind
from pyaya.errors import InvalidArgumentError, LoadError, NotFoundError, ProgramError, PyayaError, RecordError
from pyaya.inspect import inspect_file
from pyaya.programs import TC_ACT_OK
from pyaya.testing import NetnsPair
from pyaya.types import MISSING, asdict

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


# Programs whose sections name their tracepoints (libbpf-tools' way), and two that do not.
SECTION_TARGETS = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__u64 tp_hits = 0;
__u64 raw_hits = 0;
const volatile __u32 target_tgid = 0;

static int ours(void) { return (bpf_get_current_pid_tgid() >> 32) == target_tgid; }

SEC("tp/syscalls/sys_enter_getppid")
int on_getppid(void *ctx) { if (ours()) tp_hits++; return 0; }

SEC("raw_tp/sys_enter")
int on_sys_enter(void *ctx) { if (ours()) raw_hits++; return 0; }

SEC("tracepoint")
int unnamed_tp(void *ctx) { return 0; }

SEC("raw_tp")
int unnamed_raw(void *ctx) { return 0; }

char LICENSE[] SEC("license") = "GPL";
"""


def test_tracepoints_attach_to_what_their_sections_name() -> None:
    """``attach()`` with no target takes it from ``SEC()``, as libbpf's ``bpf_program__attach`` does."""
    path = _c_objects.build("section_targets", SECTION_TARGETS)
    with Ebpf.load_file(path, globals={"target_tgid": os.getpid()}) as bpf:
        with bpf.programs["on_getppid"].attach(), bpf.programs["on_sys_enter"].attach():
            for _ in range(4):
                os.getppid()
        assert bpf.globals["tp_hits"] == 4
        assert bpf.globals["raw_hits"] >= 4  # every syscall of this process, the getppid calls among them
        with pytest.raises(InvalidArgumentError, match=r"does not name its tracepoint .* attach\(category, name\)"):
            bpf.programs["unnamed_tp"].attach()
        with pytest.raises(InvalidArgumentError, match=r"does not name its raw tracepoint .* attach\(name\)"):
            bpf.programs["unnamed_raw"].attach()
        with pytest.raises(InvalidArgumentError, match="category and name together"):
            bpf.programs["on_getppid"].attach("syscalls")
        with bpf.programs["on_getppid"].attach(), pytest.raises(ProgramError, match="already attached") as twice:
            bpf.programs["on_getppid"].attach("syscalls", "sys_enter_getppid")
        assert twice.value.errno == errno.EEXIST
        assert not bpf.programs["unnamed_tp"].links


# execsnoop's pattern: a large event struct, of which only the filled prefix is sent (offsetof(args) + args_size),
# argv NUL-separated in one char array.
SHORT_RECORDS = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define ARGS_SIZE 4096
struct event {
    __u32 pid;
    __u32 args_count;
    __u32 args_size;
    char comm[16];
    char args[ARGS_SIZE];
    __u64 never_sent;
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct event);
} scratch SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 64 * 1024);
} events SEC(".maps");

const volatile __u32 target_tgid = 0;
static const char argv[] = "ls\0-l\0/tmp";

SEC("tp/syscalls/sys_enter_getppid")
int send_prefix(void *ctx)
{
    __u32 zero = 0;
    struct event *e;

    if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
        return 0;
    e = bpf_map_lookup_elem(&scratch, &zero);
    if (!e)
        return 0;
    e->pid = target_tgid;
    e->args_count = 3;
    e->args_size = sizeof(argv);
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    __builtin_memcpy(e->args, argv, sizeof(argv));
    bpf_ringbuf_output(&events, e, __builtin_offsetof(struct event, args) + sizeof(argv), 0);
    bpf_ringbuf_output(&events, e, 8, 0); /* shorter still: pid and args_count only */
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


def test_records_shorter_than_their_type_decode_the_fields_they_hold() -> None:
    path = _c_objects.build("short_records", SHORT_RECORDS)
    with Ebpf.load_file(path, globals={"target_tgid": os.getpid()}) as bpf:
        event = bpf.types["event"]
        assert event.size > 4096
        with bpf.programs["send_prefix"].attach():
            os.getppid()
        strict = bpf.maps["events"].typed("event")
        # Both records sent are shorter than the type: each raises for itself, the second staying in the ring
        # (or this stream's backlog) until the next call.
        for undecoded in (1, 2):
            with pytest.raises(RecordError, match=r"too few|shorter than"):
                strict.drain(timeout=1)
            assert strict.undecoded == undecoded
        assert strict.drain(timeout=0) == []

        with bpf.programs["send_prefix"].attach():
            os.getppid()
        events = bpf.maps["events"].typed("event", partial=True, as_bytes=["args"])
        prefix, shortest = events.drain(timeout=1, max_records=2)
        assert (prefix.pid, prefix.args_count, prefix.args_size) == (os.getpid(), 3, 11)
        assert prefix.comm == Path("/proc/self/comm").read_text().strip()[:15]
        assert prefix.args == b"ls\0-l\0/tmp\0"  # the bytes sent, argv whole
        assert prefix.args.split(b"\0")[:3] == [b"ls", b"-l", b"/tmp"]
        assert prefix.never_sent is MISSING
        assert asdict(prefix)["never_sent"] is None
        assert (shortest.pid, shortest.args_count) == (os.getpid(), 3)
        assert shortest.args_size is MISSING
        assert shortest.comm is MISSING
        assert shortest.args is MISSING
        assert isinstance(prefix, event.record_class)

        with bpf.programs["send_prefix"].attach():
            os.getppid()
        as_text = bpf.maps["events"].typed("event", partial=True, as_text=["args"])
        assert as_text.drain(timeout=1, max_records=1)[0].args == "ls"  # text ends at the first NUL
        with pytest.raises(InvalidArgumentError, match="no byte-array field 'pid'; its byte arrays are: args, comm"):
            bpf.maps["events"].typed("event", as_bytes=["pid"])
        with pytest.raises(InvalidArgumentError, match="struct types of the object's BTF"):
            bpf.maps["events"].typed("<II", partial=True)


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


# libbpf's names for a classifier: SEC("tc") (and "tc/ingress", "tc/egress"), which aya 0.14 refuses on its own.
TC_COUNTER = r"""
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} packets SEC(".maps");

static void count(__u32 slot)
{
    __u64 *seen = bpf_map_lookup_elem(&packets, &slot);
    if (seen)
        *seen += 1; /* not __sync_fetch_and_add: clang 20+ (-mcpu=v3) makes it a fetching BPF_ATOMIC, which kernels
                       before 5.12 refuse ("BPF_STX uses reserved fields"); the tests run one packet at a time */
}

SEC("tc")
int count_packets(struct __sk_buff *skb)
{
    count(0);
    return TC_ACT_OK;
}

SEC("tc/egress")
int count_egress(struct __sk_buff *skb)
{
    count(1);
    return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
"""

#: An Ethernet frame (broadcast, EtherType 0x88b5: IEEE's local experimental) with a short payload.
FRAME = b"\xff" * 6 + b"\x02" * 6 + b"\x88\xb5" + b"pyaya tc test".ljust(46, b"\0")


def test_tc_sections_load_as_classifiers_and_count_test_runs() -> None:
    """``SEC("tc")`` and ``SEC("tc/egress")`` programs are SchedClassifiers: they load, and BPF_PROG_TEST_RUN runs
    them (their counter read back from the map)."""
    path = _c_objects.build("tc_counter", TC_COUNTER)
    with Ebpf.load_file(path) as bpf:
        program = bpf.programs["count_packets"]
        assert isinstance(program, SchedClassifier)
        assert isinstance(bpf.programs["count_egress"], SchedClassifier)
        result = program.test_run(FRAME, repeat=3)
        assert result.return_value == TC_ACT_OK
        assert bpf.programs["count_egress"].test_run(FRAME).return_value == TC_ACT_OK
        assert list(bpf.maps["packets"]) == [3, 1]


def test_tc_section_attached_counts_real_packets(netns_pair: NetnsPair) -> None:
    """A ``SEC("tc")`` program attached with the classifier API sees the datagrams a namespace sends to this one;
    ``SEC("tc/egress")`` attaches at egress by default (its section says so) and sees the replies' way out."""
    path = _c_objects.build("tc_counter", TC_COUNTER)
    with Ebpf.load_file(path) as bpf:
        bpf.programs["count_packets"].attach(netns_pair.host_interface)
        bpf.programs["count_egress"].attach(netns_pair.host_interface)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
            receiver.bind((netns_pair.host_address, 0))
            port = receiver.getsockname()[1]
            sender = netns_pair.socket()
            try:
                for i in range(5):
                    sender.sendto(b"datagram %d" % i, (netns_pair.host_address, port))
                    receiver.settimeout(5)
                    _, peer = receiver.recvfrom(100)
                    receiver.sendto(b"reply", peer)
            finally:
                sender.close()
        ingress_seen, egress_seen = list(bpf.maps["packets"])
        assert ingress_seen >= 5  # ARP and IPv6 neighbour discovery may add to both
        assert egress_seen >= 5


def test_inspect_lists_tc_sections_as_classifiers() -> None:
    info = inspect_file(_c_objects.build("tc_counter", TC_COUNTER))
    programs = {p.name: (p.section, p.type) for p in info.programs}
    assert programs == {
        "count_packets": ("tc", "SchedClassifier"),
        "count_egress": ("tc/egress", "SchedClassifier"),
    }


# __ksym externs as libbpf resolves them. A kfunc (by its vmlinux BTF id), an untyped symbol (its kallsyms address:
# a function, since kernels without CONFIG_KALLSYMS_ALL list no data symbols), weak ones this kernel lacks.
KSYMS = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#ifndef bpf_ksym_exists /* libbpf 1.2's; Debian 12 ships 1.1 */
#define bpf_ksym_exists(sym) (!!(sym))
#endif

extern struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
extern void pyaya_no_such_kfunc(void) __ksym __weak;
extern const void vfs_read __ksym;
extern const void pyaya_no_such_symbol __ksym __weak;
extern const int pyaya_no_such_variable __ksym __weak;

const volatile int wanted_pid = 0;
__u64 found_tgid = 0, vfs_read_address = 0, missing_symbol = 1, missing_variable = 1, missing_kfunc = 1;
__u64 has_task_from_pid = 0;

SEC("tc")
int task_lookup(struct __sk_buff *skb)
{
    struct task_struct *task = bpf_task_from_pid(wanted_pid);
    if (task) {
        found_tgid = task->tgid;
        bpf_task_release(task);
    }
    if (bpf_ksym_exists(pyaya_no_such_kfunc))
        pyaya_no_such_kfunc(); /* never reached: the verifier prunes the poisoned call */
    missing_kfunc = bpf_ksym_exists(pyaya_no_such_kfunc);
    has_task_from_pid = bpf_ksym_exists(bpf_task_from_pid);
    return 0;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int addresses(void *ctx)
{
    vfs_read_address = (__u64)&vfs_read;
    missing_symbol = (__u64)&pyaya_no_such_symbol;
    missing_variable = (__u64)&pyaya_no_such_variable;
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

# Typed variables read per CPU, in a tracepoint program (which the kernel runs with bpf_prog_active raised).
TYPED_KSYMS = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

extern const int bpf_prog_active __ksym;
extern const struct rq runqueues __ksym;

__s64 prog_active = -1, rq_cpu = -1, this_cpu = -1;

SEC("tracepoint/syscalls/sys_enter_getppid")
int per_cpu(void *ctx)
{
    const int *active = bpf_this_cpu_ptr(&bpf_prog_active);
    struct rq *rq = bpf_per_cpu_ptr(&runqueues, bpf_get_smp_processor_id());
    this_cpu = bpf_get_smp_processor_id();
    prog_active = *active;
    if (rq)
        rq_cpu = rq->cpu;
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

MISSING_KSYM = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern const void pyaya_no_such_symbol __ksym;
__u64 address = 0;

SEC("tracepoint/syscalls/sys_enter_getppid")
int strong(void *ctx)
{
    address = (__u64)&pyaya_no_such_symbol;
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


def _kallsyms(name: str) -> int:
    with open("/proc/kallsyms") as symbols:
        for line in symbols:
            address, _, symbol = line.split()[:3]
            if symbol == name:
                return int(address, 16)
    raise AssertionError(f"{name} is not in /proc/kallsyms")


def _kernel_lacks(name: str, kind: Kind, since: str) -> str | None:
    """Why this kernel's BTF cannot resolve ``name`` (a FUNC for kfuncs, a VAR for typed ksyms), or None."""
    try:
        Btf.vmlinux().find(name, kind)
    except NotFoundError:
        return f"this kernel's BTF has no {kind.name} {name} (kernel {since}+; this is {platform.release()})"
    return None


def test_ksym_kfunc_untyped_and_weak_externs_resolve() -> None:
    """A kfunc call finds this process's task; an untyped ksym is the kallsyms address; weak externs this kernel
    lacks read 0 (and the guarded call to a missing weak kfunc loads)."""
    if reason := _kernel_lacks("bpf_task_from_pid", Kind.FUNC, "6.2"):
        pytest.skip(reason)
    path = _c_objects.build("ksyms", KSYMS, vmlinux=True)
    with Ebpf.load_file(path, globals={"wanted_pid": os.getpid()}) as bpf:
        assert bpf.programs["task_lookup"].test_run(FRAME).return_value == 0
        assert bpf.globals["found_tgid"] == os.getpid()
        assert bpf.globals["has_task_from_pid"] == 1
        assert bpf.globals["missing_kfunc"] == 0
        bpf.programs["addresses"].attach("syscalls", "sys_enter_getppid")
        os.getppid()
        assert bpf.globals["vfs_read_address"] == _kallsyms("vfs_read")
        assert bpf.globals["missing_symbol"] == 0
        assert bpf.globals["missing_variable"] == 0


def test_typed_ksyms_read_per_cpu_variables() -> None:
    config = features.kernel_config()
    if config is not None and config[0].get("CONFIG_KALLSYMS_ALL", "n") != "y":
        pytest.skip(
            f"CONFIG_KALLSYMS_ALL is not set ({config[1]}): the verifier finds typed __ksym variables in kallsyms, "
            "which then lists no data symbols"
        )
    if reason := _kernel_lacks("bpf_prog_active", Kind.VAR, "5.11 (per-CPU variables in BTF)"):
        pytest.skip(reason)
    path = _c_objects.build("typed_ksyms", TYPED_KSYMS, vmlinux=True)
    with Ebpf.load_file(path) as bpf:
        bpf.programs["per_cpu"].attach("syscalls", "sys_enter_getppid")
        os.getppid()
        assert bpf.globals["prog_active"] == 1  # trace_call_bpf raises it around every tracepoint program
        assert bpf.globals["this_cpu"] >= 0
        assert bpf.globals["rq_cpu"] == bpf.globals["this_cpu"]


def test_typed_ksym_without_kallsyms_is_refused_naming_it() -> None:
    config = features.kernel_config()
    if config is None or config[0].get("CONFIG_KALLSYMS_ALL", "n") == "y":
        pytest.skip("this kernel lists data symbols in kallsyms (CONFIG_KALLSYMS_ALL=y): typed ksyms resolve")
    path = _c_objects.build("typed_ksyms", TYPED_KSYMS, vmlinux=True)
    with pytest.raises(LoadError) as refused:
        Ebpf.load_file(path)
    message = str(refused.value)
    assert "bpf_prog_active" in message or "runqueues" in message, message
    assert "CONFIG_KALLSYMS_ALL" in message, message
    assert "__weak" in message, message


def test_missing_strong_ksym_is_refused_naming_it() -> None:
    path = _c_objects.build("missing_ksym", MISSING_KSYM)
    with pytest.raises(LoadError) as refused:
        Ebpf.load_file(path)
    message = str(refused.value)
    assert "pyaya_no_such_symbol" in message, message
    assert "__weak" in message, message
    assert "kallsyms" in message, message


def test_inspect_reads_objects_with_ksyms() -> None:
    info = inspect_file(_c_objects.build("ksyms", KSYMS, vmlinux=True))
    assert {(p.name, p.type) for p in info.programs} == {
        ("task_lookup", "SchedClassifier"),
        ("addresses", "TracePoint"),
    }


# __kconfig externs of each kind libbpf fills: the kernel's version, a bool, a tristate, an int, a string, and
# weak ones the config does not set.
KCONFIG = r"""
#include <linux/bpf.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>


extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern bool CONFIG_BPF_SYSCALL __kconfig;
extern enum libbpf_tristate CONFIG_BPF_JIT __kconfig __weak;
extern int CONFIG_HZ __kconfig __weak;
extern char CONFIG_LOCALVERSION[16] __kconfig __weak;
extern bool CONFIG_PYAYA_NO_SUCH_OPTION __kconfig __weak;

__u64 version = 0, bpf_syscall = 9, bpf_jit = 9, hz = 0, unset = 9;
char localversion[16] = {};

SEC("tracepoint/syscalls/sys_enter_getppid")
int read_config(void *ctx)
{
    version = LINUX_KERNEL_VERSION;
    bpf_syscall = CONFIG_BPF_SYSCALL;
    bpf_jit = CONFIG_BPF_JIT;
    hz = CONFIG_HZ;
    unset = CONFIG_PYAYA_NO_SUCH_OPTION;
    __builtin_memcpy(localversion, CONFIG_LOCALVERSION, sizeof(localversion));
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

MISSING_KCONFIG = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern int CONFIG_PYAYA_NO_SUCH_OPTION __kconfig;
__u64 value = 0;

SEC("tracepoint/syscalls/sys_enter_getppid")
int strong(void *ctx)
{
    value = CONFIG_PYAYA_NO_SUCH_OPTION;
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


def test_kconfig_externs_read_the_kernels_config_and_release() -> None:
    config = features.kernel_config()
    if config is None:
        pytest.skip("neither /proc/config.gz nor /boot/config-$(uname -r) is readable")
    options = config[0]
    path = _c_objects.build("kconfig", KCONFIG)
    with Ebpf.load_file(path) as bpf:
        bpf.programs["read_config"].attach("syscalls", "sys_enter_getppid")
        os.getppid()
        major, minor, patch = features.kernel_version()
        debian = re.search(r"Debian (\d+)\.(\d+)\.(\d+)", platform.version())
        if debian is not None:
            major, minor, patch = (int(part) for part in debian.groups())
        assert bpf.globals["version"] == (major << 16) + (minor << 8) + min(patch, 255)
        assert bpf.globals["bpf_syscall"] == (1 if options.get("CONFIG_BPF_SYSCALL") == "y" else 0)
        assert bpf.globals["bpf_jit"] == {"y": 1, "m": 2}.get(options.get("CONFIG_BPF_JIT", "n"), 0)
        assert bpf.globals["hz"] == int(options.get("CONFIG_HZ", "0"))
        assert bpf.globals["unset"] == 0
        localversion = options.get("CONFIG_LOCALVERSION", '""').strip('"')[:15]
        assert bpf.globals["localversion"] == localversion  # decoded as text (NUL-terminated, printable)


def test_missing_strong_kconfig_is_refused_naming_it() -> None:
    path = _c_objects.build("missing_kconfig", MISSING_KCONFIG)
    with pytest.raises(LoadError) as refused:
        Ebpf.load_file(path)
    message = str(refused.value)
    assert "CONFIG_PYAYA_NO_SUCH_OPTION" in message, message
    assert "__weak" in message, message


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


# xdp-tutorial's stats pattern: a per-CPU array of `struct datarec` indexed by XDP action.
XDP_STATS = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct datarec {
    __u64 rx_packets;
    __u64 rx_bytes;
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __type(key, __u32);
    __type(value, struct datarec);
    __uint(max_entries, XDP_REDIRECT + 1);
} xdp_stats_map SEC(".maps");

SEC("xdp")
int xdp_stats(struct xdp_md *ctx)
{
    __u32 action = XDP_PASS;
    struct datarec *rec = bpf_map_lookup_elem(&xdp_stats_map, &action);
    if (!rec)
        return XDP_ABORTED;
    rec->rx_packets++; /* per CPU: no other CPU writes this slot */
    rec->rx_bytes += ctx->data_end - ctx->data;
    return action;
}

char LICENSE[] SEC("license") = "GPL";
"""


def test_per_cpu_struct_values_sum_field_by_field() -> None:
    path = _c_objects.build("xdp_stats", XDP_STATS)
    with Ebpf.load_file(path) as bpf:
        program = bpf.programs["xdp_stats"]
        frame = b"\xff" * 6 + b"\x02" * 6 + b"\x88\xb5" + b"\0" * 50
        assert program.test_run(frame, repeat=5).return_value == 2  # XDP_PASS
        values = bpf.maps["xdp_stats_map"][2]
        total = values.sum()
        assert (total.rx_packets, total.rx_bytes) == (5, 5 * len(frame))
        assert type(total) is type(values[0])
        assert bpf.maps["xdp_stats_map"][1].sum().rx_packets == 0


# CO-RE into a trailing flexible array, as libbpf-tools read a syscall's arguments: struct syscall_trace_enter ends
# with `unsigned long args[]`, which aya 0.14 refuses to index ("array index out of bounds") unless the index
# happens to equal the struct's last member index; pyaya's object pass relocates these records itself.
CORE_FLEX_ARGS = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

const volatile __u32 target_tgid = 0;
__u64 arg0 = 0, arg1 = 0, arg2 = 0, arg3 = 0, hits = 0;

SEC("tp/syscalls/sys_enter_pread64")
int on_pread(struct syscall_trace_enter *ctx)
{
    if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
        return 0;
    arg0 = BPF_CORE_READ(ctx, args[0]);
    arg1 = BPF_CORE_READ(ctx, args[1]);
    arg2 = BPF_CORE_READ(ctx, args[2]);
    arg3 = BPF_CORE_READ(ctx, args[3]);
    hits += 1;
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


def test_core_reads_of_a_trailing_flexible_array_see_the_syscalls_arguments() -> None:
    """``BPF_CORE_READ(ctx, args[N])`` of ``struct syscall_trace_enter`` for N = 0..3: the object loads, and a
    ``pread`` with known arguments is read back, all four."""
    path = _c_objects.build("core_flex_args", CORE_FLEX_ARGS, vmlinux=True)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.pread.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long]
    libc.pread.restype = ctypes.c_ssize_t
    buffer = ctypes.create_string_buffer(64)
    fd = os.open("/dev/zero", os.O_RDONLY)
    try:
        with Ebpf.load_file(path, globals={"target_tgid": os.getpid()}) as bpf:
            bpf.programs["on_pread"].attach("syscalls", "sys_enter_pread64")
            assert libc.pread(fd, buffer, 17, 4096) == 17
            assert bpf.globals["hits"] == 1
            assert bpf.globals["arg0"] == fd
            assert bpf.globals["arg1"] == ctypes.addressof(buffer)
            assert bpf.globals["arg2"] == 17
            assert bpf.globals["arg3"] == 4096
    finally:
        os.close(fd)


# A CO-RE read of a field this kernel lacks, declared through a libbpf `___flavor` of task_struct: refused naming
# the struct, the field and the program; guarded by bpf_core_field_exists(), it loads and reads 0.
CORE_MISSING_FIELD = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct task_struct___pyaya {
    int pyaya_missing;
} __attribute__((preserve_access_index));

const volatile __u32 target_tgid = 0;
__s64 value = -1;

SEC("tracepoint/syscalls/sys_enter_getppid")
int handle_exec(void *ctx)
{
    struct task_struct___pyaya *task = (void *)bpf_get_current_task();

    if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
        return 0;
#ifdef GUARDED
    if (bpf_core_field_exists(task->pyaya_missing))
        value = BPF_CORE_READ(task, pyaya_missing);
    else
        value = 0;
#else
    value = BPF_CORE_READ(task, pyaya_missing);
#endif
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


def test_a_failed_core_relocation_names_the_struct_the_field_and_the_program() -> None:
    """The object loads (aya poisons the relocation); the program's load is refused with libbpf's kind of message,
    not the verifier's ``invalid func unknown#195896080``."""
    path = _c_objects.build("core_missing_field", CORE_MISSING_FIELD, vmlinux=True)
    with (
        Ebpf.load_file(path, globals={"target_tgid": os.getpid()}) as bpf,
        pytest.raises(LoadError) as refused,
    ):
        bpf.programs["handle_exec"].load()
    message = str(refused.value)
    assert 'program "handle_exec"' in message, message
    assert "struct task_struct.pyaya_missing" in message, message
    assert "access 0:0" in message, message
    assert "bpf_core_field_exists()" in message, message
    assert "unknown#195896080" not in message, message


def test_a_core_read_guarded_by_field_exists_loads_and_reads_zero() -> None:
    path = _c_objects.build("core_missing_field", CORE_MISSING_FIELD, vmlinux=True, extra_flags=("-DGUARDED",))
    with Ebpf.load_file(path, globals={"target_tgid": os.getpid()}) as bpf:
        bpf.programs["handle_exec"].attach("syscalls", "sys_enter_getppid")
        os.getppid()
        assert bpf.globals["value"] == 0
