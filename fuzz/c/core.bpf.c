/* CO-RE relocations (field offsets, existence, sizes; type ids; enum values) against the kernel's BTF, resolved by
   aya at load time, in a raw tracepoint and a socket filter. */
#include "common.h"

struct task_struct {
    s32 pid;
    s32 tgid;
    struct task_struct *real_parent;
    char comm[16];
} __attribute__((preserve_access_index));

enum pid_type { PIDTYPE_PID, PIDTYPE_TGID, PIDTYPE_MAX };

struct event {
    s32 pid;
    s32 ppid;
    u32 has_tgid;
    u32 comm_size;
    s64 max_pid_type;
    char comm[16];
};

struct {
    __uint(type, MAP_RINGBUF);
    __uint(max_entries, 8192);
} exits SEC(".maps");

SEC("raw_tp/sched_process_exit")
int on_exit(u64 *ctx) {
    struct task_struct *task = (void *)ctx[0];
    struct event *e = bpf_ringbuf_reserve(&exits, sizeof(*e), 0);
    if (!e)
        return 0;
    struct task_struct *parent = 0;
    bpf_probe_read_kernel(&e->pid, sizeof(e->pid), __builtin_preserve_access_index(&task->pid));
    bpf_probe_read_kernel(&parent, sizeof(parent), __builtin_preserve_access_index(&task->real_parent));
    bpf_probe_read_kernel(&e->ppid, sizeof(e->ppid), __builtin_preserve_access_index(&parent->tgid));
    e->has_tgid = __builtin_preserve_field_info(task->tgid, 2);
    e->comm_size = __builtin_preserve_field_info(task->comm, 1);
    e->max_pid_type = __builtin_preserve_enum_value(*(enum pid_type *)PIDTYPE_MAX, 1);
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    bpf_ringbuf_submit(e, 0);
    return 0;
}

SEC("socket")
int keep_all(void *skb) {
    return -1;
}

char LICENSE[] SEC("license") = "GPL";
