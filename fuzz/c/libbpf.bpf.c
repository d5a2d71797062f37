/* What pyaya's object pass rewrites before aya sees an object: libbpf's classifier sections (SEC("tc"),
   "tc/egress"), __ksym externs (a kfunc, an untyped symbol, weak ones) and __kconfig externs. */
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

char LICENSE[] SEC("license") = "GPL";
