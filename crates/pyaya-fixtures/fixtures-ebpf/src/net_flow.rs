//! Flow dissector fixture: parses IPv4 TCP/UDP headers into the flow keys and counts its runs; hands anything
//! else back to the kernel's own dissector.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::bpf_ret_code::{BPF_DROP, BPF_FLOW_DISSECTOR_CONTINUE, BPF_OK},
    helpers::bpf_skb_load_bytes,
    macros::{flow_dissector, map},
    maps::Array,
    programs::FlowDissectorContext,
    EbpfContext as _,
};

/// 0: runs, 1: IPv4 packets dissected.
#[map]
static FLOW_COUNTS: Array<u64> = Array::with_max_entries(2, 0);

const ETH_P_IP: u16 = 0x0800;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

fn bump(index: u32) {
    if let Some(value) = FLOW_COUNTS.get_ptr_mut(index) {
        // SAFETY: `value` points at a live, 8-byte aligned u64 map value returned by the kernel.
        unsafe { core::arch::asm!("lock *(u64 *)({0} + 0) += {1}", in(reg) value, in(reg) 1u64) };
    }
}

/// Copies packet bytes at `offset`. (`FlowDissectorContext::load_bytes` reads `skb->len`, which the verifier
/// refuses in flow dissectors, so the helper is called directly.)
fn load(ctx: &FlowDissectorContext, offset: usize, buffer: &mut [u8]) -> bool {
    // SAFETY: `buffer` is writable for its whole length; the helper checks the packet bounds.
    let result = unsafe {
        bpf_skb_load_bytes(ctx.as_ptr(), offset as u32, buffer.as_mut_ptr().cast(), buffer.len() as u32)
    };
    result == 0
}

#[flow_dissector]
pub fn net_flow_dissect(mut ctx: FlowDissectorContext) -> u32 {
    bump(0);
    let keys = ctx.flow_keys();
    if u16::from_be(keys.n_proto) != ETH_P_IP {
        return BPF_FLOW_DISSECTOR_CONTINUE;
    }
    let nhoff = usize::from(keys.nhoff);
    let mut header = [0u8; 20];
    if !load(&ctx, nhoff, &mut header) || header[0] >> 4 != 4 {
        return BPF_DROP;
    }
    let ihl = usize::from(header[0] & 0x0F) * 4;
    if ihl < 20 {
        return BPF_DROP;
    }
    let protocol = header[9];
    let mut ports = [0u8; 4];
    let transport = nhoff + ihl;
    let has_ports = protocol == IPPROTO_TCP || protocol == IPPROTO_UDP;
    if has_ports && !load(&ctx, transport, &mut ports) {
        return BPF_DROP;
    }
    let keys = ctx.flow_keys();
    keys.addr_proto = ETH_P_IP;
    keys.ip_proto = protocol;
    keys.thoff = transport as u16;
    keys.__bindgen_anon_1.__bindgen_anon_1.ipv4_src =
        u32::from_ne_bytes([header[12], header[13], header[14], header[15]]);
    keys.__bindgen_anon_1.__bindgen_anon_1.ipv4_dst =
        u32::from_ne_bytes([header[16], header[17], header[18], header[19]]);
    if has_ports {
        keys.sport = u16::from_ne_bytes([ports[0], ports[1]]);
        keys.dport = u16::from_ne_bytes([ports[2], ports[3]]);
    }
    bump(1);
    BPF_OK
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
