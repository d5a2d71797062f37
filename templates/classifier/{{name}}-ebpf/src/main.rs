//! Kernel side of {{name}}: a TC classifier that keeps packet and byte counts per flow (protocol, addresses, ports)
//! and reports each new flow. It never changes a packet's fate: it returns TC_ACT_PIPE, "carry on as before".
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::{BPF_NOEXIST, TC_ACT_PIPE},
    btf_maps,
    btf_maps::LruHashMap,
    macros::{btf_map, classifier},
    programs::TcContext,
};
use {{crate_name}}_common::{Flow, FlowStats, NewFlowEvent};

/// Packets and bytes per flow. LRU, so a busy interface evicts the flows idle longest instead of failing. A
/// `#[btf_map]`, so its key and value types are in the object's BTF: user space (and `--metrics`) decode them.
#[btf_map]
static FLOWS: LruHashMap<Flow, FlowStats, 16384> = LruHashMap::new();

/// One record per new flow.
#[btf_map]
static NEW_FLOWS: btf_maps::RingBuf<NewFlowEvent, { 256 * 1024 }> = btf_maps::RingBuf::new();

/// Records `NEW_FLOWS` could not take (it was full), in entry 0 of each CPU: pyaya's lost-record convention
/// (`NAME_LOST`), so `pyaya run` reports them and `bpf.maps["NEW_FLOWS"].lost` is their sum.
#[btf_map]
static NEW_FLOWS_LOST: btf_maps::PerCpuArray<u64, 1> = btf_maps::PerCpuArray::new();

const ETH_HEADER_LEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_SCTP: u8 = 132;

#[classifier]
pub fn {{crate_name}}(ctx: TcContext) -> i32 {
    if let Some(flow) = parse_flow(&ctx) {
        account(&ctx, &flow);
    }
    TC_ACT_PIPE as i32
}

/// The flow of an Ethernet frame carrying IPv4 or IPv6; None for anything else.
fn parse_flow(ctx: &TcContext) -> Option<Flow> {
    let mut flow = Flow {
        source: [0; 16],
        destination: [0; 16],
        source_port: 0,
        destination_port: 0,
        protocol: 0,
        family: 0,
        padding: [0; 2],
    };
    let ports_at = match u16::from_be(ctx.load::<u16>(12).ok()?) {
        ETH_P_IP => {
            let version_and_length: u8 = ctx.load(ETH_HEADER_LEN).ok()?;
            flow.family = 4;
            flow.protocol = ctx.load(ETH_HEADER_LEN + 9).ok()?;
            let source: [u8; 4] = ctx.load(ETH_HEADER_LEN + 12).ok()?;
            let destination: [u8; 4] = ctx.load(ETH_HEADER_LEN + 16).ok()?;
            flow.source[..4].copy_from_slice(&source);
            flow.destination[..4].copy_from_slice(&destination);
            // Only the first fragment carries the ports (fragment offset 0).
            let fragment = u16::from_be(ctx.load::<u16>(ETH_HEADER_LEN + 6).ok()?) & 0x1fff;
            (fragment == 0).then_some(ETH_HEADER_LEN + (version_and_length & 0x0f) as usize * 4)
        }
        ETH_P_IPV6 => {
            flow.family = 6;
            // The next header; extension headers are not followed (their flows have no ports).
            flow.protocol = ctx.load(ETH_HEADER_LEN + 6).ok()?;
            flow.source = ctx.load(ETH_HEADER_LEN + 8).ok()?;
            flow.destination = ctx.load(ETH_HEADER_LEN + 24).ok()?;
            Some(ETH_HEADER_LEN + 40)
        }
        _ => return None,
    };
    if let Some(offset) = ports_at {
        if matches!(flow.protocol, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP) {
            // All three start with the source and destination ports.
            if let Ok(ports) = ctx.load::<[u16; 2]>(offset) {
                flow.source_port = u16::from_be(ports[0]);
                flow.destination_port = u16::from_be(ports[1]);
            }
        }
    }
    Some(flow)
}

fn account(ctx: &TcContext, flow: &Flow) {
    let length = ctx.len() as u64;
    if let Some(stats) = FLOWS.get_ptr_mut(flow) {
        add_to(stats, length);
        return;
    }
    let first = FlowStats { packets: 1, bytes: length };
    if FLOWS.insert(flow, &first, BPF_NOEXIST as u64).is_ok() {
        if let Some(mut entry) = NEW_FLOWS.reserve(0) {
            // SAFETY: reading `ifindex` of the context the kernel handed us.
            let ifindex = unsafe { (*ctx.skb.skb).ifindex };
            entry.write(NewFlowEvent { flow: *flow, length: length as u32, ifindex });
            entry.submit(0);
        } else {
            count_lost();
        }
    } else if let Some(stats) = FLOWS.get_ptr_mut(flow) {
        // Another CPU created the entry meanwhile.
        add_to(stats, length);
    }
}

fn add_to(stats: *mut FlowStats, length: u64) {
    // SAFETY: `stats` points at a live FlowStats map value; its fields are 8-byte aligned u64s.
    unsafe {
        atomic_add(core::ptr::addr_of_mut!((*stats).packets), 1);
        atomic_add(core::ptr::addr_of_mut!((*stats).bytes), length);
    }
}

/// Counts one record `NEW_FLOWS` could not take (see `NEW_FLOWS_LOST`).
fn count_lost() {
    if let Some(count) = NEW_FLOWS_LOST.get_ptr_mut(0) {
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
