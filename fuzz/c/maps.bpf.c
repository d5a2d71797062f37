/* Maps of many kinds, BTF-defined and legacy, used by a tracepoint program that calls a subprogram (so the
   object has call relocations) and a ring buffer writer. */
#include "common.h"

struct key {
    u32 pid;
    u32 cpu;
};

struct stats {
    u64 calls;
    u64 bytes;
    s64 last_delta;
};

struct lpm_key {
    u32 prefixlen;
    u8 addr[4];
};

struct {
    __uint(type, MAP_HASH);
    __uint(max_entries, 1024);
    __type(key, struct key);
    __type(value, struct stats);
} counts SEC(".maps");

struct {
    __uint(type, MAP_PERCPU_ARRAY);
    __uint(max_entries, 4);
    __type(key, u32);
    __type(value, u64);
} scratch SEC(".maps");

struct {
    __uint(type, MAP_LRU_HASH);
    __uint(max_entries, 128);
    __type(key, u64);
    __type(value, u32);
} recent SEC(".maps");

struct {
    __uint(type, MAP_LPM_TRIE);
    __uint(max_entries, 16);
    __uint(map_flags, 1);
    __type(key, struct lpm_key);
    __type(value, u32);
} prefixes SEC(".maps");

struct {
    __uint(type, MAP_QUEUE);
    __uint(max_entries, 32);
    __type(value, u64);
} pending SEC(".maps");

struct {
    __uint(type, MAP_RINGBUF);
    __uint(max_entries, 4096);
} events SEC(".maps");

struct bpf_map_def SEC("maps") legacy = {
    .type = MAP_ARRAY,
    .key_size = sizeof(u32),
    .value_size = sizeof(u64),
    .max_entries = 8,
};

static __noinline u64 account(struct stats *stats, u64 bytes) {
    stats->calls += 1;
    stats->bytes += bytes;
    return stats->calls;
}

SEC("tracepoint/syscalls/sys_enter_write")
int count_writes(void *ctx) {
    u64 id = bpf_get_current_pid_tgid();
    struct key key = {.pid = id >> 32, .cpu = 0};
    struct stats *stats = bpf_map_lookup_elem(&counts, &key);
    if (!stats) {
        struct stats zero = {};
        bpf_map_update_elem(&counts, &key, &zero, 0);
        return 0;
    }
    u64 calls = account(stats, 1);
    u32 slot = 0;
    u64 *total = bpf_map_lookup_elem(&legacy, &slot);
    if (total)
        *total += calls;
    bpf_ringbuf_output(&events, &calls, sizeof(calls), 0);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
