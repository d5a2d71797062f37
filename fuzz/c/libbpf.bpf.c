/* What pyaya's object pass rewrites before aya sees an object: libbpf's classifier sections (SEC("tc"),
   "tc/egress"), __ksym externs (a kfunc, an untyped symbol, weak ones), __kconfig externs, and CO-RE reads of a
   trailing flexible array (a syscall tracepoint's arguments). */
#include "common.h"

#define __ksym __attribute__((section(".ksyms")))
#define __kconfig __attribute__((section(".kconfig")))
#define __weak __attribute__((weak))

struct __sk_buff;

extern void *bpf_task_from_pid(s32 pid) __ksym __weak;
extern const void vfs_read __ksym;
extern const void pyaya_no_such_symbol __ksym __weak;
extern int CONFIG_HZ __kconfig __weak;
extern unsigned int LINUX_KERNEL_VERSION __kconfig;

u64 seen = 0;

SEC("tc")
int classify(struct __sk_buff *skb)
{
    seen = (u64)&vfs_read + (u64)&pyaya_no_such_symbol + CONFIG_HZ + LINUX_KERNEL_VERSION;
    if (bpf_task_from_pid)
        seen += 1;
    return 0;
}

SEC("tc/egress")
int egress(struct __sk_buff *skb)
{
    seen += 2;
    return 0;
}

struct syscall_trace_enter {
    u64 ent;
    int nr;
    unsigned long args[];
} __attribute__((preserve_access_index));

SEC("tracepoint/syscalls/sys_enter_pread64")
int flex_args(struct syscall_trace_enter *ctx)
{
    u64 value = 0;

    bpf_probe_read_kernel(&value, sizeof(value), &ctx->args[3]);
    seen += value;
    bpf_probe_read_kernel(&value, sizeof(value), &ctx->args[0]);
    seen += value;
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
