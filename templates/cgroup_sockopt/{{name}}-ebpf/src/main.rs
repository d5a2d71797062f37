//! Kernel side of {{name}}: a cgroup `{{sockopt_target|text}}` program that reports each call (who, which option, how
//! long a buffer) through a ring buffer and counts calls per option. It changes nothing: the kernel's own handler
//! runs as if the program were not there.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    btf_maps,
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid},
    macros::{btf_map, cgroup_sockopt},
    programs::SockoptContext,
};
use {{crate_name}}_common::SockoptEvent;

/// One record per call.
#[btf_map]
static EVENTS: btf_maps::RingBuf<SockoptEvent, { 256 * 1024 }> = btf_maps::RingBuf::new();

/// Records `EVENTS` could not take (it was full), in entry 0 of each CPU: pyaya's lost-record convention
/// (`NAME_LOST`), so `pyaya run` reports them and `bpf.maps["EVENTS"].lost` is their sum.
#[btf_map]
static EVENTS_LOST: btf_maps::PerCpuArray<u64, 1> = btf_maps::PerCpuArray::new();

/// Calls per option; key: `level << 32 | optname`.
#[btf_map]
static CALLS: btf_maps::HashMap<u64, u64, 1024> = btf_maps::HashMap::new();

/// Only getsockopt programs may read `retval` (the verifier rejects it in setsockopt ones).
const IS_GETSOCKOPT: bool = matches!("{{sockopt_target|rust_str}}".as_bytes(), b"getsockopt");
/// Buffers longer than a page are not copied for the program; see `pass_through`.
const PAGE_SIZE: i32 = 4096;
/// What the program returns to let the call go on (0 would fail it with EPERM).
const PROCEED: i32 = 1;

#[cgroup_sockopt({{sockopt_target|rust_ident}})]
pub fn {{crate_name}}(ctx: SockoptContext) -> i32 {
    let sockopt = ctx.sockopt;
    // SAFETY: reading fields of the context the kernel handed us; `sk` is never null for sockopt programs.
    let (level, optname, optlen, retval, family, socket_type, protocol) = unsafe {
        let sk = (*sockopt).__bindgen_anon_1.sk;
        let retval = if IS_GETSOCKOPT { (*sockopt).retval } else { 0 };
        ((*sockopt).level, (*sockopt).optname, (*sockopt).optlen, retval, (*sk).family, (*sk).type_, (*sk).protocol)
    };
    count(((level as u32 as u64) << 32) | optname as u32 as u64);
    if let Some(mut entry) = EVENTS.reserve(0) {
        entry.write(SockoptEvent {
            pid: (bpf_get_current_pid_tgid() >> 32) as u32,
            level,
            optname,
            optlen,
            retval,
            family,
            socket_type,
            protocol,
            comm: bpf_get_current_comm().unwrap_or([0; 16]),
        });
        entry.submit(0);
    } else {
        count_lost();
    }
    pass_through(&ctx, optlen);
    PROCEED
}

/// The kernel copies at most a page of the option for the program. For a longer buffer, optlen 0 tells it to use the
/// caller's own buffer unchanged; left as it is, kernels before 6.5 would fail such a call with EFAULT.
fn pass_through(ctx: &SockoptContext, optlen: i32) {
    if optlen > PAGE_SIZE {
        // SAFETY: writing `optlen`, which sockopt programs may set.
        unsafe { (*ctx.sockopt).optlen = 0 };
    }
}

fn count(key: u64) {
    match CALLS.get_ptr_mut(&key) {
        Some(count) => atomic_add(count, 1),
        None => {
            // Another CPU may have inserted the same key meanwhile: then BPF_NOEXIST fails and we add to its entry.
            if CALLS.insert(&key, &1, BPF_NOEXIST as u64).is_err() {
                if let Some(count) = CALLS.get_ptr_mut(&key) {
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
