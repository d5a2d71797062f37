//! Flow dissector fixture: parses IPv4 TCP/UDP headers into the flow keys and counts its runs; hands anything
//! else back to the kernel's own dissector.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::bpf_ret_code::{BPF_DROP, BPF_FLOW_DISSECTOR_CONTINUE, BPF_OK},
    btf_maps::Array,
    macros::{btf_map, flow_dissector},
    programs::FlowDissectorContext,
};

/// 0: runs, 1: IPv4 packets dissected.
#[btf_map]
static FLOW_COUNTS: Array<u64, 2> = Array::new();

const ETH_P_IP: u16 = 0x0800;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

fn bump(index: u32) {
    if let Some(value) = FLOW_COUNTS.get_ptr_mut(index) {
        // SAFETY: `value` points at a live, 8-byte aligned u64 map value returned by the kernel.
        unsafe { core::arch::asm!("lock *(u64 *)({0} + 0) += {1}", in(reg) value, in(reg) 1u64) };
    }
}

/// A pointer to `len` bytes at `offset` of the packet, or `None` when the packet is shorter. Direct access, as
/// the kernel's test runs of flow dissectors have no socket buffer for `bpf_skb_load_bytes` to read.
#[inline(always)]
fn at(ctx: &FlowDissectorContext, offset: usize, len: usize) -> Option<*const u8> {
    let start = ctx.data();
    if start + offset + len > ctx.data_end() {
        return None;
    }
    Some((start + offset) as *const u8)
}

#[flow_dissector]
pub fn net_flow_dissect(mut ctx: FlowDissectorContext) -> u32 {
    bump(0);
    let keys = ctx.flow_keys();
    if u16::from_be(keys.n_proto) != ETH_P_IP {
        return BPF_FLOW_DISSECTOR_CONTINUE;
    }
    let nhoff = usize::from(keys.nhoff) & 0xFF;
    let Some(header) = at(&ctx, nhoff, 20) else {
        return BPF_DROP;
    };
    // SAFETY: `at` checked that the 20-byte IPv4 header lies inside the packet.
    let (version_ihl, protocol, source, destination) = unsafe {
        (
            *header,
            *header.add(9),
            core::ptr::read_unaligned(header.add(12) as *const u32),
            core::ptr::read_unaligned(header.add(16) as *const u32),
        )
    };
    let ihl = usize::from(version_ihl & 0x0F) * 4;
    if version_ihl >> 4 != 4 || ihl < 20 {
        return BPF_DROP;
    }
    let transport = nhoff + ihl;
    let has_ports = protocol == IPPROTO_TCP || protocol == IPPROTO_UDP;
    let mut ports = (0u16, 0u16);
    if has_ports {
        let Some(header) = at(&ctx, transport, 4) else {
            return BPF_DROP;
        };
        // SAFETY: `at` checked that the 4 port bytes lie inside the packet.
        ports = unsafe {
            (
                core::ptr::read_unaligned(header as *const u16),
                core::ptr::read_unaligned(header.add(2) as *const u16),
            )
        };
    }
    let keys = ctx.flow_keys();
    keys.addr_proto = ETH_P_IP;
    keys.ip_proto = protocol;
    keys.thoff = transport as u16;
    keys.__bindgen_anon_1.__bindgen_anon_1.ipv4_src = source;
    keys.__bindgen_anon_1.__bindgen_anon_1.ipv4_dst = destination;
    keys.sport = ports.0;
    keys.dport = ports.1;
    bump(1);
    BPF_OK
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
