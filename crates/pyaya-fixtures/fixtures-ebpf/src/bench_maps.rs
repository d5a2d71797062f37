//! Maps for `benchmarks/map_batch.py`: a hash map, a per-CPU hash map and an array of `u64` counters, which the
//! benchmark resizes at load (`max_entries`) and fills from user space. The program is never attached; it only
//! gives the object a user of each map.
#![no_std]
#![no_main]

use aya_ebpf::{
    btf_maps::{Array, HashMap, PerCpuHashMap},
    macros::{btf_map, raw_tracepoint},
    programs::RawTracePointContext,
};

#[btf_map]
static BENCH_HASH: HashMap<u32, u64, 10_000> = HashMap::new();
#[btf_map]
static BENCH_PERCPU_HASH: PerCpuHashMap<u32, u64, 10_000> = PerCpuHashMap::new();
#[btf_map]
static BENCH_ARRAY: Array<u64, 10_000> = Array::new();

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn bench_maps_touch(_ctx: RawTracePointContext) -> i32 {
    // SAFETY: lookups of map values that are only read.
    let total = unsafe {
        BENCH_HASH.get(0).copied().unwrap_or(0) + BENCH_PERCPU_HASH.get(0).copied().unwrap_or(0)
    } + BENCH_ARRAY.get(0).copied().unwrap_or(0);
    i32::from(total != 0)
}

/// The license the kernel reads before it lets a program call GPL-only helpers (`bpf_probe_read_*`,
/// `bpf_get_stackid`, ...). aya assumes GPL where an object has none; libbpf and cilium/ebpf do not.
#[no_mangle]
#[link_section = "license"]
pub static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
