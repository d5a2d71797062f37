//! Maps for `benchmarks/map_batch.py`: a hash map, a per-CPU hash map and an array of `u64` counters, which the
//! benchmark resizes at load (`max_entries`) and fills from user space. The program is never attached; it only
//! gives the object a user of each map.
#![no_std]
#![no_main]

use aya_ebpf::{
    macros::{map, raw_tracepoint},
    maps::{Array, HashMap, PerCpuHashMap},
    programs::RawTracePointContext,
};

#[map]
static BENCH_HASH: HashMap<u32, u64> = HashMap::with_max_entries(10_000, 0);
#[map]
static BENCH_PERCPU_HASH: PerCpuHashMap<u32, u64> = PerCpuHashMap::with_max_entries(10_000, 0);
#[map]
static BENCH_ARRAY: Array<u64> = Array::with_max_entries(10_000, 0);

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn bench_maps_touch(_ctx: RawTracePointContext) -> i32 {
    // SAFETY: lookups of map values that are only read.
    let total = unsafe {
        BENCH_HASH.get(&0).copied().unwrap_or(0)
            + BENCH_PERCPU_HASH.get(&0).copied().unwrap_or(0)
    } + BENCH_ARRAY.get(0).copied().unwrap_or(0);
    i32::from(total != 0)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
