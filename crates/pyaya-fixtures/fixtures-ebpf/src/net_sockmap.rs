//! Socket-map fixtures: `net_sk_msg` counts messages sent on sockets of `MSG_MAP` and refuses 13-byte ones;
//! `net_sk_skb` (stream verdict) counts data received on sockets of `SKB_MAP`; `net_sk_lookup` steers lookups
//! for the port in `STEER_PORT[0]` to the socket in `LOOKUP_MAP[0]`.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::sk_action::{SK_DROP, SK_PASS},
    btf_maps::{Array, SockMap},
    macros::{btf_map, sk_lookup, sk_msg, stream_verdict},
    programs::{SkBuffContext, SkLookupContext, SkMsgContext},
};

#[btf_map]
static MSG_MAP: SockMap<4> = SockMap::new();
#[btf_map]
static SKB_MAP: SockMap<4> = SockMap::new();
#[btf_map]
static LOOKUP_MAP: SockMap<1> = SockMap::new();
/// 0: messages, 1: message bytes, 2: messages refused, 3: stream verdicts, 4: lookups steered.
#[btf_map]
static SOCK_COUNTS: Array<u64, 5> = Array::new();
/// Index 0: the local port whose lookups are steered (host order); 0 steers nothing.
#[btf_map]
static STEER_PORT: Array<u32, 1> = Array::new();

fn add(index: u32, delta: u64) {
    if let Some(value) = SOCK_COUNTS.get_ptr_mut(index) {
        // SAFETY: `value` points at a live, 8-byte aligned u64 map value returned by the kernel.
        unsafe { core::arch::asm!("lock *(u64 *)({0} + 0) += {1}", in(reg) value, in(reg) delta) };
    }
}

#[sk_msg]
pub fn net_sk_msg(ctx: SkMsgContext) -> u32 {
    let size = ctx.size();
    add(0, 1);
    add(1, u64::from(size));
    if size == 13 {
        add(2, 1);
        return SK_DROP;
    }
    SK_PASS
}

#[stream_verdict]
pub fn net_sk_skb(_ctx: SkBuffContext) -> u32 {
    add(3, 1);
    SK_PASS
}

#[sk_lookup]
pub fn net_sk_lookup(ctx: SkLookupContext) -> u32 {
    let wanted = STEER_PORT.get(0).copied().unwrap_or(0);
    // SAFETY: the kernel hands a valid bpf_sk_lookup context to this program.
    let port = unsafe { (*ctx.lookup).local_port };
    if wanted != 0 && port == wanted && LOOKUP_MAP.redirect_sk_lookup(&ctx, 0, 0).is_ok() {
        add(4, 1);
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
