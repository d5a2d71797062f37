//! BTF-based and kprobe programs: a tp_btf program counting `sched_process_exec` per tgid, plus fentry, fexit,
//! lsm, lsm_cgroup, kprobe and kretprobe programs that tests load or attach where this kernel allows them (and otherwise
//! check the error that says what is missing).
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    btf_maps::HashMap,
    helpers::bpf_get_current_pid_tgid,
    macros::{btf_map, btf_tracepoint, fentry, fexit, kprobe, kretprobe, lsm, lsm_cgroup},
    programs::{BtfTracePointContext, FEntryContext, FExitContext, LsmContext, ProbeContext, RetProbeContext},
};

/// Hits per tgid; key 0 counts every hit of the fentry/fexit/kprobe programs.
#[btf_map]
static HITS: HashMap<u32, u64, 4096> = HashMap::new();

fn count(key: u32) {
    match HITS.get_ptr_mut(&key) {
        Some(value) => atomic_add(value, 1),
        None => {
            if HITS.insert(&key, &1, BPF_NOEXIST as u64).is_err() {
                if let Some(value) = HITS.get_ptr_mut(&key) {
                    atomic_add(value, 1);
                }
            }
        }
    }
}

fn atomic_add(value: *mut u64, delta: u64) {
    // SAFETY: `value` points at a live, 8-byte aligned u64 map value returned by the kernel.
    unsafe { core::arch::asm!("lock *(u64 *)({0} + 0) += {1}", in(reg) value, in(reg) delta) };
}

fn current_tgid() -> u32 {
    (bpf_get_current_pid_tgid() >> 32) as u32
}

#[btf_tracepoint(function = "sched_process_exec")]
pub fn trace_exec_btf(_ctx: BtfTracePointContext) -> i32 {
    count(current_tgid());
    0
}

#[fentry(function = "do_unlinkat")]
pub fn trace_unlink_entry(_ctx: FEntryContext) -> i32 {
    count(0);
    0
}

#[fexit(function = "do_unlinkat")]
pub fn trace_unlink_exit(_ctx: FExitContext) -> i32 {
    count(0);
    0
}

#[lsm(hook = "file_open")]
pub fn trace_file_open(_ctx: LsmContext) -> i32 {
    count(0);
    0
}

#[lsm_cgroup(hook = "socket_create")]
pub fn trace_socket_create(_ctx: LsmContext) -> i32 {
    count(0);
    // 1 allows the operation for cgroup LSM programs.
    1
}

#[kprobe]
pub fn trace_kprobe(_ctx: ProbeContext) -> u32 {
    count(0);
    0
}

#[kretprobe]
pub fn trace_kretprobe(_ctx: RetProbeContext) -> u32 {
    count(0);
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
