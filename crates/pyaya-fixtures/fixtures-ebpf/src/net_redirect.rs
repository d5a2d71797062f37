//! XDP redirect fixtures, for frames of the EtherType 0x88B5 (IEEE 802 local experimental) that the tests send:
//! `net_redirect_dev` sends them out of the interface in `REDIRECT_DEVICES[0]`, `net_redirect_cpu` hands them to
//! the CPU in `REDIRECT_CPUS[0]`, and `net_redirect_xsk` to the AF_XDP socket in `REDIRECT_SOCKETS[0]` (queue 0).
//! Without an entry they pass; every other frame (IPv6 neighbour discovery on the
//! new links, ...) passes uncounted.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::xdp_action::XDP_PASS,
    btf_maps::{Array, CpuMap, DevMap, XskMap},
    macros::{btf_map, xdp},
    programs::XdpContext,
};

#[btf_map]
static REDIRECT_DEVICES: DevMap<4> = DevMap::new();
#[btf_map]
static REDIRECT_CPUS: CpuMap<2> = CpuMap::new();
#[btf_map]
static REDIRECT_SOCKETS: XskMap<1> = XskMap::new();
/// 0: frames redirected, 1: frames passed because the map had no entry.
#[btf_map]
static REDIRECT_COUNTS: Array<u64, 2> = Array::new();

fn bump(index: u32) {
    if let Some(value) = REDIRECT_COUNTS.get_ptr_mut(index) {
        // SAFETY: `value` points at a live, 8-byte aligned u64 map value returned by the kernel.
        unsafe { core::arch::asm!("lock *(u64 *)({0} + 0) += {1}", in(reg) value, in(reg) 1u64) };
    }
}

const ETH_P_LOCAL_EXPERIMENTAL: u16 = 0x88B5;

fn is_test_frame(ctx: &XdpContext) -> bool {
    let start = ctx.data();
    if start + 14 > ctx.data_end() {
        return false;
    }
    // SAFETY: the check above keeps the 14-byte Ethernet header inside the packet.
    let ether_type = unsafe { u16::from_be_bytes([*((start + 12) as *const u8), *((start + 13) as *const u8)]) };
    ether_type == ETH_P_LOCAL_EXPERIMENTAL
}

fn counted(result: Result<u32, u32>) -> u32 {
    match result {
        Ok(action) => {
            bump(0);
            action
        }
        Err(action) => {
            bump(1);
            action
        }
    }
}

#[xdp]
pub fn net_redirect_dev(ctx: XdpContext) -> u32 {
    if !is_test_frame(&ctx) {
        return XDP_PASS;
    }
    counted(REDIRECT_DEVICES.redirect(0, u64::from(XDP_PASS)))
}

#[xdp]
pub fn net_redirect_cpu(ctx: XdpContext) -> u32 {
    if !is_test_frame(&ctx) {
        return XDP_PASS;
    }
    counted(REDIRECT_CPUS.redirect(0, u64::from(XDP_PASS)))
}

#[xdp]
pub fn net_redirect_xsk(ctx: XdpContext) -> u32 {
    if !is_test_frame(&ctx) {
        return XDP_PASS;
    }
    counted(REDIRECT_SOCKETS.redirect(0, u64::from(XDP_PASS)))
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
