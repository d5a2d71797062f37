//! TC fixtures: `net_tc_rewrite` overwrites the first 4 payload bytes of UDP datagrams to the port in
//! `REWRITE_PORT[0]` with "TCOK" (fixing the UDP checksum); `net_tc_drop_icmp` drops ICMP.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::{BPF_F_MARK_MANGLED_0, TC_ACT_OK, TC_ACT_SHOT},
    btf_maps::Array,
    macros::{btf_map, classifier},
    programs::TcContext,
};

/// 0: datagrams rewritten, 1: ICMP packets dropped.
#[btf_map]
static TC_COUNTS: Array<u64, 2> = Array::new();
/// Index 0: the UDP destination port whose datagrams are rewritten (host order); 0 rewrites nothing.
#[btf_map]
static REWRITE_PORT: Array<u32, 1> = Array::new();

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_UDP: u8 = 17;
const UDP: usize = ETH_HLEN + 20;
const UDP_CHECKSUM: usize = UDP + 6;
const PAYLOAD: usize = UDP + 8;

fn bump(index: u32) {
    if let Some(value) = TC_COUNTS.get_ptr_mut(index) {
        // SAFETY: `value` points at a live, 8-byte aligned u64 map value returned by the kernel.
        unsafe { core::arch::asm!("lock *(u64 *)({0} + 0) += {1}", in(reg) value, in(reg) 1u64) };
    }
}

/// The IPv4 protocol of a packet without IP options.
fn ipv4_protocol(ctx: &TcContext) -> Option<u8> {
    let ether_type = u16::from_be(ctx.load::<u16>(12).ok()?);
    let version_ihl = ctx.load::<u8>(ETH_HLEN).ok()?;
    if ether_type != ETH_P_IP || version_ihl != 0x45 {
        return None;
    }
    ctx.load::<u8>(ETH_HLEN + 9).ok()
}

#[classifier]
pub fn net_tc_rewrite(ctx: TcContext) -> i32 {
    let wanted = REWRITE_PORT.get(0).copied().unwrap_or(0);
    if wanted == 0 || ipv4_protocol(&ctx) != Some(IPPROTO_UDP) {
        return TC_ACT_OK as i32;
    }
    let Ok(port) = ctx.load::<u16>(UDP + 2) else {
        return TC_ACT_OK as i32;
    };
    if u32::from(u16::from_be(port)) != wanted || (ctx.len() as usize) < PAYLOAD + 4 {
        return TC_ACT_OK as i32;
    }
    let Ok(old) = ctx.load::<u32>(PAYLOAD) else {
        return TC_ACT_OK as i32;
    };
    let new = u32::from_ne_bytes(*b"TCOK");
    // Size 4 in the low bits; a zero (absent) UDP checksum stays zero.
    let flags = 4 | u64::from(BPF_F_MARK_MANGLED_0);
    if ctx
        .l4_csum_replace(UDP_CHECKSUM, u64::from(old), u64::from(new), flags)
        .is_err()
        || ctx.store(PAYLOAD, &new, 0).is_err()
    {
        return TC_ACT_SHOT as i32;
    }
    bump(0);
    TC_ACT_OK as i32
}

#[classifier]
pub fn net_tc_drop_icmp(ctx: TcContext) -> i32 {
    if ipv4_protocol(&ctx) == Some(IPPROTO_ICMP) {
        bump(1);
        return TC_ACT_SHOT as i32;
    }
    TC_ACT_OK as i32
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
