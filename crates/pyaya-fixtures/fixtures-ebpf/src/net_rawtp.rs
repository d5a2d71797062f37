//! Raw tracepoint fixture for test runs: keeps its second argument and the sum of its first two in `LAST_ARG`.
//! (aya-ebpf's `#[raw_tracepoint]` makes every raw tracepoint return 0.)
#![no_std]
#![no_main]

use aya_ebpf::{
    btf_maps::Array,
    macros::{btf_map, raw_tracepoint},
    programs::RawTracePointContext,
};

/// Index 0: the second argument of the last run; 1: the sum of the first two.
#[btf_map]
static LAST_ARG: Array<u64, 2> = Array::new();

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn net_rawtp_args(ctx: RawTracePointContext) -> i32 {
    let first: u64 = ctx.arg(0);
    let second: u64 = ctx.arg(1);
    if let (Some(kept), Some(sum)) = (LAST_ARG.get_ptr_mut(0), LAST_ARG.get_ptr_mut(1)) {
        // SAFETY: both point at live u64 map values returned by the kernel.
        unsafe {
            *kept = second;
            *sum = first.wrapping_add(second);
        }
    }
    0
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
