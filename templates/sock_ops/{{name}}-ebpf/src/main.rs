//! Kernel side of {{name}}: a sock_ops program on a cgroup that reports TCP connections as they are established and
//! closed (addresses, ports, smoothed RTT, bytes, retransmissions), and keeps a log2 histogram of RTT samples.
//! It only asks the kernel for more callbacks (RTT and state changes); connections are not changed.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::{
        BPF_NOEXIST, BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB, BPF_SOCK_OPS_RTT_CB,
        BPF_SOCK_OPS_RTT_CB_FLAG, BPF_SOCK_OPS_STATE_CB, BPF_SOCK_OPS_STATE_CB_FLAG, BPF_TCP_CLOSE,
    },
    btf_maps,
    macros::{btf_map, sock_ops},
    programs::SockOpsContext,
};
use {{crate_name}}_common::{TcpEvent, ACTIVE_ESTABLISHED, CLOSED, PASSIVE_ESTABLISHED};

/// One record per established or closed connection.
#[btf_map]
static EVENTS: btf_maps::RingBuf<TcpEvent, { 256 * 1024 }> = btf_maps::RingBuf::new();

/// Records `EVENTS` could not take (it was full), in entry 0 of each CPU: pyaya's lost-record convention
/// (`NAME_LOST`), so `pyaya run` reports them and `bpf.maps["EVENTS"].lost` is their sum.
#[btf_map]
static EVENTS_LOST: btf_maps::PerCpuArray<u64, 1> = btf_maps::PerCpuArray::new();

/// RTT samples per log2 slot of the smoothed RTT in microseconds, as BCC counts them: slot n holds RTTs from 2^(n-1)
/// to 2^n - 1 (slot 0: zero).
#[btf_map]
static RTT_HISTOGRAM: btf_maps::HashMap<u32, u64, 64> = btf_maps::HashMap::new();

const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;
/// sock_ops programs return 1 (the value is only used by a few operations, none handled here).
const DONE: u32 = 1;

#[sock_ops]
pub fn {{crate_name}}(ctx: SockOpsContext) -> u32 {
    let family = ctx.family();
    if family != AF_INET && family != AF_INET6 {
        return DONE;
    }
    match ctx.op() {
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB => established(&ctx, ACTIVE_ESTABLISHED),
        BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB => established(&ctx, PASSIVE_ESTABLISHED),
        BPF_SOCK_OPS_RTT_CB => count_rtt(&ctx),
        // args[0] is the old state, args[1] the new one.
        BPF_SOCK_OPS_STATE_CB if ctx.arg(1) == BPF_TCP_CLOSE => report(&ctx, CLOSED),
        _ => {}
    }
    DONE
}

fn established(ctx: &SockOpsContext, kind: u32) {
    // Ask for a callback per RTT sample and per state change of this connection (for RTT_HISTOGRAM and CLOSED).
    let _ = ctx.set_cb_flags((ctx.cb_flags() | BPF_SOCK_OPS_RTT_CB_FLAG | BPF_SOCK_OPS_STATE_CB_FLAG) as i32);
    report(ctx, kind);
}

/// The kernel keeps the smoothed RTT shifted left by 3 (in eighths of a microsecond).
fn srtt_us(ctx: &SockOpsContext) -> u32 {
    // SAFETY: reading a field of the context the kernel handed us.
    unsafe { (*ctx.ops).srtt_us >> 3 }
}

fn report(ctx: &SockOpsContext, kind: u32) {
    let Some(mut entry) = EVENTS.reserve(0) else {
        count_lost();
        return;
    };
    let family = ctx.family();
    // SAFETY: reading fields of the context the kernel handed us.
    let (local, remote) = unsafe {
        let ops = ctx.ops;
        if family == AF_INET {
            (address4((*ops).local_ip4), address4((*ops).remote_ip4))
        } else {
            (
                address6(core::ptr::addr_of!((*ops).local_ip6) as *const u32),
                address6(core::ptr::addr_of!((*ops).remote_ip6) as *const u32),
            )
        }
    };
    // SAFETY: reading fields of the context the kernel handed us (zero when the socket is not a full socket).
    let (bytes_acked, bytes_received, total_retrans) =
        unsafe { ((*ctx.ops).bytes_acked, (*ctx.ops).bytes_received, (*ctx.ops).total_retrans) };
    entry.write(TcpEvent {
        kind,
        family,
        local,
        remote,
        local_port: ctx.local_port() as u16,
        // The kernel hands the remote port in network byte order, in the upper half on little-endian machines.
        remote_port: u32::from_be(ctx.remote_port()) as u16,
        srtt_us: srtt_us(ctx),
        bytes_acked,
        bytes_received,
        total_retrans,
        padding: 0,
    });
    entry.submit(0);
}

fn address4(address: u32) -> [u8; 16] {
    let mut bytes = [0; 16];
    // The u32 holds the address's bytes in network order, as they are in memory.
    bytes[..4].copy_from_slice(&address.to_ne_bytes());
    bytes
}

/// Reads an IPv6 address from the context word by word: the verifier allows only loads at a constant offset from the
/// context pointer itself, so the array must not be copied as a whole (that would load through a moved pointer).
///
/// # Safety
/// `words` must point at a `[u32; 4]` field of the sock_ops context.
#[inline(always)]
unsafe fn address6(words: *const u32) -> [u8; 16] {
    let mut bytes = [0; 16];
    for index in 0..4 {
        // SAFETY: per the function's contract; volatile, so each word is its own load at its own offset.
        let word = unsafe { core::ptr::read_volatile(words.add(index)) };
        bytes[index * 4..index * 4 + 4].copy_from_slice(&word.to_ne_bytes());
    }
    bytes
}

fn count_rtt(ctx: &SockOpsContext) {
    let rtt = srtt_us(ctx);
    let bucket = u32::BITS - rtt.leading_zeros();
    match RTT_HISTOGRAM.get_ptr_mut(&bucket) {
        Some(count) => atomic_add(count, 1),
        None => {
            // Another CPU may have inserted the same bucket meanwhile: then BPF_NOEXIST fails and we add to it.
            if RTT_HISTOGRAM.insert(&bucket, &1, BPF_NOEXIST as u64).is_err() {
                if let Some(count) = RTT_HISTOGRAM.get_ptr_mut(&bucket) {
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

/// Adds to a map value with the BPF atomic add instruction, so samples on several CPUs at once are all counted.
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
