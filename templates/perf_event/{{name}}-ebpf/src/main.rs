//! Kernel side of {{name}}: a perf event program run on every CPU at a fixed frequency. Each run takes the kernel
//! and user stacks of whatever is on the CPU into a stack trace map and counts the sample under (pid, stacks).
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::{BPF_F_USER_STACK, BPF_NOEXIST},
    btf_maps,
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid},
    macros::{btf_map, perf_event},
    programs::{tracing::StackIdContext, PerfEventContext},
};
use {{crate_name}}_common::SampleKey;

/// Stacks by id: up to 127 return addresses each, identical stacks share an id.
#[btf_map]
static STACKS: btf_maps::StackTrace<16384> = btf_maps::StackTrace::new();

/// Samples per (pid, command, kernel stack, user stack). (A `#[btf_map]` names its key and value types in the
/// object's BTF: user space reads `SampleKey` records without declaring the struct again.)
#[btf_map]
static COUNTS: btf_maps::HashMap<SampleKey, u64, 16384> = btf_maps::HashMap::new();

/// Set by user space before loading (`-p PID`): sample only this process. Zero samples every process.
#[no_mangle]
static TARGET_TGID: u32 = 0;

#[perf_event]
pub fn {{crate_name}}(ctx: PerfEventContext) -> u32 {
    let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: a volatile read keeps the compiler from folding the loader-patched global to its initial zero.
    let target = unsafe { core::ptr::read_volatile(&TARGET_TGID) };
    // pid 0 is the idle task: a CPU with nothing to do is not a cost.
    if pid == 0 || (target != 0 && target != pid) {
        return 0;
    }
    let key = SampleKey {
        pid,
        kernel_stack_id: ctx
            .get_stackid(&STACKS, 0)
            .map_or_else(|error| error, |id| id as i32),
        user_stack_id: ctx
            .get_stackid(&STACKS, BPF_F_USER_STACK as u64)
            .map_or_else(|error| error, |id| id as i32),
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    };
    match COUNTS.get_ptr_mut(&key) {
        Some(count) => atomic_add(count, 1),
        None => {
            // Another CPU may have inserted the same key meanwhile: then BPF_NOEXIST fails and we add to its entry.
            if COUNTS.insert(&key, &1, BPF_NOEXIST as u64).is_err() {
                if let Some(count) = COUNTS.get_ptr_mut(&key) {
                    atomic_add(count, 1);
                }
            }
        }
    }
    0
}

/// Adds to a map value with the BPF atomic add instruction, so samples on several CPUs at once are all counted.
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
