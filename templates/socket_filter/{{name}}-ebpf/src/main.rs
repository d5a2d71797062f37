//! Kernel side of {{name}}: a socket filter for a raw packet socket that sends one `PacketEvent` per packet through
//! a ring buffer, and counts packets per EtherType/IP protocol. It returns 0 ("keep no bytes"), so the socket's own
//! queue stays empty: user space reads the ring buffer, not the socket. No other socket is affected.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::{bpf_hdr_start_off::BPF_HDR_START_NET, BPF_NOEXIST},
    btf_maps,
    helpers::bpf_skb_load_bytes_relative,
    macros::{btf_map, socket_filter},
    programs::SkBuffContext,
};
use {{crate_name}}_common::PacketEvent;

/// One record per packet.
#[btf_map]
static PACKETS: btf_maps::RingBuf<PacketEvent, { 1024 * 1024 }> = btf_maps::RingBuf::new();

/// Records `PACKETS` could not take (it was full), in entry 0 of each CPU: pyaya's lost-record convention
/// (`NAME_LOST`), so `pyaya run` reports them and `bpf.maps["PACKETS"].lost` is their sum.
#[btf_map]
static PACKETS_LOST: btf_maps::PerCpuArray<u64, 1> = btf_maps::PerCpuArray::new();

/// Packets seen per protocol: the IP protocol number for IP packets, `0x10000 + EtherType` for anything else.
#[btf_map]
static PROTOCOL_COUNTS: btf_maps::HashMap<u32, u64, 1024> = btf_maps::HashMap::new();

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_SCTP: u8 = 132;
/// Added to an EtherType to key non-IP protocols in `PROTOCOL_COUNTS` apart from IP protocol numbers.
const NOT_IP: u32 = 0x10000;

#[socket_filter]
pub fn {{crate_name}}(ctx: SkBuffContext) -> i64 {
    if let Some(mut entry) = PACKETS.reserve(0) {
        let event = describe(&ctx);
        count(if event.family == 0 { NOT_IP + event.ethertype as u32 } else { event.protocol as u32 });
        entry.write(event);
        entry.submit(0);
    } else {
        count_lost();
    }
    // Keep nothing on the socket: the ring buffer carries the packets to user space.
    0
}

fn describe(ctx: &SkBuffContext) -> PacketEvent {
    // SAFETY: reading fields of the context the kernel handed us.
    let (protocol, ifindex, packet_type) = unsafe {
        let skb = ctx.skb.skb;
        ((*skb).protocol, (*skb).ifindex, (*skb).pkt_type)
    };
    let mut event = PacketEvent {
        source: [0; 16],
        destination: [0; 16],
        source_port: 0,
        destination_port: 0,
        ethertype: u16::from_be(protocol as u16),
        protocol: 0,
        family: 0,
        length: ctx.len(),
        ifindex,
        packet_type,
    };
    let ports_at = match event.ethertype {
        ETH_P_IP => {
            let Some(version_and_length) = load_net::<u8>(ctx, 0) else { return event };
            event.family = 4;
            event.protocol = load_net(ctx, 9).unwrap_or(0);
            let source: [u8; 4] = load_net(ctx, 12).unwrap_or([0; 4]);
            let destination: [u8; 4] = load_net(ctx, 16).unwrap_or([0; 4]);
            event.source[..4].copy_from_slice(&source);
            event.destination[..4].copy_from_slice(&destination);
            // Only the first fragment carries the ports.
            let fragment = u16::from_be(load_net::<u16>(ctx, 6).unwrap_or(0)) & 0x1fff;
            (fragment == 0).then_some((version_and_length & 0x0f) as u32 * 4)
        }
        ETH_P_IPV6 => {
            event.family = 6;
            event.protocol = load_net(ctx, 6).unwrap_or(0);
            event.source = load_net(ctx, 8).unwrap_or([0; 16]);
            event.destination = load_net(ctx, 24).unwrap_or([0; 16]);
            Some(40)
        }
        _ => None,
    };
    if let Some(offset) = ports_at {
        if matches!(event.protocol, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP) {
            if let Some(ports) = load_net::<[u16; 2]>(ctx, offset) {
                event.source_port = u16::from_be(ports[0]);
                event.destination_port = u16::from_be(ports[1]);
            }
        }
    }
    event
}

/// Reads a `T` at `offset` bytes from the network header. Relative to the network header, not to the packet's start:
/// a packet socket sees the link-layer header first, BPF_PROG_TEST_RUN does not, and this reads both the same way.
#[inline(always)]
fn load_net<T>(ctx: &SkBuffContext, offset: u32) -> Option<T> {
    let mut value = core::mem::MaybeUninit::<T>::uninit();
    // SAFETY: the helper writes at most size_of::<T>() bytes into `value`, and fails (non-zero) otherwise.
    let result = unsafe {
        bpf_skb_load_bytes_relative(
            ctx.skb.skb as *const _,
            offset,
            value.as_mut_ptr() as *mut _,
            core::mem::size_of::<T>() as u32,
            BPF_HDR_START_NET,
        )
    };
    // SAFETY: the helper succeeded, so every byte of `value` was written.
    (result == 0).then(|| unsafe { value.assume_init() })
}

fn count(key: u32) {
    match PROTOCOL_COUNTS.get_ptr_mut(&key) {
        Some(count) => atomic_add(count, 1),
        None => {
            // Another CPU may have inserted the same key meanwhile: then BPF_NOEXIST fails and we add to its entry.
            if PROTOCOL_COUNTS.insert(&key, &1, BPF_NOEXIST as u64).is_err() {
                if let Some(count) = PROTOCOL_COUNTS.get_ptr_mut(&key) {
                    atomic_add(count, 1);
                }
            }
        }
    }
}

/// Counts one record `PACKETS` could not take (see `PACKETS_LOST`).
fn count_lost() {
    if let Some(count) = PACKETS_LOST.get_ptr_mut(0) {
        atomic_add(count, 1);
    }
}

/// Adds to a map value with the BPF atomic add instruction, so packets on several CPUs at once are all counted.
/// (The BPF target has no compare-and-swap, so `core::sync::atomic` offers no `fetch_add` there.)
fn atomic_add(value: *mut u64, delta: u64) {
    // SAFETY: `value` points at a live, 8-byte aligned u64 map value returned by the kernel.
    unsafe { core::arch::asm!("lock *(u64 *)({0} + 0) += {1}", in(reg) value, in(reg) delta) };
}

/// The license the kernel reads before it lets the program call GPL-only helpers (`bpf_probe_read_*`,
/// `bpf_get_current_task`, ...). aya assumes GPL where an object has none; libbpf and cilium/ebpf do not.
#[no_mangle]
#[link_section = "license"]
pub static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
