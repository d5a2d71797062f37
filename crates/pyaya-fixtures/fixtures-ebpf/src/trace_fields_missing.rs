//! A required kernel field no kernel has: its load must fail naming the field, leaving nothing loaded.
#![no_std]
#![no_main]

use aya_ebpf::{helpers::bpf_get_current_task, macros::tracepoint, programs::TracePointContext};
use pyaya_fields::kernel_field;

kernel_field!(PARENT_TGID: u32 = "task_struct.real_parent->tgid");
kernel_field!(PARENT_COOKIE: u64 = "task_struct.real_parent->pyaya_no_such_field|pyaya_nor_this");

#[no_mangle]
static mut LAST: u64 = 0;

#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn trace_fields_missing(_ctx: TracePointContext) -> u32 {
    let task = unsafe { bpf_get_current_task() } as *const u8;
    // SAFETY: each read goes through bpf_probe_read_kernel; LAST is this object's .bss global.
    unsafe {
        let value = PARENT_COOKIE.read(task).unwrap_or(0) + u64::from(PARENT_TGID.read(task).unwrap_or(0));
        core::ptr::write_volatile(core::ptr::addr_of_mut!(LAST), value);
    }
    0
}

#[no_mangle]
#[link_section = "license"]
pub static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
