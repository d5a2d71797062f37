//! XDP fixtures: `net_xdp_filter` counts every packet and drops UDP datagrams to the port user space writes in
//! `DROP_PORT[0]`; `net_xdp_swap` swaps the Ethernet addresses and bounces the frame (XDP_TX), for test runs.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS, XDP_TX},
    btf_maps::Array,
    macros::{btf_map, xdp},
    programs::XdpContext,
};

/// 0: packets seen, 1: packets dropped.
#[btf_map]
static XDP_COUNTS: Array<u64, 2> = Array::new();
/// Index 0: the UDP destination port to drop (host order); 0 drops nothing.
#[btf_map]
static DROP_PORT: Array<u32, 1> = Array::new();

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const IPPROTO_UDP: u8 = 17;

fn bump(index: u32) {
    if let Some(value) = XDP_COUNTS.get_ptr_mut(index) {
        // SAFETY: `value` points at a live, 8-byte aligned u64 map value returned by the kernel.
        unsafe { core::arch::asm!("lock *(u64 *)({0} + 0) += {1}", in(reg) value, in(reg) 1u64) };
    }
}

/// A pointer to `len` bytes at `offset` of the packet, or `None` when the packet is shorter.
#[inline(always)]
fn at(ctx: &XdpContext, offset: usize, len: usize) -> Option<*mut u8> {
    let start = ctx.data();
    if start + offset + len > ctx.data_end() {
        return None;
    }
    Some((start + offset) as *mut u8)
}

/// The UDP destination port of an IPv4 packet without options, in host order.
fn udp_destination(ctx: &XdpContext) -> Option<u16> {
    let header = at(ctx, 0, ETH_HLEN + 20 + 8)?;
    // SAFETY: `at` checked that the Ethernet, IPv4 and UDP headers lie inside the packet.
    unsafe {
        let ether_type = u16::from_be_bytes([*header.add(12), *header.add(13)]);
        let version_ihl = *header.add(ETH_HLEN);
        let protocol = *header.add(ETH_HLEN + 9);
        if ether_type != ETH_P_IP || version_ihl != 0x45 || protocol != IPPROTO_UDP {
            return None;
        }
        let udp = ETH_HLEN + 20;
        Some(u16::from_be_bytes([*header.add(udp + 2), *header.add(udp + 3)]))
    }
}

#[xdp]
pub fn net_xdp_filter(ctx: XdpContext) -> u32 {
    bump(0);
    let drop_port = DROP_PORT.get(0).copied().unwrap_or(0);
    match udp_destination(&ctx) {
        Some(port) if drop_port != 0 && u32::from(port) == drop_port => {
            bump(1);
            XDP_DROP
        }
        _ => XDP_PASS,
    }
}

#[xdp]
pub fn net_xdp_swap(ctx: XdpContext) -> u32 {
    let Some(header) = at(&ctx, 0, ETH_HLEN) else {
        return XDP_PASS;
    };
    // SAFETY: `at` checked that the 14-byte Ethernet header lies inside the packet.
    unsafe {
        for i in 0..6 {
            let destination = *header.add(i);
            *header.add(i) = *header.add(6 + i);
            *header.add(6 + i) = destination;
        }
    }
    XDP_TX
}

/// The license the kernel reads before it lets a program call GPL-only helpers (`bpf_probe_read_*`,
/// `bpf_get_stackid`, ...). aya assumes GPL where an object has none; libbpf and cilium/ebpf do not.
#[no_mangle]
#[link_section = "license"]
pub static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
