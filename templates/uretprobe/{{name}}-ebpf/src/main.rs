//! Kernel side of {{name}}: a uretprobe on `{{uprobe_function|text}}` in `{{uprobe_target|text}}` that sends the string it
//! returns (for bash's readline: each command line typed) through a ring buffer, and counts lines per process.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    btf_maps,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_probe_read_user_str_bytes,
    },
    macros::{btf_map, uretprobe},
    programs::RetProbeContext,
};
use {{crate_name}}_common::LineEvent;

/// One event per returned line.
/// (A `#[btf_map]` ring buffer names its record type in the object's BTF: user space decodes `LineEvent`s without
/// declaring the struct again.)
#[btf_map]
static EVENTS: btf_maps::RingBuf<LineEvent, { 256 * 1024 }> = btf_maps::RingBuf::new();

/// Records `EVENTS` could not take (it was full), in entry 0 of each CPU: pyaya's lost-record convention
/// (`NAME_LOST`), so `pyaya run` reports them and `bpf.maps["EVENTS"].lost` is their sum.
#[btf_map]
static EVENTS_LOST: btf_maps::PerCpuArray<u64, 1> = btf_maps::PerCpuArray::new();

/// Lines returned per process id.
#[btf_map]
static LINES: btf_maps::HashMap<u32, u64, 10240> = btf_maps::HashMap::new();

#[uretprobe]
pub fn {{crate_name}}(ctx: RetProbeContext) -> u32 {
    let line: *const u8 = ctx.ret();
    if line.is_null() {
        return 0; // readline returns NULL at end of input
    }
    let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(mut entry) = EVENTS.reserve(0) else {
        count_lost();
        return 0;
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points at ring buffer memory reserved for one LineEvent; every field is written before submit,
    // and the helper checks the user address (an unreadable one gives an empty line).
    unsafe {
        (*event).pid = pid;
        (*event).uid = bpf_get_current_uid_gid() as u32;
        (*event)._padding = 0;
        (*event).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        (*event).line[0] = 0;
        (*event).line_len =
            bpf_probe_read_user_str_bytes(line, &mut (*event).line).map_or(0, |s| s.len() as u32);
    }
    entry.submit(0);
    increment(&LINES, pid);
    0
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

/// Adds to a map value with the BPF atomic add instruction, so lines on several CPUs at once are all counted.
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
