//! An Extension (freplace) fixture: `trace_ext_target`, a tracepoint on `raw_syscalls/sys_enter`, stores what the
//! global function `trace_ext_decide` returns (1) for the calling tgid in `DECISIONS`; `trace_ext_replacement`
//! replaces that function and returns 2. aya-ebpf 0.2 has no `#[extension]` macro, so its section is written by
//! hand. The target is a TracePoint, not a RawTracePoint: kernels (5.10 to 6.12 at least) verify a replacement's
//! return value against the main-program range of the target's type, and a raw tracepoint's is [0, 0].
//!
//! `trace_ext_dispatcher`, an XDP program, returns what its global function `trace_ext_slot` decides (XDP_PASS);
//! `trace_ext_drop` is an ordinary `#[xdp]` program (XDP_DROP) that `Ebpf.load(extensions=[...])` prepares as an
//! Extension of that slot, as libxdp's dispatcher takes ordinary XDP programs.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{xdp_action, xdp_md},
    btf_maps::HashMap,
    helpers::bpf_get_current_pid_tgid,
    macros::{btf_map, tracepoint, xdp},
    programs::{TracePointContext, XdpContext},
};

#[btf_map]
static DECISIONS: HashMap<u32, u64, 4096> = HashMap::new();

/// A global BPF function (its own BTF FUNC), so an Extension program can replace it.
#[no_mangle]
#[inline(never)]
pub extern "C" fn trace_ext_decide(tgid: u64) -> u64 {
    // The volatile read keeps the compiler from dropping the argument (the verifier checks it is a scalar).
    // SAFETY: reads a local.
    let tgid = unsafe { core::ptr::read_volatile(&tgid) };
    u64::from(tgid != u64::MAX)
}

#[tracepoint(category = "raw_syscalls", name = "sys_enter")]
pub fn trace_ext_target(_ctx: TracePointContext) -> i32 {
    let tgid = bpf_get_current_pid_tgid() >> 32;
    let decision = trace_ext_decide(tgid);
    let _ = DECISIONS.insert(&(tgid as u32), &decision, 0);
    0
}

#[no_mangle]
#[link_section = "freplace/trace_ext_decide"]
pub extern "C" fn trace_ext_replacement(tgid: u64) -> u64 {
    // SAFETY: reads a local.
    let tgid = unsafe { core::ptr::read_volatile(&tgid) };
    2 * u64::from(tgid != u64::MAX)
}

/// A dispatcher's slot: a global function of the XDP context, which an Extension may replace.
#[no_mangle]
#[inline(never)]
pub extern "C" fn trace_ext_slot(ctx: *mut xdp_md) -> u32 {
    // SAFETY: reads a local; keeps the argument, which the verifier checks is the context.
    let ctx = unsafe { core::ptr::read_volatile(&ctx) };
    if ctx.is_null() {
        xdp_action::XDP_ABORTED
    } else {
        xdp_action::XDP_PASS
    }
}

#[xdp]
pub fn trace_ext_dispatcher(ctx: XdpContext) -> u32 {
    trace_ext_slot(ctx.ctx)
}

#[xdp]
pub fn trace_ext_drop(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
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
