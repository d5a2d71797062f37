//! A uprobe and a uretprobe on a test binary's `pyaya_add(a, b)`: each call sends a `(tgid, kind, value)` record
//! (kind 0: entry with argument `a`; kind 1: return with the result) through a ring buffer whose BTF names the
//! record type.
#![no_std]
#![no_main]

#[path = "stream_lost.rs"]
mod stream_lost;

use aya_ebpf::{
    btf_maps::{PerCpuArray, RingBuf},
    helpers::bpf_get_current_pid_tgid,
    macros::{btf_map, uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use stream_lost::count_lost;

#[repr(C)]
struct Call {
    tgid: u32,
    kind: u32,
    value: u64,
}

/// Records typed by the map itself: its BTF definition names `Call`.
#[btf_map]
static CALLS: RingBuf<Call, { 64 * 1024 }> = RingBuf::new();
#[btf_map]
static CALLS_LOST: PerCpuArray<u64, 1> = PerCpuArray::new();

fn send(kind: u32, value: u64) {
    if let Some(mut entry) = CALLS.reserve(0) {
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
