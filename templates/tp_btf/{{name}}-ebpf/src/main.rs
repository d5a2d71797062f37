//! Kernel side of {{name}}: a BTF-enabled tracepoint (`tp_btf/{{btf_tracepoint|text}}`) that sends one `ExecEvent` per
//! hit through a ring buffer and counts hits per uid. For `sched_process_exec` it decodes the tracepoint's typed
//! arguments `(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    btf_maps,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_probe_read_kernel_str_bytes,
    },
    macros::{btf_map, btf_tracepoint},
    programs::BtfTracePointContext,
};
use pyaya_fields::kernel_field;
use {{crate_name}}_common::ExecEvent;

/// One event per hit.
/// (A `#[btf_map]` ring buffer names its record type in the object's BTF: user space decodes `ExecEvent`s without
/// declaring the struct again.)
#[btf_map]
static EVENTS: btf_maps::RingBuf<ExecEvent, { 256 * 1024 }> = btf_maps::RingBuf::new();

/// Records `EVENTS` could not take (it was full), in entry 0 of each CPU: pyaya's lost-record convention
/// (`NAME_LOST`), so `pyaya run` reports them and `bpf.maps["EVENTS"].lost` is their sum.
#[btf_map]
static EVENTS_LOST: btf_maps::PerCpuArray<u64, 1> = btf_maps::PerCpuArray::new();

/// Hits per real uid.
#[btf_map]
static EXEC_COUNTS: btf_maps::HashMap<u32, u64, 4096> = btf_maps::HashMap::new();

/// Set by user space before loading (`-p PID`): report only this process's hits (for sched_process_exec: the
/// exec'ing task's tgid, which the exec keeps). Zero reports every process.
#[no_mangle]
static TARGET_TGID: u32 = 0;

// Rust eBPF has no CO-RE: the program declares the kernel field it reads by its path, and pyaya's loader fills in
// where the running kernel keeps it (from /sys/kernel/btf/vmlinux) before the kernel sees the program.
/// The name of the program being run: `bprm->filename` (a `const char *`).
kernel_field!(BINPRM_FILENAME: *const u8 = "linux_binprm.filename");

/// The kernel refuses a program that reads past a tracepoint's last argument, so the exec's arguments are read only
/// when the tracepoint is `sched_process_exec`.
const DECODES_EXEC: bool = same_name("{{btf_tracepoint|rust_str}}", "sched_process_exec");

#[btf_tracepoint(function = "{{btf_tracepoint|rust_str}}")]
pub fn {{crate_name}}(ctx: BtfTracePointContext) -> i32 {
    let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: a volatile read keeps the compiler from folding the loader-patched global to its initial zero.
    let target = unsafe { core::ptr::read_volatile(&TARGET_TGID) };
    if target != 0 && target != pid {
        return 0;
    }
    let uid = bpf_get_current_uid_gid() as u32;
    count(uid);
    let Some(mut entry) = EVENTS.reserve(0) else {
        count_lost();
        return 0;
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points at ring buffer memory reserved for one ExecEvent; every field is written before submit.
    unsafe {
        (*event).pid = pid;
        (*event).old_pid = pid;
        (*event).uid = uid;
        (*event).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        (*event).filename[0] = 0;
        (*event).filename_len = 0;
        if DECODES_EXEC {
            let old_pid: i32 = ctx.arg(1);
            (*event).old_pid = old_pid as u32;
            let bprm: *const u8 = ctx.arg(2);
            (*event).filename_len = read_filename(bprm, &mut (*event).filename);
        }
    }
    entry.submit(0);
    0
}

/// Copies `bprm->filename` into `buffer`; returns its length (0 when it cannot be read).
fn read_filename(bprm: *const u8, buffer: &mut [u8]) -> u32 {
    if bprm.is_null() {
        return 0;
    }
    // SAFETY: the helpers check the kernel addresses; a failed read yields an error, never a fault.
    unsafe {
        match BINPRM_FILENAME.read(bprm) {
            Ok(filename) if !filename.is_null() => {
                bpf_probe_read_kernel_str_bytes(filename, buffer).map_or(0, |bytes| bytes.len() as u32)
            }
            _ => 0,
        }
    }
}

fn count(uid: u32) {
    match EXEC_COUNTS.get_ptr_mut(&uid) {
        Some(count) => atomic_add(count, 1),
        None => {
            // Another CPU may have inserted the same uid meanwhile: then BPF_NOEXIST fails and we add to its entry.
            if EXEC_COUNTS.insert(&uid, &1, BPF_NOEXIST as u64).is_err() {
                if let Some(count) = EXEC_COUNTS.get_ptr_mut(&uid) {
                    atomic_add(count, 1);
                }
            }
        }
    }
}

/// Counts one record `EVENTS` could not take (see `EVENTS_LOST`).
fn count_lost() {
    if let Some(count) = EVENTS_LOST.get_ptr_mut(0) {
        atomic_add(count, 1);
    }
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
