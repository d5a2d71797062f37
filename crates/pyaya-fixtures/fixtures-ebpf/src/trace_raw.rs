//! A raw tracepoint on `sys_enter` counting syscalls per tgid: used for link and program pinning tests.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    btf_maps::HashMap,
    helpers::bpf_get_current_pid_tgid,
    macros::{btf_map, raw_tracepoint},
    programs::RawTracePointContext,
};

#[btf_map]
static SYSCALLS: HashMap<u32, u64, 4096> = HashMap::new();

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn trace_sys_enter(_ctx: RawTracePointContext) -> i32 {
    let key = (bpf_get_current_pid_tgid() >> 32) as u32;
    match SYSCALLS.get_ptr_mut(&key) {
        Some(value) => atomic_add(value, 1),
        None => {
            if SYSCALLS.insert(&key, &1, BPF_NOEXIST as u64).is_err() {
                if let Some(value) = SYSCALLS.get_ptr_mut(&key) {
                    atomic_add(value, 1);
                }
            }
        }
    }
    0
}

fn atomic_add(value: *mut u64, delta: u64) {
    // SAFETY: `value` points at a live, 8-byte aligned u64 map value returned by the kernel.
    unsafe { core::arch::asm!("lock *(u64 *)({0} + 0) += {1}", in(reg) value, in(reg) delta) };
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
