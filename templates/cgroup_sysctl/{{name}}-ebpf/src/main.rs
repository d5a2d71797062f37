//! Kernel side of {{name}}: a cgroup sysctl program that reports every read and write of a file under /proc/sys
//! (name, value, new value, who) through a ring buffer, and counts accesses per sysctl. It allows them all.
//! An access is reported once, at the start of the file: further reads of the same open file are not.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    btf_maps,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_sysctl_get_current_value, bpf_sysctl_get_name,
        bpf_sysctl_get_new_value,
    },
    macros::{btf_map, cgroup_sysctl},
    programs::SysctlContext,
};
use {{crate_name}}_common::{Access, SysctlEvent, KEY_NAME_LEN, NAME_LEN, VALUE_LEN};

/// One record per access.
#[btf_map]
static EVENTS: btf_maps::RingBuf<SysctlEvent, { 256 * 1024 }> = btf_maps::RingBuf::new();

/// Records `EVENTS` could not take (it was full), in entry 0 of each CPU: pyaya's lost-record convention
/// (`NAME_LOST`), so `pyaya run` reports them and `bpf.maps["EVENTS"].lost` is their sum.
#[btf_map]
static EVENTS_LOST: btf_maps::PerCpuArray<u64, 1> = btf_maps::PerCpuArray::new();

/// Accesses per sysctl and kind (read or write).
#[btf_map]
static ACCESSES: btf_maps::HashMap<Access, u64, 4096> = btf_maps::HashMap::new();

/// What the program returns to let the access proceed (0 would fail it with EPERM).
const ALLOW: i32 = 1;

#[cgroup_sysctl]
pub fn {{crate_name}}(ctx: SysctlContext) -> i32 {
    // SAFETY: reading fields of the context the kernel handed us.
    let (write, file_pos) = unsafe { ((*ctx.sysctl).write, (*ctx.sysctl).file_pos) };
    if file_pos != 0 {
        // The same access going on (`cat` reads once more to find the end): reported once, at its start.
        return ALLOW;
    }
    let Some(mut entry) = EVENTS.reserve(0) else {
        count_lost();
        return ALLOW;
    };
    let event = entry.write(SysctlEvent {
        pid: (bpf_get_current_pid_tgid() >> 32) as u32,
        write,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
        name: [0; NAME_LEN],
        value: [0; VALUE_LEN],
        new_value: [0; VALUE_LEN],
    });
    // SAFETY: each helper writes at most the length it is given into a field of the event. A cut name or value
    // (-E2BIG) is still NUL-terminated and shown as far as it goes; a failure leaves the field zeroed.
    unsafe {
        bpf_sysctl_get_name(ctx.sysctl, event.name.as_mut_ptr().cast(), NAME_LEN as u64, 0);
        bpf_sysctl_get_current_value(ctx.sysctl, event.value.as_mut_ptr().cast(), VALUE_LEN as u64);
        if write != 0 {
            bpf_sysctl_get_new_value(ctx.sysctl, event.new_value.as_mut_ptr().cast(), VALUE_LEN as u64);
        }
    }
    let mut access = Access { name: [0; KEY_NAME_LEN], write };
    access.name.copy_from_slice(&event.name[..KEY_NAME_LEN]);
    count(&access);
    entry.submit(0);
    ALLOW
}

fn count(access: &Access) {
    match ACCESSES.get_ptr_mut(access) {
        Some(count) => atomic_add(count, 1),
        None => {
            // Another CPU may have inserted the same key meanwhile: then BPF_NOEXIST fails and we add to its entry.
            if ACCESSES.insert(access, &1, BPF_NOEXIST as u64).is_err() {
                if let Some(count) = ACCESSES.get_ptr_mut(access) {
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

/// Adds to a map value with the BPF atomic add instruction, so accesses on several CPUs at once are all counted.
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
