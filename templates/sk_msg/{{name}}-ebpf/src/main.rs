//! Kernel side of {{name}}: an sk_msg program on the `SOCKETS` sockmap. Every message sent on a socket of the map is
//! counted per route (local port to remote port) and reported; when the receiving end is also in the map (user space
//! says which slot in `PEERS`), the message is redirected straight into that socket's receive queue, skipping the
//! TCP/IP stack. Messages to sockets outside the map go the usual way.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::{sk_action::SK_PASS, BPF_F_INGRESS, BPF_NOEXIST},
    btf_maps,
    macros::{btf_map, sk_msg},
    programs::SkMsgContext,
};
use {{crate_name}}_common::{MessageEvent, RouteStats, HEAD_LEN};

/// The sockets whose messages the program sees; user space puts them in (the program attaches to this map).
#[btf_map]
static SOCKETS: btf_maps::SockMap<64> = btf_maps::SockMap::new();

/// Local port of a socket in `SOCKETS` -> its slot there. A message whose remote port is listed goes to that slot.
#[btf_map]
static PEERS: btf_maps::HashMap<u32, u32, 64> = btf_maps::HashMap::new();

/// Traffic per route; key `local_port << 16 | remote_port`.
#[btf_map]
static ROUTES: btf_maps::HashMap<u32, RouteStats, 1024> = btf_maps::HashMap::new();

/// One record per message.
#[btf_map]
static MESSAGES: btf_maps::RingBuf<MessageEvent, { 256 * 1024 }> = btf_maps::RingBuf::new();

/// Records `MESSAGES` could not take (it was full), in entry 0 of each CPU: pyaya's lost-record convention
/// (`NAME_LOST`), so `pyaya run` reports them and `bpf.maps["MESSAGES"].lost` is their sum.
#[btf_map]
static MESSAGES_LOST: btf_maps::PerCpuArray<u64, 1> = btf_maps::PerCpuArray::new();

#[sk_msg]
pub fn {{crate_name}}(ctx: SkMsgContext) -> u32 {
    // SAFETY: reading fields of the context the kernel handed us.
    let (local_port, remote_port) = unsafe { ((*ctx.msg).local_port, (*ctx.msg).remote_port) };
    let local_port = local_port as u16;
    // The kernel hands the remote port in network byte order, in the upper half on little-endian machines.
    let remote_port = u32::from_be(remote_port) as u16;
    let size = ctx.size();

    // SAFETY: a copy of the slot is taken at once; user space may change the entry later, never free it under us.
    let peer = unsafe { PEERS.get(&(remote_port as u32)).copied() };
    let redirected = match peer {
        // SAFETY: `ctx` is the sk_msg context of this call and SOCKETS a sockmap.
        Some(slot) => unsafe { SOCKETS.redirect_msg(&ctx, slot, BPF_F_INGRESS as u64) == SK_PASS as i64 },
        None => false,
    };
    count((local_port as u32) << 16 | remote_port as u32, size as u64, redirected);
    report(&ctx, local_port, remote_port, size, redirected);
    // SK_PASS both ways: with a redirect set, the message goes to the peer; without (none asked, or it failed), it
    // goes through TCP as usual. This program never drops a message.
    SK_PASS
}

fn report(ctx: &SkMsgContext, local_port: u16, remote_port: u16, size: u32, redirected: bool) {
    let Some(mut entry) = MESSAGES.reserve(0) else {
        count_lost();
        return;
    };
    let mut head = [0u8; HEAD_LEN];
    let mut head_len = 0;
    let data = ctx.data();
    let data_end = ctx.data_end();
    // Byte by byte, each checked against data_end as the verifier requires; only the first page is readable anyway.
    for (index, byte) in head.iter_mut().enumerate() {
        if data + index + 1 > data_end {
            break;
        }
        // SAFETY: the byte lies within [data, data_end), checked just above.
        *byte = unsafe { *((data + index) as *const u8) };
        head_len += 1;
    }
    entry.write(MessageEvent { local_port, remote_port, size, redirected: redirected as u32, head_len, head });
    entry.submit(0);
}

fn count(route: u32, bytes: u64, redirected: bool) {
    let stats = match ROUTES.get_ptr_mut(&route) {
        Some(stats) => stats,
        None => {
            let zero = RouteStats { messages: 0, bytes: 0, redirected: 0 };
            // Another CPU may have inserted the same route meanwhile: then BPF_NOEXIST fails, and we add to its entry.
            let _ = ROUTES.insert(&route, &zero, BPF_NOEXIST as u64);
            let Some(stats) = ROUTES.get_ptr_mut(&route) else {
                return;
            };
            stats
        }
    };
    // SAFETY: `stats` points at a live RouteStats map value; its fields are 8-byte aligned u64s.
    unsafe {
        atomic_add(core::ptr::addr_of_mut!((*stats).messages), 1);
        atomic_add(core::ptr::addr_of_mut!((*stats).bytes), bytes);
        if redirected {
            atomic_add(core::ptr::addr_of_mut!((*stats).redirected), 1);
        }
    }
}

/// Counts one record `MESSAGES` could not take (see `MESSAGES_LOST`).
fn count_lost() {
    if let Some(count) = MESSAGES_LOST.get_ptr_mut(0) {
        atomic_add(count, 1);
    }
}

/// Adds to a map value with the BPF atomic add instruction, so messages on several CPUs at once are all counted.
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
