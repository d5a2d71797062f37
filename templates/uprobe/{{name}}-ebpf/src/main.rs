//! Kernel side of {{name}}: a uprobe and a uretprobe on `{{uprobe_function|text}}` in `{{uprobe_target|text}}` that time each
//! call, keep the first argument (a string for getaddrinfo: the host name), send one `CallEvent` per call through a
//! ring buffer, and count calls per process and latencies in a log2 histogram.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    btf_maps,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns,
        bpf_probe_read_user_str_bytes,
    },
    macros::{btf_map, uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use {{crate_name}}_common::{CallEvent, CallStart, ARG_LEN};

/// One event per finished call.
/// (A `#[btf_map]` ring buffer names its record type in the object's BTF: user space decodes `CallEvent`s without
/// declaring the struct again.)
#[btf_map]
static EVENTS: btf_maps::RingBuf<CallEvent, { 256 * 1024 }> = btf_maps::RingBuf::new();

/// Records `EVENTS` could not take (it was full), in entry 0 of each CPU: pyaya's lost-record convention
/// (`NAME_LOST`), so `pyaya run` reports them and `bpf.maps["EVENTS"].lost` is their sum.
#[btf_map]
static EVENTS_LOST: btf_maps::PerCpuArray<u64, 1> = btf_maps::PerCpuArray::new();

/// Calls in progress, by thread (`pid_tgid`): entry time and first argument.
#[btf_map]
static STARTS: btf_maps::HashMap<u64, CallStart, 10240> = btf_maps::HashMap::new();

/// Finished calls per process id.
#[btf_map]
static CALLS: btf_maps::HashMap<u32, u64, 10240> = btf_maps::HashMap::new();

/// Log2 histogram of latencies in nanoseconds: slot `n` counts latencies in `[2^(n-1), 2^n)` (slot 0: zero).
#[btf_map]
static LATENCY_NS: btf_maps::Array<u64, 64> = btf_maps::Array::new();

/// Set by user space before loading: calls faster than this are counted but not sent as events.
#[no_mangle]
static MIN_LATENCY_NS: u64 = 0;

#[uprobe]
pub fn {{crate_name}}_entry(ctx: ProbeContext) -> u32 {
    let mut start = CallStart {
        start_ns: 0,
        arg0: 0,
        arg: [0; ARG_LEN],
    };
    if let Some(arg) = ctx.arg::<*const u8>(0) {
        start.arg0 = arg as u64;
        if !arg.is_null() {
            // SAFETY: the helper checks the user address; an unreadable one leaves `arg` empty.
            let _ = unsafe { bpf_probe_read_user_str_bytes(arg, &mut start.arg) };
        }
    }
    // Taken last, so the time spent above is not counted as the function's.
    start.start_ns = unsafe { bpf_ktime_get_ns() };
    let _ = STARTS.insert(&bpf_get_current_pid_tgid(), &start, 0);
    0
}

#[uretprobe]
pub fn {{crate_name}}_return(ctx: RetProbeContext) -> u32 {
    let now = unsafe { bpf_ktime_get_ns() };
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: the entry is only read here, by the thread that wrote it, before it is removed below.
    let Some(start) = (unsafe { STARTS.get(&pid_tgid) }) else {
        return 0; // the call began before the probes were attached
    };
    let latency_ns = now.saturating_sub(start.start_ns);
    let pid = (pid_tgid >> 32) as u32;
    increment(&CALLS, pid);
    if let Some(slot) = LATENCY_NS.get_ptr_mut(log2_slot(latency_ns)) {
        atomic_add(slot, 1);
    }
    // SAFETY: a volatile read keeps the compiler from folding the loader-patched global to its initial zero.
    if latency_ns >= unsafe { core::ptr::read_volatile(&MIN_LATENCY_NS) } {
        if let Some(mut entry) = EVENTS.reserve(0) {
            let event = entry.as_mut_ptr();
            // SAFETY: `event` points at ring buffer memory reserved for one CallEvent; every field is written.
            unsafe {
                (*event).pid = pid;
                (*event).tid = pid_tgid as u32;
                (*event).latency_ns = latency_ns;
                (*event).ret = ctx.ret::<u64>();
                (*event).arg0 = start.arg0;
                (*event).comm = bpf_get_current_comm().unwrap_or([0; 16]);
                (*event).arg = start.arg;
            }
            entry.submit(0);
        } else {
            count_lost();
        }
    }
    let _ = STARTS.remove(&pid_tgid);
    0
}

/// The histogram slot of `value`: its bit length (0 for 0), so slot `n` holds `[2^(n-1), 2^n)`.
fn log2_slot(value: u64) -> u32 {
    (64 - value.leading_zeros()).min(63)
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
