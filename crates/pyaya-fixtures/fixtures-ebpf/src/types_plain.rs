//! A fixture without aya-log statements (it must load without any warning) whose maps the pinning tests share
//! between loads.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{Array, HashMap},
    macros::{btf_map, kprobe, tracepoint, xdp},
    programs::{ProbeContext, TracePointContext, XdpContext},
};

/// Pinned by name by `Ebpf.load(..., pin_maps=...)`; tests write and read it from two loads.
#[btf_map]
static SHARED: HashMap<u32, u64, 32> = HashMap::new();

/// A second map of another type, also pinned.
#[btf_map]
static SLOTS: Array<u32, 4> = Array::new();

/// Multiplied into the value stored for each call (tests override it at load).
#[no_mangle]
static FACTOR: u64 = 1;

#[tracepoint(category = "syscalls", name = "sys_enter_getppid")]
pub fn types_plain(_ctx: TracePointContext) -> u32 {
    // SAFETY: a volatile read keeps the compiler from folding the loader-patched global to its initial zero.
    let factor = unsafe { core::ptr::read_volatile(&FACTOR) };
    let pid = (aya_ebpf::helpers::bpf_get_current_pid_tgid() >> 32) as u32;
    let _ = SHARED.insert(&pid, &factor, 0);
    if let Some(slot) = SLOTS.get_ptr_mut(0) {
        // SAFETY: array slots always exist.
        unsafe { *slot = pid };
    }
    0
}

/// Lets every packet through: the feature tests load it to check the XDP probe against reality.
#[xdp]
pub fn types_xdp(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// Does nothing: the feature tests load and attach it to check the kprobe probe against reality.
#[kprobe]
pub fn types_kprobe(_ctx: ProbeContext) -> u32 {
    0
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
