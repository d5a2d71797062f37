//! Kernel side of {{name}}: an XDP program that counts packets and bytes per IP protocol and drops IPv4 packets
//! whose source address user space put in `DROP_LIST`. Everything else passes untouched.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::xdp_action,
    btf_maps,
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use {{crate_name}}_common::{DropEvent, NOT_IP, PROTOCOL_SLOTS};

/// Packets seen, per IP protocol number (slot `NOT_IP` for non-IP frames). Per CPU: no contention, no atomics.
#[btf_map]
static PACKETS: btf_maps::PerCpuArray<u64, { PROTOCOL_SLOTS as usize }> = btf_maps::PerCpuArray::new();

/// Bytes seen (whole frames), per IP protocol number, like `PACKETS`.
#[btf_map]
static BYTES: btf_maps::PerCpuArray<u64, { PROTOCOL_SLOTS as usize }> = btf_maps::PerCpuArray::new();

/// IPv4 source addresses to drop (key: the address in network byte order) and how many packets were dropped.
/// User space fills it; empty by default, so nothing is dropped.
#[btf_map]
static DROP_LIST: btf_maps::HashMap<[u8; 4], u64, 1024> = btf_maps::HashMap::new();

/// One record per dropped packet.
#[btf_map]
static DROPPED: btf_maps::RingBuf<DropEvent, { 64 * 1024 }> = btf_maps::RingBuf::new();

/// Records `DROPPED` could not take (it was full), in entry 0 of each CPU: pyaya's lost-record convention
/// (`NAME_LOST`), so `pyaya run` reports them and `bpf.maps["DROPPED"].lost` is their sum.
#[btf_map]
static DROPPED_LOST: btf_maps::PerCpuArray<u64, 1> = btf_maps::PerCpuArray::new();

const ETH_HEADER_LEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;

#[xdp]
pub fn {{crate_name}}(ctx: XdpContext) -> u32 {
    // A frame too short to parse is counted as non-IP and passed: this program never drops what it cannot read.
    try_count(&ctx).unwrap_or(xdp_action::XDP_PASS)
}

fn try_count(ctx: &XdpContext) -> Option<u32> {
    let length = (ctx.data_end() - ctx.data()) as u64;
    let ethertype = u16::from_be(read::<u16>(ctx, 12)?);
    let protocol = match ethertype {
        ETH_P_IP => read::<u8>(ctx, ETH_HEADER_LEN + 9)? as u32,
        // The IPv6 next header; extension headers are not followed, so they are counted under their own number.
        ETH_P_IPV6 => read::<u8>(ctx, ETH_HEADER_LEN + 6)? as u32,
        _ => NOT_IP,
    };
    add(&PACKETS, protocol, 1);
    add(&BYTES, protocol, length);

    if ethertype != ETH_P_IP {
        return Some(xdp_action::XDP_PASS);
    }
    let source = read::<[u8; 4]>(ctx, ETH_HEADER_LEN + 12)?;
    let Some(dropped) = DROP_LIST.get_ptr_mut(&source) else {
        return Some(xdp_action::XDP_PASS);
    };
    atomic_add(dropped, 1);
    if let Some(mut entry) = DROPPED.reserve(0) {
        entry.write(DropEvent {
            source,
            destination: read::<[u8; 4]>(ctx, ETH_HEADER_LEN + 16).unwrap_or([0; 4]),
            length: length as u32,
            ifindex: ctx.ingress_ifindex() as u32,
            protocol: protocol as u8,
            padding: [0; 3],
        });
        entry.submit(0);
    } else {
        count_lost();
    }
    Some(xdp_action::XDP_DROP)
}

/// Reads a `T` at `offset` bytes into the frame, after the bounds check the verifier insists on.
#[inline(always)]
fn read<T: Copy>(ctx: &XdpContext, offset: usize) -> Option<T> {
    let start = ctx.data();
    if start + offset + core::mem::size_of::<T>() > ctx.data_end() {
        return None;
    }
    // SAFETY: the range was just checked to lie inside the frame; packets have no alignment guarantee.
    Some(unsafe { core::ptr::read_unaligned((start + offset) as *const T) })
}

#[inline(always)]
fn add<const ENTRIES: usize>(counters: &btf_maps::PerCpuArray<u64, ENTRIES>, slot: u32, delta: u64) {
    if let Some(value) = counters.get_ptr_mut(slot) {
        // SAFETY: a per-CPU slot is only touched by this CPU, and XDP programs do not preempt each other on one CPU.
        unsafe { *value += delta };
    }
}

/// Counts one record `DROPPED` could not take (see `DROPPED_LOST`).
fn count_lost() {
    if let Some(count) = DROPPED_LOST.get_ptr_mut(0) {
        atomic_add(count, 1);
    }
}

/// Adds to a shared map value with the BPF atomic add instruction: several CPUs may drop from one address at once.
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
