//! tcx ordering fixtures: `net_tcx_a`, `net_tcx_b` and `net_tcx_c` each append their letter to `TCX_ORDER` when a
//! UDP datagram to the port in `TCX_PORT[0]` passes, so one datagram leaves the order the chain ran them in.
#![no_std]
#![no_main]

use aya_ebpf::{
    btf_maps::Array,
    macros::{btf_map, classifier},
    programs::TcContext,
};

/// Index 0: how many letters follow; 1..=3: the letters, in the order the programs ran.
#[btf_map]
static TCX_ORDER: Array<u32, 4> = Array::new();
/// Index 0: the UDP destination port (host order) whose datagrams are marked; 0 marks nothing.
#[btf_map]
static TCX_PORT: Array<u32, 1> = Array::new();

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const IPPROTO_UDP: u8 = 17;

fn watched(ctx: &TcContext) -> Option<()> {
    let wanted = *TCX_PORT.get(0)?;
    let ether_type = u16::from_be(ctx.load::<u16>(12).ok()?);
    let version_ihl = ctx.load::<u8>(ETH_HLEN).ok()?;
    let protocol = ctx.load::<u8>(ETH_HLEN + 9).ok()?;
    if wanted == 0 || ether_type != ETH_P_IP || version_ihl != 0x45 || protocol != IPPROTO_UDP {
        return None;
    }
    let port = u16::from_be(ctx.load::<u16>(ETH_HLEN + 20 + 2).ok()?);
    (u32::from(port) == wanted).then_some(())
}

/// `TC_ACT_UNSPEC` (tcx's `TCX_NEXT`): run the next program of the chain. `TC_ACT_OK` would end the chain here.
const TC_ACT_UNSPEC: i32 = -1;

/// The programs of one hook run one after another for a packet, so a plain read-modify-write is enough here.
fn mark(ctx: &TcContext, letter: u8) -> i32 {
    if watched(ctx).is_some() {
        if let Some(count) = TCX_ORDER.get_ptr_mut(0) {
            // SAFETY: `count` points at a live u32 map value returned by the kernel.
            let next = unsafe { *count } + 1;
            if next <= 3 {
                if let Some(slot) = TCX_ORDER.get_ptr_mut(next) {
                    // SAFETY: as above, for the slot `next`.
                    unsafe {
                        *slot = u32::from(letter);
                        *count = next;
                    }
                }
            }
        }
    }
    TC_ACT_UNSPEC
}

#[classifier]
pub fn net_tcx_a(ctx: TcContext) -> i32 {
    mark(&ctx, b'a')
}

#[classifier]
pub fn net_tcx_b(ctx: TcContext) -> i32 {
    mark(&ctx, b'b')
}

#[classifier]
pub fn net_tcx_c(ctx: TcContext) -> i32 {
    mark(&ctx, b'c')
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
