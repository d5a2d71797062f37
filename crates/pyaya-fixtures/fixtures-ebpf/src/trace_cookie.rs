//! One program per tracing attach type that takes a bpf cookie (uprobe, kprobe, tracepoint, perf event, raw
//! tracepoint, tp_btf, fentry, fexit, LSM): each run counts itself in `COOKIES` under the cookie its attachment was
//! given (`bpf_get_attach_cookie`), so a test that attaches twice with two cookies reads both back. The programs on
//! busy kernel paths (the raw tracepoint and later ones) count only runs of the process in `COOKIE_TGID`.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use core::ffi::c_void;

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    btf_maps::HashMap,
    helpers::{bpf_get_current_pid_tgid, generated::bpf_get_attach_cookie},
    macros::{btf_map, btf_tracepoint, fentry, fexit, kprobe, lsm, perf_event, raw_tracepoint, tracepoint, uprobe},
    programs::{
        BtfTracePointContext, FEntryContext, FExitContext, LsmContext, PerfEventContext, ProbeContext,
        RawTracePointContext, TracePointContext,
    },
    EbpfContext as _,
};

/// The process whose runs the busy-path programs count (written by the test through `bpf.globals`).
#[no_mangle]
static mut COOKIE_TGID: u32 = 0;

fn ours() -> bool {
    // SAFETY: a plain read of this object's own global; user space writes it through the mmap'd .bss.
    let wanted = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(COOKIE_TGID)) };
    wanted != 0 && (bpf_get_current_pid_tgid() >> 32) as u32 == wanted
}

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

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn cookie_raw_tp(ctx: RawTracePointContext) -> i32 {
    if ours() {
        count(ctx.as_ptr());
    }
    0
}

#[btf_tracepoint(function = "sys_enter")]
pub fn cookie_tp_btf(ctx: BtfTracePointContext) -> i32 {
    if ours() {
        count(ctx.as_ptr());
    }
    0
}

/// `getppid()` calls it (through `task_tgid_vnr`), and it is not inlined: it is exported.
#[fentry(function = "__task_pid_nr_ns")]
pub fn cookie_fentry(ctx: FEntryContext) -> u32 {
    if ours() {
        count(ctx.as_ptr());
    }
    0
}

#[fexit(function = "__task_pid_nr_ns")]
pub fn cookie_fexit(ctx: FExitContext) -> u32 {
    if ours() {
        count(ctx.as_ptr());
    }
    0
}

#[lsm(hook = "file_open")]
pub fn cookie_lsm(ctx: LsmContext) -> i32 {
    if ours() {
        count(ctx.as_ptr());
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
