//! Raw tracepoint fixture for test runs: returns the sum of its first two arguments and keeps the second.
#![no_std]
#![no_main]

use aya_ebpf::{
    macros::{map, raw_tracepoint},
    maps::Array,
    programs::RawTracePointContext,
};

/// Index 0: the second argument of the last run.
#[map]
static LAST_ARG: Array<u64> = Array::with_max_entries(1, 0);

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn net_rawtp_args(ctx: RawTracePointContext) -> i32 {
    let first: u64 = ctx.arg(0);
    let second: u64 = ctx.arg(1);
    if let Some(slot) = LAST_ARG.get_ptr_mut(0) {
        // SAFETY: `slot` points at a live u64 map value returned by the kernel.
        unsafe { *slot = second };
    }
    first.wrapping_add(second) as i32
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
