//! Programs the verifier must reject. `rejected` reads far past the end of its tracepoint context, which only a
//! `bpf_probe_read*` helper may do: tests use it to check that the verifier's log reaches Python.
//! `helper_refused` is a socket filter calling `bpf_get_func_ret`, a helper only fexit programs may call: tests
//! use it to check that the error names the helper.
#![no_std]
#![no_main]

use aya_ebpf::{
    helpers::bpf_get_func_ret,
    macros::{socket_filter, tracepoint},
    programs::{SkBuffContext, TracePointContext},
    EbpfContext as _,
};

#[tracepoint(category = "syscalls", name = "sys_enter_getpid")]
pub fn rejected(ctx: TracePointContext) -> u32 {
    // SAFETY: none, on purpose: the verifier refuses this out-of-bounds context access at load time.
    let value = unsafe { core::ptr::read_volatile((ctx.as_ptr() as *const u64).add(4096)) };
    value as u32
}

#[socket_filter]
pub fn helper_refused(ctx: SkBuffContext) -> i64 {
    let mut value = 0u64;
    // SAFETY: none needed at run time: the verifier refuses this call in a socket filter before the program runs.
    unsafe { bpf_get_func_ret(ctx.as_ptr(), &mut value) };
    value as i64
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
