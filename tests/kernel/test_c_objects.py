"""C objects as libbpf users build them (clang, libbpf's headers), loaded by pyaya into this kernel: perf buffers
open from load, and a C program's globals by name (``const volatile`` set before load, ``.bss``/``.data`` while it
runs). Sources are written here in the patterns of libbpf-tools; each is built by _c_objects.py."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import _c_objects
import pytest
from pyaya import Ebpf, SchedClassifier
from pyaya.errors import NotFoundError, PyayaError
from pyaya.inspect import inspect_file
from pyaya.programs import TC_ACT_OK
from pyaya.testing import NetnsPair

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
        __sync_fetch_and_add(seen, 1); /* result unused: a plain atomic add, which every kernel takes */
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
