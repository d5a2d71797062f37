//! Socket filter fixture: counts every packet and drops those whose last byte is `!`. Looking at the last byte
//! works the same on a UDP socket (data from the UDP header) and in a test run (data from the IP header).
//! `net_socket_pick`, a reuseport selector, sends every packet to the socket of index `PICK[0]` of its group.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    btf_maps::Array,
    macros::{btf_map, socket_filter},
    programs::SkBuffContext,
};

/// 0: packets seen, 1: packets dropped.
#[btf_map]
static FILTER_COUNTS: Array<u64, 2> = Array::new();

fn bump(index: u32) {
    if let Some(value) = FILTER_COUNTS.get_ptr_mut(index) {
        // SAFETY: `value` points at a live, 8-byte aligned u64 map value returned by the kernel.
        unsafe { core::arch::asm!("lock *(u64 *)({0} + 0) += {1}", in(reg) value, in(reg) 1u64) };
    }
}

#[socket_filter]
pub fn net_socket_filter(ctx: SkBuffContext) -> i64 {
    bump(0);
    let len = ctx.len();
    if len == 0 {
        return 0;
    }
    match ctx.load::<u8>(len as usize - 1) {
        Ok(b'!') => {
            bump(1);
            0
        }
        _ => i64::from(len),
    }
}

/// Index 0: the index, in its reuseport group, of the socket `net_socket_pick` picks.
#[btf_map]
static PICK: Array<u32, 1> = Array::new();

#[socket_filter]
pub fn net_socket_pick(_ctx: SkBuffContext) -> i64 {
    i64::from(PICK.get(0).copied().unwrap_or(0))
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
