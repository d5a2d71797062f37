//! Cgroup fixtures, each acting only on processes of the cgroup it is attached to:
//! - `net_cgroup_skb`: counts egress packets and bytes, drops UDP to port 9 (discard);
//! - `net_cgroup_sysctl`: refuses reads of `kernel/ostype`;
//! - `net_cgroup_getsockopt`: answers `getsockopt(SOL_SOCKET, SO_MARK)` with 0x5EBA;
//! - `net_cgroup_sock_create`: marks every new socket with 0x7AB;
//! - `net_cgroup_connect4`: sends IPv4 connects to port `PORTS[0]` to port `PORTS[1]` instead;
//! - `net_cgroup_device`: refuses /dev/null (char 1:3);
//! - `net_sock_ops`: counts TCP events by op and keeps the remote port of the last active connect.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    btf_maps::Array,
    helpers::bpf_sysctl_get_name,
    macros::{
        btf_map, cgroup_device, cgroup_skb, cgroup_sock, cgroup_sock_addr, cgroup_sockopt, cgroup_sysctl,
        sock_ops,
    },
    programs::{
        DeviceContext, SkBuffContext, SockAddrContext, SockContext, SockOpsContext,
        SockoptContext, SysctlContext,
    },
};

/// Index 0: packets, 1: bytes, 2: UDP datagrams to port 9 dropped.
#[btf_map]
static SKB_COUNTS: Array<u64, 3> = Array::new();
/// Index 0: sysctl reads refused, 1: getsockopt answers changed, 2: sockets marked, 3: connects redirected,
/// 4: device opens refused.
#[btf_map]
static HOOK_COUNTS: Array<u64, 5> = Array::new();
/// Index 0: the port connects are redirected from, 1: the port they go to (host order).
#[btf_map]
static PORTS: Array<u32, 2> = Array::new();
/// Events per sock_ops op (BPF_SOCK_OPS_*).
#[btf_map]
static SOCK_OPS_EVENTS: Array<u64, 16> = Array::new();
/// Index 0: remote port of the last active connect, as the kernel gives it (network order, upper half).
#[btf_map]
static SOCK_OPS_PORT: Array<u32, 1> = Array::new();

const IPPROTO_UDP: u8 = 17;
const SOL_SOCKET: i32 = 1;
const SO_MARK: i32 = 36;
const BPF_SOCK_OPS_TCP_CONNECT_CB: u32 = 3;

fn add<const ENTRIES: usize>(map: &Array<u64, ENTRIES>, index: u32, delta: u64) {
    if let Some(value) = map.get_ptr_mut(index) {
        // SAFETY: `value` points at a live, 8-byte aligned u64 map value returned by the kernel.
        unsafe { core::arch::asm!("lock *(u64 *)({0} + 0) += {1}", in(reg) value, in(reg) delta) };
    }
}

#[cgroup_skb(egress)]
pub fn net_cgroup_skb(ctx: SkBuffContext) -> i32 {
    add(&SKB_COUNTS, 0, 1);
    add(&SKB_COUNTS, 1, u64::from(ctx.len()));
    // Data starts at the IPv4 header here.
    let is_udp = ctx.load::<u8>(0).ok() == Some(0x45) && ctx.load::<u8>(9).ok() == Some(IPPROTO_UDP);
    if is_udp && ctx.load::<u16>(22).map(u16::from_be).ok() == Some(9) {
        add(&SKB_COUNTS, 2, 1);
        return 0;
    }
    1
}

#[cgroup_sysctl]
pub fn net_cgroup_sysctl(ctx: SysctlContext) -> i32 {
    const DENIED: &[u8; 14] = b"kernel/ostype\0";
    // SAFETY: the kernel hands a valid bpf_sysctl context to this program.
    if unsafe { (*ctx.sysctl).write } != 0 {
        return 1;
    }
    let mut name = [0u8; 16];
    // SAFETY: `name` is a writable buffer of the length given.
    let len = unsafe { bpf_sysctl_get_name(ctx.sysctl, name.as_mut_ptr().cast(), name.len() as u64, 0) };
    if len == 13 && name[..14] == DENIED[..] {
        add(&HOOK_COUNTS, 0, 1);
        return 0;
    }
    1
}

#[cgroup_sockopt(getsockopt)]
pub fn net_cgroup_getsockopt(ctx: SockoptContext) -> i32 {
    let sockopt = ctx.sockopt;
    // SAFETY: the kernel hands a valid bpf_sockopt context; `optval..optval_end` is checked before writing.
    unsafe {
        if (*sockopt).level != SOL_SOCKET || (*sockopt).optname != SO_MARK {
            return 1;
        }
        let value = (*sockopt).__bindgen_anon_2.optval as *mut u8;
        let end = (*sockopt).__bindgen_anon_3.optval_end as *mut u8;
        if value.add(4) > end {
            return 1;
        }
        *(value as *mut u32) = 0x5EBA;
        // Separate 4-byte stores: the verifier refuses one 8-byte store over optlen and retval.
        core::ptr::write_volatile(&raw mut (*sockopt).optlen, 4);
        core::ptr::write_volatile(&raw mut (*sockopt).retval, 0);
    }
    add(&HOOK_COUNTS, 1, 1);
    1
}

#[cgroup_sock(sock_create)]
pub fn net_cgroup_sock_create(ctx: SockContext) -> i32 {
    // SAFETY: the kernel hands a valid bpf_sock context; `mark` is writable at sock_create.
    unsafe { (*ctx.sock).mark = 0x7AB };
    add(&HOOK_COUNTS, 2, 1);
    1
}

#[cgroup_sock_addr(connect4)]
pub fn net_cgroup_connect4(ctx: SockAddrContext) -> i32 {
    let (Some(&from), Some(&to)) = (PORTS.get(0), PORTS.get(1)) else {
        return 1;
    };
    // SAFETY: the kernel hands a valid bpf_sock_addr context; `user_port` is writable at connect4.
    unsafe {
        let port = u32::from(u16::from_be((*ctx.sock_addr).user_port as u16));
        if from != 0 && port == from {
            (*ctx.sock_addr).user_port = u32::from((to as u16).to_be());
            add(&HOOK_COUNTS, 3, 1);
        }
    }
    1
}

#[cgroup_device]
pub fn net_cgroup_device(ctx: DeviceContext) -> i32 {
    // SAFETY: the kernel hands a valid bpf_cgroup_dev_ctx context to this program.
    let (kind, major, minor) = unsafe {
        let device = &*ctx.device;
        (device.access_type & 0xFFFF, device.major, device.minor)
    };
    const BPF_DEVCG_DEV_CHAR: u32 = 2;
    if kind == BPF_DEVCG_DEV_CHAR && major == 1 && minor == 3 {
        add(&HOOK_COUNTS, 4, 1);
        return 0;
    }
    1
}

#[sock_ops]
pub fn net_sock_ops(ctx: SockOpsContext) -> u32 {
    let op = ctx.op();
    if op < 16 {
        add(&SOCK_OPS_EVENTS, op, 1);
    }
    if op == BPF_SOCK_OPS_TCP_CONNECT_CB {
        if let Some(port) = SOCK_OPS_PORT.get_ptr_mut(0) {
            // SAFETY: `port` points at a live u32 map value returned by the kernel.
            unsafe { *port = ctx.remote_port() };
        }
    }
    1
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
