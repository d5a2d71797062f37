//! Multi-point probes: a `#[uprobe(multi)]` and a `#[uretprobe(multi)]` (sections `uprobe.multi`,
//! `uretprobe.multi`), and a kprobe.multi and a kretprobe.multi (aya-ebpf 0.2's `#[kprobe]` has no `multi`, so
//! their sections are given by hand, as the macro would write them). Each run sends a `Hit`: its kind (0 uprobe
//! entry, 1 uprobe return, 2 kprobe entry, 3 kprobe return), the bpf cookie of the location it ran for
//! (`bpf_get_attach_cookie`), and the first argument (entries) or the return value (returns). The kprobes, on busy
//! kernel paths, send only for the process in `MULTI_TGID` (written by the test through `bpf.globals`).
#![no_std]
#![no_main]

#[path = "stream_lost.rs"]
mod stream_lost;

use core::ffi::c_void;

use aya_ebpf::{
    btf_maps::{PerCpuArray, RingBuf},
    helpers::{bpf_get_current_pid_tgid, generated::bpf_get_attach_cookie},
    macros::{btf_map, uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
    EbpfContext as _,
};
use stream_lost::count_lost;

#[repr(C)]
struct Hit {
    tgid: u32,
    kind: u32,
    cookie: u64,
    value: u64,
}

#[btf_map]
static HITS: RingBuf<Hit, { 64 * 1024 }> = RingBuf::new();
#[btf_map]
static HITS_LOST: PerCpuArray<u64, 1> = PerCpuArray::new();

/// The process whose runs the kprobes report.
#[no_mangle]
static mut MULTI_TGID: u32 = 0;

fn tgid() -> u32 {
    (bpf_get_current_pid_tgid() >> 32) as u32
}

fn ours() -> bool {
    // SAFETY: a plain read of this object's own global; user space writes it through the mmap'd .bss.
    let wanted = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(MULTI_TGID)) };
    wanted != 0 && tgid() == wanted
}

fn send(ctx: *mut c_void, kind: u32, value: u64) {
    // SAFETY: `ctx` is the context the kernel passed to this program run.
    let cookie = unsafe { bpf_get_attach_cookie(ctx) };
    if let Some(mut entry) = HITS.reserve(0) {
        entry.write(Hit {
            tgid: tgid(),
            kind,
            cookie,
            value,
        });
        entry.submit(0);
    } else {
        count_lost(&HITS_LOST);
    }
}

#[uprobe(multi)]
pub fn multi_entry(ctx: ProbeContext) -> u32 {
    send(ctx.as_ptr(), 0, ctx.arg::<u64>(0).unwrap_or(u64::MAX));
    0
}

#[uretprobe(multi)]
pub fn multi_return(ctx: RetProbeContext) -> u32 {
    send(ctx.as_ptr(), 1, ctx.ret::<u64>());
    0
}

#[no_mangle]
#[link_section = "kprobe.multi"]
pub fn kmulti_entry(ctx: *mut c_void) -> u32 {
    if ours() {
        let ctx = ProbeContext::new(ctx);
        send(ctx.as_ptr(), 2, ctx.arg::<u64>(0).unwrap_or(u64::MAX));
    }
    0
}

#[no_mangle]
#[link_section = "kretprobe.multi"]
pub fn kmulti_return(ctx: *mut c_void) -> u32 {
    if ours() {
        let ctx = RetProbeContext::new(ctx);
        send(ctx.as_ptr(), 3, ctx.ret::<u64>());
    }
    0
}

/// The license the kernel reads before it lets a program call GPL-only helpers.
#[no_mangle]
#[link_section = "license"]
pub static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
