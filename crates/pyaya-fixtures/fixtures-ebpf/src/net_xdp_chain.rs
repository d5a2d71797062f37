//! XDP programs run by map entries, for frames of the EtherType 0x88B5 (IEEE 802 local experimental) that the
//! tests send: `net_chain_to_cpu` hands them to the CPU in `CHAIN_CPUS[0]`, whose entry runs `net_chain_on_cpu`
//! there (`#[xdp(map = "cpumap")]`); `net_chain_to_dev` sends them out of the interface in `CHAIN_DEVICES[0]`,
//! whose entry runs `net_chain_on_dev` before they leave (`#[xdp(map = "devmap")]`). Other frames pass uncounted.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::xdp_action::XDP_PASS,
    btf_maps::{Array, CpuMap, DevMap},
    macros::{btf_map, xdp},
    programs::XdpContext,
};

#[btf_map]
static CHAIN_CPUS: CpuMap<2> = CpuMap::new();
#[btf_map]
static CHAIN_DEVICES: DevMap<2> = DevMap::new();
/// 0: frames handed to a CPU, 1: frames the CPU's program saw, 2: frames sent to a device, 3: frames the
/// device's program saw.
#[btf_map]
static CHAIN_COUNTS: Array<u64, 4> = Array::new();

fn bump(index: u32) {
    if let Some(value) = CHAIN_COUNTS.get_ptr_mut(index) {
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

#[xdp]
pub fn net_chain_to_cpu(ctx: XdpContext) -> u32 {
    if !is_test_frame(&ctx) {
        return XDP_PASS;
    }
    bump(0);
    CHAIN_CPUS.redirect(0, u64::from(XDP_PASS)).unwrap_or_else(|action| action)
}

#[xdp(map = "cpumap")]
pub fn net_chain_on_cpu(ctx: XdpContext) -> u32 {
    if is_test_frame(&ctx) {
        bump(1);
    }
    XDP_PASS
}

#[xdp]
pub fn net_chain_to_dev(ctx: XdpContext) -> u32 {
    if !is_test_frame(&ctx) {
        return XDP_PASS;
    }
    bump(2);
    CHAIN_DEVICES.redirect(0, u64::from(XDP_PASS)).unwrap_or_else(|action| action)
}

#[xdp(map = "devmap")]
pub fn net_chain_on_dev(ctx: XdpContext) -> u32 {
    if is_test_frame(&ctx) {
        bump(3);
    }
    XDP_PASS
}

#[no_mangle]
#[link_section = "license"]
pub static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
