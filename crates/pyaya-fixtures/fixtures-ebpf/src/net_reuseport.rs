//! `net_reuseport_select` picks the socket of a `SO_REUSEPORT` group that gets each datagram: the one at index
//! `REUSEPORT_TARGET[0]` of `REUSEPORT_SOCKETS`. When that slot is empty the kernel's own choice stands.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::sk_action::SK_PASS,
    btf_maps::{Array, ReusePortSockArray},
    macros::{btf_map, sk_reuseport},
    programs::SkReuseportContext,
};

#[btf_map]
static REUSEPORT_SOCKETS: ReusePortSockArray<2> = ReusePortSockArray::new();
/// Index 0: which slot of `REUSEPORT_SOCKETS` receives every datagram.
#[btf_map]
static REUSEPORT_TARGET: Array<u32, 1> = Array::new();
/// 0: datagrams steered, 1: datagrams left to the kernel (empty slot).
#[btf_map]
static REUSEPORT_COUNTS: Array<u64, 2> = Array::new();

fn bump(index: u32) {
    if let Some(value) = REUSEPORT_COUNTS.get_ptr_mut(index) {
        // SAFETY: `value` points at a live, 8-byte aligned u64 map value returned by the kernel.
        unsafe { core::arch::asm!("lock *(u64 *)({0} + 0) += {1}", in(reg) value, in(reg) 1u64) };
    }
}

#[sk_reuseport]
pub fn net_reuseport_select(ctx: SkReuseportContext) -> u32 {
    let target = REUSEPORT_TARGET.get(0).copied().unwrap_or(0);
    match REUSEPORT_SOCKETS.select_reuseport(&ctx, target) {
        Ok(()) => bump(0),
        Err(_) => bump(1),
    }
    SK_PASS
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
