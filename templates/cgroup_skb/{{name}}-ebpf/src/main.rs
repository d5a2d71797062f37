//! Kernel side of {{name}}: a cgroup_skb program on the {{direction|text}} path of a cgroup that counts packets and
//! bytes per IP protocol and reports each new flow with the uid of its socket. It lets every packet through.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::{bpf_hdr_start_off::BPF_HDR_START_NET, BPF_NOEXIST},
    btf_maps,
    helpers::bpf_skb_load_bytes_relative,
    macros::{btf_map, cgroup_skb},
    programs::SkBuffContext,
};
use {{crate_name}}_common::{Flow, NewFlowEvent};

/// Packets per protocol: the IP protocol number (6 = TCP, 17 = UDP, ...).
#[btf_map]
static PACKETS: btf_maps::HashMap<u32, u64, 256> = btf_maps::HashMap::new();

/// Bytes per protocol, like `PACKETS`: whole IP packets, headers included.
#[btf_map]
static BYTES: btf_maps::HashMap<u32, u64, 256> = btf_maps::HashMap::new();

/// Packets per flow. LRU, so a busy cgroup evicts the flows idle longest instead of failing.
#[btf_map]
static FLOWS: btf_maps::LruHashMap<Flow, u64, 16384> = btf_maps::LruHashMap::new();

/// One record per new flow.
#[btf_map]
static NEW_FLOWS: btf_maps::RingBuf<NewFlowEvent, { 256 * 1024 }> = btf_maps::RingBuf::new();

/// Records `NEW_FLOWS` could not take (it was full), in entry 0 of each CPU: pyaya's lost-record convention
/// (`NAME_LOST`), so `pyaya run` reports them and `bpf.maps["NEW_FLOWS"].lost` is their sum.
#[btf_map]
static NEW_FLOWS_LOST: btf_maps::PerCpuArray<u64, 1> = btf_maps::PerCpuArray::new();

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_SCTP: u8 = 132;
/// What a cgroup_skb program returns to let the packet through (0 would drop it).
const ALLOW: i32 = 1;

#[cgroup_skb({{direction|rust_ident}})]
pub fn {{crate_name}}(ctx: SkBuffContext) -> i32 {
    if let Some(flow) = parse_flow(&ctx) {
        let length = ctx.len() as u64;
        add(&PACKETS, flow.protocol as u32, 1);
        add(&BYTES, flow.protocol as u32, length);
        track(&ctx, &flow, length);
    }
    ALLOW
}

/// The flow of an IPv4 or IPv6 packet; None for anything else. A cgroup_skb program sees packets from the network
/// header on, which `BPF_HDR_START_NET` makes explicit.
fn parse_flow(ctx: &SkBuffContext) -> Option<Flow> {
    let mut flow = Flow {
        source: [0; 16],
        destination: [0; 16],
        source_port: 0,
        destination_port: 0,
        protocol: 0,
        family: 0,
        padding: [0; 2],
    };
    let ports_at = match u16::from_be(ctx.skb.protocol() as u16) {
        ETH_P_IP => {
            let version_and_length: u8 = load_net(ctx, 0)?;
            flow.family = 4;
            flow.protocol = load_net(ctx, 9)?;
            let source: [u8; 4] = load_net(ctx, 12)?;
            let destination: [u8; 4] = load_net(ctx, 16)?;
            flow.source[..4].copy_from_slice(&source);
            flow.destination[..4].copy_from_slice(&destination);
            // Only the first fragment carries the ports.
            let fragment = u16::from_be(load_net::<u16>(ctx, 6)?) & 0x1fff;
            (fragment == 0).then_some((version_and_length & 0x0f) as u32 * 4)
        }
        ETH_P_IPV6 => {
            flow.family = 6;
            // The next header; extension headers are not followed (their flows have no ports).
            flow.protocol = load_net(ctx, 6)?;
            flow.source = load_net(ctx, 8)?;
            flow.destination = load_net(ctx, 24)?;
            Some(40)
        }
        _ => return None,
    };
    if let Some(offset) = ports_at {
        if matches!(flow.protocol, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP) {
            if let Some(ports) = load_net::<[u16; 2]>(ctx, offset) {
                flow.source_port = u16::from_be(ports[0]);
                flow.destination_port = u16::from_be(ports[1]);
            }
        }
    }
    Some(flow)
}

fn track(ctx: &SkBuffContext, flow: &Flow, length: u64) {
    if let Some(packets) = FLOWS.get_ptr_mut(flow) {
        atomic_add(packets, 1);
        return;
    }
    if FLOWS.insert(flow, &1, BPF_NOEXIST as u64).is_ok() {
        if let Some(mut entry) = NEW_FLOWS.reserve(0) {
            entry.write(NewFlowEvent { flow: *flow, length: length as u32, uid: ctx.get_socket_uid() });
            entry.submit(0);
        } else {
            count_lost();
        }
    } else if let Some(packets) = FLOWS.get_ptr_mut(flow) {
        // Another CPU created the entry meanwhile.
        atomic_add(packets, 1);
    }
}

/// Reads a `T` at `offset` bytes from the network header.
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

fn add<const ENTRIES: usize>(counters: &btf_maps::HashMap<u32, u64, ENTRIES>, key: u32, delta: u64) {
    match counters.get_ptr_mut(&key) {
        Some(count) => atomic_add(count, delta),
        None => {
            // Another CPU may have inserted the same key meanwhile: then BPF_NOEXIST fails and we add to its entry.
            if counters.insert(&key, &delta, BPF_NOEXIST as u64).is_err() {
                if let Some(count) = counters.get_ptr_mut(&key) {
                    atomic_add(count, delta);
                }
            }
        }
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
