// SPDX-License-Identifier: GPL-2.0
// The kernel side: one event per exec, and exec counts per uid. Built by `pyaya build` with clang against the
// vmlinux.h pyaya generates from this kernel's BTF; field reads of kernel structs are CO-RE relocated at load.
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

#define TASK_COMM_LEN 16
#define FILENAME_LEN 256

// Sent through the ring buffer. Only a local variable uses it, so clang leaves it out of the object's BTF; pyaya
// reads it from the object's DWARF (-g) and decodes each record by name.
struct event {
    __u32 pid;
    __u32 ppid;
    __u32 uid;
    char comm[TASK_COMM_LEN];
    char filename[FILENAME_LEN];
};

// Set by main.py before load (-p PID): 0 traces every process.
const volatile __u32 target_tgid = 0;

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 10240);
    __type(key, __u32);
    __type(value, __u64);
} exec_counts SEC(".maps");

// Records that did not fit in the ring buffer, counted where pyaya looks for them (the ring's name + `_lost`):
// `pyaya run` reports them, so none is lost silently.
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} events_lost SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_execve")
int handle_exec(struct trace_event_raw_sys_enter *ctx)
{
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (target_tgid && tgid != target_tgid)
        return 0;

    __u32 uid = (__u32)bpf_get_current_uid_gid();
    __u64 one = 1, *count = bpf_map_lookup_elem(&exec_counts, &uid);
    // Not __sync_fetch_and_add: clang 20+ (-mcpu=v3 by default) makes that a fetching BPF_ATOMIC, which kernels
    // before 5.12 refuse ("BPF_STX uses reserved fields"); a relaxed add whose result is unused is the plain
    // atomic add every kernel takes.
    if (count)
        __atomic_fetch_add(count, 1, __ATOMIC_RELAXED);
    else
        bpf_map_update_elem(&exec_counts, &uid, &one, BPF_NOEXIST);

    struct event *event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
    if (!event) {
        __u32 zero = 0;
        __u64 *lost = bpf_map_lookup_elem(&events_lost, &zero);
        if (lost)
            *lost += 1;
        return 0;
    }
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    event->pid = tgid;
    event->ppid = BPF_CORE_READ(task, real_parent, tgid);
    event->uid = uid;
    bpf_get_current_comm(event->comm, sizeof(event->comm));
    bpf_probe_read_user_str(event->filename, sizeof(event->filename), (const char *)ctx->args[0]);
    bpf_ringbuf_submit(event, 0);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
