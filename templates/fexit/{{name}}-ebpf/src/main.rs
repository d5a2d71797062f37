//! Kernel side of {{name}}: an fexit program on `{{function|text}}` (a BPF trampoline) that looks at every return value: errors are counted per
//! errno and sent through a ring buffer, other results go into a log2 histogram, and calls are counted per process.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    btf_maps,
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid},
    macros::{btf_map, fexit},
    programs::FExitContext,
};
use {{crate_name}}_common::{Failure, HISTOGRAM_SLOTS, MAX_ERRNO};

/// Calls that returned an error.
/// (A `#[btf_map]` ring buffer names its record type in the object's BTF: user space decodes `Failure`s without
/// declaring the struct again.)
#[btf_map]
static EVENTS: btf_maps::RingBuf<Failure, { 256 * 1024 }> = btf_maps::RingBuf::new();

/// Records `EVENTS` could not take (it was full), in entry 0 of each CPU: pyaya's lost-record convention
/// (`NAME_LOST`), so `pyaya run` reports them and `bpf.maps["EVENTS"].lost` is their sum.
#[btf_map]
static EVENTS_LOST: btf_maps::PerCpuArray<u64, 1> = btf_maps::PerCpuArray::new();

/// Calls per process id.
#[btf_map]
static CALLS: btf_maps::HashMap<u32, u64, 10240> = btf_maps::HashMap::new();

/// Errors per errno.
#[btf_map]
static ERRORS: btf_maps::HashMap<u32, u64, 4096> = btf_maps::HashMap::new();

/// Log2 histogram of the results that are not errors: slot `n` counts results in `[2^(n-1), 2^n)` (slot 0: zero).
#[btf_map]
static RESULTS: btf_maps::Array<u64, { HISTOGRAM_SLOTS as usize }> = btf_maps::Array::new();

/// Set by user space before loading (`-p PID`): look only at this process. Zero looks at every process.
#[no_mangle]
static TARGET_TGID: u32 = 0;

/// Set by user space before loading, from the function's BTF: the width of its return type in bits. The upper half
/// of the return register is undefined for a 32-bit `int`, so it is sign-extended from the lower half.
#[no_mangle]
static RETURN_BITS: u64 = 64;

#[fexit(function = "{{function|rust_str}}")]
pub fn {{crate_name}}(ctx: FExitContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let pid = (pid_tgid >> 32) as u32;
    // SAFETY: volatile reads keep the compiler from folding the loader-patched globals to their initial values.
    let (target, bits) = unsafe {
        (
            core::ptr::read_volatile(&TARGET_TGID),
            core::ptr::read_volatile(&RETURN_BITS),
        )
    };
    if target != 0 && target != pid {
        return 0;
    }
    // bpf_get_func_ret (Linux 5.17): the return value whatever the function's number of arguments.
    let Ok(raw) = ctx.ret::<u64>() else {
        return 0;
    };
    let result = if bits == 32 {
        raw as u32 as i32 as i64
    } else {
        raw as i64
    };
    increment(&CALLS, pid);
    if (-MAX_ERRNO..0).contains(&result) {
        let errno = (-result) as u32;
        increment(&ERRORS, errno);
        if let Some(mut entry) = EVENTS.reserve(0) {
            let event = entry.as_mut_ptr();
            // SAFETY: `event` points at ring buffer memory reserved for one Failure; every field is written.
            unsafe {
                (*event).pid = pid;
                (*event).tid = pid_tgid as u32;
                (*event).errno = errno;
                (*event)._padding = 0;
                (*event).comm = bpf_get_current_comm().unwrap_or([0; 16]);
            }
            entry.submit(0);
        } else {
            count_lost();
        }
    } else if let Some(slot) = RESULTS.get_ptr_mut(log2_slot(raw)) {
        // Results below -MAX_ERRNO (kernel pointers) land in the top slot.
        atomic_add(slot, 1);
    }
    0
}

/// The histogram slot of `value`: its bit length (0 for 0), so slot `n` holds `[2^(n-1), 2^n)`.
fn log2_slot(value: u64) -> u32 {
    (64 - value.leading_zeros()).min(HISTOGRAM_SLOTS - 1)
}

/// Adds one to `key`'s count.
fn increment<const ENTRIES: usize>(counts: &btf_maps::HashMap<u32, u64, ENTRIES>, key: u32) {
    if let Some(count) = counts.get_ptr_mut(&key) {
        atomic_add(count, 1);
    } else if counts.insert(&key, &1, BPF_NOEXIST as u64).is_err() {
        // Another CPU inserted the same key meanwhile: add to its entry.
        if let Some(count) = counts.get_ptr_mut(&key) {
            atomic_add(count, 1);
        }
    }
}

/// Counts one record `EVENTS` could not take (see `EVENTS_LOST`).
fn count_lost() {
    if let Some(count) = EVENTS_LOST.get_ptr_mut(0) {
        atomic_add(count, 1);
    }
}

/// Adds to a map value with the BPF atomic add instruction, so calls on several CPUs at once are all counted.
/// (The BPF target has no compare-and-swap, so `core::sync::atomic` offers no `fetch_add` there.)
fn atomic_add(value: *mut u64, delta: u64) {
    // SAFETY: `value` points at a live, 8-byte aligned u64 map value returned by the kernel.
    unsafe { core::arch::asm!("lock *(u64 *)({0} + 0) += {1}", in(reg) value, in(reg) delta) };
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
