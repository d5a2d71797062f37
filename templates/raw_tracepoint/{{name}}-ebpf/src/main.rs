//! Kernel side of {{name}}: a raw tracepoint on `{{tracepoint_name|text}}` that counts hits per process and, when the
//! tracepoint is `sys_enter`, per system call number.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    btf_maps,
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid},
    macros::{btf_map, raw_tracepoint},
    programs::RawTracePointContext,
};
use {{crate_name}}_common::Comm;

/// Hits (system calls for `sys_enter`) per process id.
#[btf_map]
static PROCESS_COUNTS: btf_maps::HashMap<u32, u64, 16384> = btf_maps::HashMap::new();

/// Each counted process's command name, as it was when first seen. (A `#[btf_map]` names its key and value types in
/// the object's BTF: user space reads `Comm` records without declaring the struct again.)
#[btf_map]
static PROCESS_NAMES: btf_maps::HashMap<u32, Comm, 16384> = btf_maps::HashMap::new();

/// Calls per system call number (only filled for `sys_enter`).
#[btf_map]
static SYSCALL_COUNTS: btf_maps::HashMap<u32, u64, 1024> = btf_maps::HashMap::new();

/// Set by user space before loading (`-p PID`): count only this process. Zero counts every process.
#[no_mangle]
static TARGET_TGID: u32 = 0;

/// The raw tracepoint's arguments depend on the tracepoint: `sys_enter(struct pt_regs *regs, long id)` has the
/// syscall number second. The kernel refuses to attach a program that reads past a tracepoint's last argument, so
/// the read is compiled in only for `sys_enter`.
const READS_SYSCALL_ID: bool = same_name("{{tracepoint_name|rust_str}}", "sys_enter");

#[raw_tracepoint(tracepoint = "{{tracepoint_name|rust_str}}")]
pub fn {{crate_name}}(ctx: RawTracePointContext) -> i32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: a volatile read keeps the compiler from folding the loader-patched global to its initial zero.
    let target = unsafe { core::ptr::read_volatile(&TARGET_TGID) };
    if target != 0 && target != tgid {
        return 0;
    }
    if increment(&PROCESS_COUNTS, tgid) {
        // First hit of this process: remember its name for user space (it may have exited by then).
        let comm = Comm {
            name: bpf_get_current_comm().unwrap_or([0; 16]),
        };
        let _ = PROCESS_NAMES.insert(&tgid, &comm, 0);
    }
    if READS_SYSCALL_ID {
        let id: u64 = ctx.arg(1);
        increment(&SYSCALL_COUNTS, id as u32);
    }
    0
}

/// Adds one to `key`'s count; returns whether the entry was created by this call.
fn increment<const ENTRIES: usize>(counts: &btf_maps::HashMap<u32, u64, ENTRIES>, key: u32) -> bool {
    if let Some(count) = counts.get_ptr_mut(&key) {
        atomic_add(count, 1);
        return false;
    }
    // Another CPU may have inserted the same key meanwhile: then BPF_NOEXIST fails and we add to its entry.
    if counts.insert(&key, &1, BPF_NOEXIST as u64).is_ok() {
        return true;
    }
    if let Some(count) = counts.get_ptr_mut(&key) {
        atomic_add(count, 1);
    }
    false
}

/// Adds to a map value with the BPF atomic add instruction, so hits on several CPUs at once are all counted.
/// (The BPF target has no compare-and-swap, so `core::sync::atomic` offers no `fetch_add` there.)
fn atomic_add(value: *mut u64, delta: u64) {
    // SAFETY: `value` points at a live, 8-byte aligned u64 map value returned by the kernel.
    unsafe { core::arch::asm!("lock *(u64 *)({0} + 0) += {1}", in(reg) value, in(reg) delta) };
}

/// String equality usable in a `const` (so the comparison costs nothing at run time).
const fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The license the kernel reads before it lets the program call GPL-only helpers (`bpf_probe_read_*`,
/// `bpf_get_current_task`, ...). aya assumes GPL where an object has none; libbpf and cilium/ebpf do not.
#[no_mangle]
#[link_section = "license"]
pub static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
