//! One program per tracing attach type that takes a bpf cookie (uprobe, kprobe, tracepoint, perf event): each run
//! counts itself in `COOKIES` under the cookie its attachment was given (`bpf_get_attach_cookie`), so a test that
//! attaches twice with two cookies reads both back.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use core::ffi::c_void;

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    btf_maps::HashMap,
    helpers::generated::bpf_get_attach_cookie,
    macros::{btf_map, kprobe, perf_event, tracepoint, uprobe},
    programs::{PerfEventContext, ProbeContext, TracePointContext},
    EbpfContext as _,
};

#[btf_map]
static COOKIES: HashMap<u64, u64, 64> = HashMap::new();

fn count(ctx: *mut c_void) {
    // SAFETY: `ctx` is the context the kernel passed to this program run.
    let cookie = unsafe { bpf_get_attach_cookie(ctx) };
    match COOKIES.get_ptr_mut(&cookie) {
        Some(value) => atomic_add(value),
        None => {
            if COOKIES.insert(&cookie, &1, BPF_NOEXIST as u64).is_err() {
                if let Some(value) = COOKIES.get_ptr_mut(&cookie) {
                    atomic_add(value);
                }
            }
        }
    }
}

fn atomic_add(value: *mut u64) {
    // SAFETY: `value` points at a live, 8-byte aligned u64 map value returned by the kernel.
    unsafe { core::arch::asm!("lock *(u64 *)({0} + 0) += {1}", in(reg) value, in(reg) 1u64) };
}

#[uprobe]
pub fn cookie_uprobe(ctx: ProbeContext) -> u32 {
    count(ctx.as_ptr());
    0
}

#[kprobe]
pub fn cookie_kprobe(ctx: ProbeContext) -> u32 {
    count(ctx.as_ptr());
    0
}

#[tracepoint]
pub fn cookie_tracepoint(ctx: TracePointContext) -> u32 {
    count(ctx.as_ptr());
    0
}

#[perf_event]
pub fn cookie_perf(ctx: PerfEventContext) -> u32 {
    count(ctx.as_ptr());
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
