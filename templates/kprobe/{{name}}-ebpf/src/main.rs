//! Kernel side of {{name}}: a kprobe and a kretprobe on `{{function|text}}` that time each call, count calls per process,
//! fill a log2 histogram of latencies, and send the calls slower than a minimum through a ring buffer.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    btf_maps,
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{btf_map, kprobe, kretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use {{crate_name}}_common::{SlowCall, HISTOGRAM_SLOTS};

/// Calls slower than `MIN_LATENCY_NS`.
/// (A `#[btf_map]` ring buffer names its record type in the object's BTF: user space decodes `SlowCall`s without
/// declaring the struct again.)
#[btf_map]
static EVENTS: btf_maps::RingBuf<SlowCall, { 256 * 1024 }> = btf_maps::RingBuf::new();

/// Records `EVENTS` could not take (it was full), in entry 0 of each CPU: pyaya's lost-record convention
/// (`NAME_LOST`), so `pyaya run` reports them and `bpf.maps["EVENTS"].lost` is their sum.
#[btf_map]
static EVENTS_LOST: btf_maps::PerCpuArray<u64, 1> = btf_maps::PerCpuArray::new();

/// Entry time of the calls in progress, by thread (`pid_tgid`).
#[btf_map]
static STARTS: btf_maps::HashMap<u64, u64, 10240> = btf_maps::HashMap::new();

/// Finished calls per process id.
#[btf_map]
static CALLS: btf_maps::HashMap<u32, u64, 10240> = btf_maps::HashMap::new();

/// Log2 histogram of latencies in nanoseconds: slot `n` counts latencies in `[2^(n-1), 2^n)` (slot 0: zero).
#[btf_map]
static LATENCY_NS: btf_maps::Array<u64, { HISTOGRAM_SLOTS as usize }> = btf_maps::Array::new();

/// Set by user space before loading (`-p PID`): time only this process. Zero times every process.
#[no_mangle]
static TARGET_TGID: u32 = 0;

/// Set by user space before loading: calls faster than this are counted but not sent as events.
#[no_mangle]
static MIN_LATENCY_NS: u64 = 0;

#[kprobe(function = "{{function|rust_str}}")]
pub fn {{crate_name}}_entry(_ctx: ProbeContext) -> u32 {
    enter();
    0
}

#[kretprobe(function = "{{function|rust_str}}")]
pub fn {{crate_name}}_return(_ctx: RetProbeContext) -> u32 {
    leave();
    0
}

fn enter() {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: a volatile read keeps the compiler from folding the loader-patched global to its initial zero.
    let target = unsafe { core::ptr::read_volatile(&TARGET_TGID) };
    if target != 0 && target != (pid_tgid >> 32) as u32 {
        return;
    }
    let now = unsafe { bpf_ktime_get_ns() };
    let _ = STARTS.insert(&pid_tgid, &now, 0);
}

fn leave() {
    let now = unsafe { bpf_ktime_get_ns() };
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: the entry is only read here, by the thread that wrote it, before it is removed below.
    let Some(&start) = (unsafe { STARTS.get(&pid_tgid) }) else {
        return; // filtered out, or the call began before the probes were attached
    };
    let _ = STARTS.remove(&pid_tgid);
    let latency_ns = now.saturating_sub(start);
    let pid = (pid_tgid >> 32) as u32;
    increment(&CALLS, pid);
    if let Some(slot) = LATENCY_NS.get_ptr_mut(log2_slot(latency_ns)) {
        atomic_add(slot, 1);
    }
    // SAFETY: as above, a loader-patched global.
    if latency_ns < unsafe { core::ptr::read_volatile(&MIN_LATENCY_NS) } {
        return;
    }
    if let Some(mut entry) = EVENTS.reserve(0) {
        let event = entry.as_mut_ptr();
        // SAFETY: `event` points at ring buffer memory reserved for one SlowCall; every field is written.
        unsafe {
            (*event).pid = pid;
            (*event).tid = pid_tgid as u32;
            (*event).latency_ns = latency_ns;
            (*event).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        }
        entry.submit(0);
    } else {
        count_lost();
    }
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
