/* Types for the decode path: bitfields, unions and anonymous members, signed and 64-bit enums, typedef chains,
   nested arrays, pointers, floats in a struct; global data in .data, .rodata and .bss; an XDP program. */
#include "common.h"

typedef u32 pid_t_;
typedef pid_t_ tgid_t;
typedef const volatile tgid_t cv_tgid_t;

enum color { RED, GREEN = 5, BLUE = -3 };
enum wide : u64 { SMALL = 1, HUGE = 0xffffffff00000000ull };

struct flags {
    u32 read : 1, write : 1, mode : 3, level : 11, rest : 16;
    s32 signed_bits : 7;
};

union address {
    u8 v4[4];
    u16 v6[8];
    u64 raw[2];
};

struct record {
    cv_tgid_t tgid;
    enum color color;
    enum wide wide;
    struct flags flags;
    union address address;
    union {
        u64 as_u64;
        struct {
            u32 low;
            u32 high;
        };
    };
    char comm[16];
    u8 bytes[6];
    u16 grid[3][4];
    struct record *next;
    double ratio;
    float weight;
};

struct {
    __uint(type, MAP_ARRAY);
    __uint(max_entries, 2);
    __type(key, u32);
    __type(value, struct record);
} records SEC(".maps");

volatile const u32 SAMPLE_RATE = 3;
u64 seen = 7;
u64 dropped;

SEC("xdp")
int classify(void *ctx) {
    u32 key = 0;
    struct record *r = bpf_map_lookup_elem(&records, &key);
    if (!r)
        return 2;
    r->flags.mode = SAMPLE_RATE;
    r->color = BLUE;
    r->grid[1][2] += 1;
    seen += 1;
    if (r->high > 10)
        dropped += 1;
    return 2;
}

char LICENSE[] SEC("license") = "GPL";
