//! A task iterator (aya-ebpf 0.2 has no `#[iter]` macro, so the `iter/task` section is written by hand): for every
//! task it writes `(tgid, pid)` as two native-endian u32 into the iterator's seq_file.
#![no_std]
#![no_main]

use core::ffi::c_void;

use aya_ebpf::{
    bindings::seq_file,
    helpers::{bpf_probe_read_kernel, bpf_seq_write},
};

/// `struct bpf_iter_meta` (include/linux/bpf.h).
#[repr(C)]
pub struct IterMeta {
    pub seq: *mut seq_file,
    pub session_id: u64,
    pub seq_num: u64,
}

/// `struct bpf_iter__task`: the context of `iter/task` programs; `task` is null on the final call.
#[repr(C)]
pub struct IterTask {
    pub meta: *mut IterMeta,
    pub task: *const u8,
}

// Rust eBPF has no CO-RE: user space writes the offsets of task_struct.tgid and .pid from the kernel's BTF.
#[no_mangle]
static TASK_TGID_OFFSET: u64 = 0;
#[no_mangle]
static TASK_PID_OFFSET: u64 = 0;

#[no_mangle]
#[link_section = "iter/task"]
pub extern "C" fn trace_iter_tasks(ctx: *mut IterTask) -> i32 {
    // SAFETY: the kernel passes a valid bpf_iter__task; the task's fields are read with bpf_probe_read_kernel,
    // which checks addresses, and the record handed to bpf_seq_write lives on this stack frame.
    unsafe {
        let task = (*ctx).task;
        if task.is_null() {
            return 0;
        }
        let seq = (*(*ctx).meta).seq;
        let tgid_offset = core::ptr::read_volatile(&TASK_TGID_OFFSET) as usize;
        let pid_offset = core::ptr::read_volatile(&TASK_PID_OFFSET) as usize;
        if tgid_offset == 0 || pid_offset == 0 {
            return 0;
        }
        let tgid = bpf_probe_read_kernel(task.add(tgid_offset) as *const u32).unwrap_or(0);
        let pid = bpf_probe_read_kernel(task.add(pid_offset) as *const u32).unwrap_or(0);
        let record = [tgid, pid];
        bpf_seq_write(seq, record.as_ptr() as *const c_void, 8);
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
