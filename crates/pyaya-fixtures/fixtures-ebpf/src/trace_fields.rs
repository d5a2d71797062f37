//! Kernel fields read without CO-RE (pyaya-fields): on each exec whose parent is `WATCH_PPID`, records the exec'ing
//! task's tgid, its parent's and grandparent's tgids, its uts namespace's nodename and what the loader said of an
//! optional renamed field and an optional missing one, read through offsets pyaya filled from the kernel's BTF.
#![no_std]
#![no_main]

use aya_ebpf::{helpers::bpf_get_current_task, macros::tracepoint, programs::TracePointContext};
use pyaya_fields::kernel_field;

kernel_field!(TASK_TGID: u32 = "task_struct.tgid");
kernel_field!(PARENT_TGID: u32 = "task_struct.real_parent->tgid");
kernel_field!(GRANDPARENT_TGID: u32 = "task_struct.real_parent->real_parent->tgid");
kernel_field!(NODENAME: [u8; 65] = "task_struct.nsproxy->uts_ns->name.nodename");
// `state` became `__state` (and 4 bytes instead of a long's 8) in 5.14.
kernel_field!(optional TASK_STATE: u64 = "task_struct.__state|state");
kernel_field!(optional NO_SUCH_FIELD: u32 = "task_struct.pyaya_no_such_field");

/// What the last matching exec saw.
#[repr(C)]
pub struct FieldsSeen {
    pub hits: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub grandparent: u32,
    pub tgid_offset: u32,
    pub state_exists: u32,
    pub state_size: u32,
    pub missing_exists: u32,
    pub missing_error: i64,
    pub nodename: [u8; 65],
}

#[no_mangle]
static mut SEEN: FieldsSeen = FieldsSeen {
    hits: 0,
    tgid: 0,
    ppid: 0,
    grandparent: 0,
    tgid_offset: 0,
    state_exists: 0,
    state_size: 0,
    missing_exists: 0,
    missing_error: 0,
    nodename: [0; 65],
};

/// Set by user space after load: only the execs of this process's children are recorded.
#[no_mangle]
static mut WATCH_PPID: u32 = 0;

#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn trace_fields(_ctx: TracePointContext) -> u32 {
    let task = unsafe { bpf_get_current_task() } as *const u8;
    // SAFETY: `task` is the current task_struct; each read goes through bpf_probe_read_kernel.
    let ppid = unsafe { PARENT_TGID.read(task) }.unwrap_or(0);
    // SAFETY: a volatile read sees the value user space wrote after load.
    let watched = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(WATCH_PPID)) };
    if watched == 0 || ppid != watched {
        return 0;
    }
    let seen = core::ptr::addr_of_mut!(SEEN);
    // SAFETY: `seen` is this object's .bss global; the reads go through bpf_probe_read_kernel.
    unsafe {
        (*seen).tgid = TASK_TGID.read(task).unwrap_or(0);
        (*seen).ppid = ppid;
        (*seen).grandparent = GRANDPARENT_TGID.read(task).unwrap_or(0);
        (*seen).tgid_offset = TASK_TGID.offset().unwrap_or(u32::MAX);
        (*seen).state_exists = TASK_STATE.exists() as u32;
        (*seen).state_size = TASK_STATE.size();
        (*seen).missing_exists = NO_SUCH_FIELD.exists() as u32;
        (*seen).missing_error = match NO_SUCH_FIELD.read(task) {
            Ok(_) => 1,
            Err(error) => error,
        };
        if let Ok(name) = NODENAME.read(task) {
            (*seen).nodename = name;
        }
        (*seen).hits += 1;
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
