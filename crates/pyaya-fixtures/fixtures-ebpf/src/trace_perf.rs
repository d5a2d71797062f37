//! A perf event program counting samples per CPU in `SAMPLES` (key `cpu * 2`), and separately the samples that hit
//! the process whose tgid user space writes into `TARGET_TGID` (key `cpu * 2 + 1`).
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    btf_maps::HashMap,
    helpers::{bpf_get_current_pid_tgid, bpf_get_smp_processor_id},
    macros::{btf_map, perf_event},
    programs::PerfEventContext,
};

#[btf_map]
static SAMPLES: HashMap<u32, u64, 1024> = HashMap::new();

#[no_mangle]
static TARGET_TGID: u32 = 0;

#[perf_event]
pub fn trace_perf_sample(_ctx: PerfEventContext) -> u32 {
    // SAFETY: a volatile read keeps the compiler from folding the loader-patched global to its initial zero.
    let target = unsafe { core::ptr::read_volatile(&TARGET_TGID) };
    // SAFETY: the helper only reads the current CPU number.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let hit = u32::from(target != 0 && (bpf_get_current_pid_tgid() >> 32) as u32 == target);
    count(cpu * 2);
    if hit == 1 {
        count(cpu * 2 + 1);
    }
    0
}

fn count(key: u32) {
    match SAMPLES.get_ptr_mut(&key) {
        Some(value) => atomic_add(value, 1),
        None => {
            if SAMPLES.insert(&key, &1, BPF_NOEXIST as u64).is_err() {
                if let Some(value) = SAMPLES.get_ptr_mut(&key) {
                    atomic_add(value, 1);
                }
            }
        }
    }
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
