//! A uprobe and a uretprobe on a test binary's `pyaya_add(a, b)`: each call sends a `(tgid, kind, value)` record
//! (kind 0: entry with argument `a`; kind 1: return with the result) through a ring buffer.
#![no_std]
#![no_main]

#[path = "stream_lost.rs"]
mod stream_lost;

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{map, uprobe, uretprobe},
    maps::{PerCpuArray, RingBuf},
    programs::{ProbeContext, RetProbeContext},
};
use stream_lost::count_lost;

#[repr(C)]
struct Call {
    tgid: u32,
    kind: u32,
    value: u64,
}

#[map]
static CALLS: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);
#[map]
static CALLS_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

fn send(kind: u32, value: u64) {
    if let Some(mut entry) = CALLS.reserve::<Call>(0) {
        entry.write(Call {
            tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
            kind,
            value,
        });
        entry.submit(0);
    } else {
        count_lost(&CALLS_LOST);
    }
}

#[uprobe]
pub fn trace_add_entry(ctx: ProbeContext) -> u32 {
    send(0, ctx.arg::<u64>(0).unwrap_or(u64::MAX));
    0
}

#[uretprobe]
pub fn trace_add_return(ctx: RetProbeContext) -> u32 {
    send(1, ctx.ret::<u64>());
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
