//! Kernel side of {{name}}: a BPF LSM program on the hook `{{lsm_hook|text}}` that reports each check through a ring buffer
//! and counts checks per process. It never denies anything: it returns the decision it was given.
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
    macros::{btf_map, lsm},
    programs::LsmContext,
};
use pyaya_fields::kernel_field;
use {{crate_name}}_common::Check;

/// One event per check.
/// (A `#[btf_map]` ring buffer names its record type in the object's BTF: user space decodes `Check`s without
/// declaring the struct again.)
#[btf_map]
static EVENTS: btf_maps::RingBuf<Check, { 256 * 1024 }> = btf_maps::RingBuf::new();

/// Records `EVENTS` could not take (it was full), in entry 0 of each CPU: pyaya's lost-record convention
/// (`NAME_LOST`), so `pyaya run` reports them and `bpf.maps["EVENTS"].lost` is their sum.
#[btf_map]
static EVENTS_LOST: btf_maps::PerCpuArray<u64, 1> = btf_maps::PerCpuArray::new();

/// Checks per process id.
#[btf_map]
static CHECKS: btf_maps::HashMap<u32, u64, 10240> = btf_maps::HashMap::new();

// Rust eBPF has no CO-RE: the program declares the kernel fields it reads by their paths, and pyaya's loader fills
// in where the running kernel keeps them (from /sys/kernel/btf/vmlinux) before the kernel sees the program.
/// The name of the program about to run (bprm_check_security).
kernel_field!(BINPRM_FILENAME: *const u8 = "linux_binprm.filename");
/// The name of the file being opened (file_open): `file->f_path.dentry->d_name.name`.
kernel_field!(FILE_NAME: *const u8 = "file.f_path.dentry->d_name.name");

/// Set by user space before loading (`-p PID`): report only this process's checks (still passing every decision
/// on). Zero reports every process.
#[no_mangle]
static TARGET_TGID: u32 = 0;

/// Hooks whose argument this program decodes. Both take one argument, so the decision so far is argument 1 (BPF
/// LSM programs get it after the hook's own); for other hooks its index is unknown and the program returns 0.
const IS_BPRM_CHECK: bool = same_name("{{lsm_hook|rust_str}}", "bprm_check_security");
const IS_FILE_OPEN: bool = same_name("{{lsm_hook|rust_str}}", "file_open");

#[lsm(hook = "{{lsm_hook|rust_str}}")]
pub fn {{crate_name}}(ctx: LsmContext) -> i32 {
    let decision: i32 = if IS_BPRM_CHECK || IS_FILE_OPEN {
        ctx.arg(1)
    } else {
        0
    };
    let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let target = load(&TARGET_TGID);
    if target != 0 && target != pid {
        return decision;
    }
    count(pid);
    if let Some(mut entry) = EVENTS.reserve(0) {
        let event = entry.as_mut_ptr();
        // SAFETY: `event` points at ring buffer memory reserved for one Check; every field is written before submit.
        unsafe {
            (*event).pid = pid;
            (*event).uid = bpf_get_current_uid_gid() as u32;
            (*event).decision = decision;
            (*event).comm = bpf_get_current_comm().unwrap_or([0; 16]);
            (*event).name[0] = 0;
            (*event).name_len = 0;
            let object: *const u8 = if IS_BPRM_CHECK || IS_FILE_OPEN {
                ctx.arg(0)
            } else {
                core::ptr::null()
            };
            let name = if IS_BPRM_CHECK {
                BINPRM_FILENAME.read(object)
            } else if IS_FILE_OPEN {
                FILE_NAME.read(object)
            } else {
                Err(0)
            };
            if let Ok(name) = name {
                if !name.is_null() {
                    (*event).name_len = bpf_probe_read_kernel_str_bytes(name, &mut (*event).name)
                        .map_or(0, |bytes| bytes.len() as u32);
                }
            }
        }
        entry.submit(0);
    } else {
        count_lost();
    }
    // Never deny: pass on the decision made so far.
    decision
}

/// Reads a loader-patched global; volatile so the compiler does not fold it to its initial zero.
fn load<T: Copy>(global: &T) -> T {
    // SAFETY: `global` is a valid static.
    unsafe { core::ptr::read_volatile(global) }
}

fn count(pid: u32) {
    match CHECKS.get_ptr_mut(&pid) {
        Some(count) => atomic_add(count, 1),
        None => {
            // Another CPU may have inserted the same pid meanwhile: then BPF_NOEXIST fails and we add to its entry.
            if CHECKS.insert(&pid, &1, BPF_NOEXIST as u64).is_err() {
                if let Some(count) = CHECKS.get_ptr_mut(&pid) {
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

/// Adds to a map value with the BPF atomic add instruction, so checks on several CPUs at once are all counted.
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
