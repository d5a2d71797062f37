//! A program the verifier must reject: it reads far past the end of its tracepoint context, which only a
//! `bpf_probe_read*` helper may do. Tests use it to check that the verifier's log reaches Python.
#![no_std]
#![no_main]

use aya_ebpf::{macros::tracepoint, programs::TracePointContext, EbpfContext as _};

#[tracepoint(category = "syscalls", name = "sys_enter_getpid")]
pub fn rejected(ctx: TracePointContext) -> u32 {
    // SAFETY: none, on purpose: the verifier refuses this out-of-bounds context access at load time.
    let value = unsafe { core::ptr::read_volatile((ctx.as_ptr() as *const u64).add(4096)) };
    value as u32
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
