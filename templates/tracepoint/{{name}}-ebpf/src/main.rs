//! Kernel side of {{name}}: a tracepoint on `syscalls/sys_enter_execve` that sends one `ExecEvent` per exec
//! through a ring buffer and counts execs per uid.
#![no_std]
#![no_main]
// Inline BPF assembly (for the atomic add below) is unstable, as it is for aya-ebpf itself.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    btf_maps,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_task, bpf_get_current_uid_gid,
        bpf_probe_read_user_str_bytes,
    },
    macros::{btf_map, tracepoint},
    programs::TracePointContext,
};
use aya_log_ebpf::debug;
use pyaya_fields::kernel_field;
use {{crate_name}}_common::ExecEvent;

/// Exec events for user space. A `#[btf_map]` ring buffer names its record type in the object's BTF, so user
/// space decodes `ExecEvent`s without declaring the struct again. 4 MiB hold about 14 000 events (296 bytes
/// each with the ring's header): several seconds of the busiest exec load while user space is kept off the CPU
/// (`benchmarks/loss.py`; 256 KiB and 1 MiB lost records under it).
#[btf_map]
static EVENTS: btf_maps::RingBuf<ExecEvent, { 4 * 1024 * 1024 }> = btf_maps::RingBuf::new();

/// Exec events `EVENTS` could not take (it was full), in entry 0 of each CPU: pyaya's lost-record convention
/// (`NAME_LOST`), so `pyaya run` reports them and `bpf.maps["EVENTS"].lost` is their sum.
#[btf_map]
static EVENTS_LOST: btf_maps::PerCpuArray<u64, 1> = btf_maps::PerCpuArray::new();

/// Number of execs per real uid, counted before the event is reserved: every exec is in here, shown or lost.
#[btf_map]
static EXEC_COUNTS: btf_maps::HashMap<u32, u64, 4096> = btf_maps::HashMap::new();

/// Set by user space before loading (`-p PID`): report only the execs of this process (the exec'ing task's tgid,
/// which the exec keeps). Zero reports every process.
#[no_mangle]
static TARGET_TGID: u32 = 0;

// Rust eBPF has no CO-RE: the program declares the kernel field it reads by its path, and pyaya's loader fills in
// where the running kernel keeps it (from /sys/kernel/btf/vmlinux) before the kernel sees the program.
kernel_field!(PARENT_TGID: i32 = "task_struct.real_parent->tgid");

/// Offset of `const char *filename` in the `sys_enter_execve` record (see the tracepoint's `format` file).
const FILENAME_FIELD_OFFSET: usize = 16;

#[tracepoint(category = "syscalls", name = "sys_enter_execve")]
pub fn {{crate_name}}(ctx: TracePointContext) -> u32 {
    // A failed read only loses this event; the program itself must always return 0 for a tracepoint.
    let _ = try_trace_exec(&ctx);
    0
}

fn try_trace_exec(ctx: &TracePointContext) -> Result<(), i64> {
    let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: a volatile read keeps the compiler from folding the loader-patched global to its initial zero.
    let target = unsafe { core::ptr::read_volatile(&TARGET_TGID) };
    if target != 0 && target != pid {
        return Ok(());
    }
    let uid = bpf_get_current_uid_gid() as u32;
    count_exec(uid);

    let Some(mut entry) = EVENTS.reserve(0) else {
        count_lost();
        return Err(-1);
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points at ring buffer memory reserved for one ExecEvent; every field is written before submit.
    unsafe {
        (*event).pid = pid;
        (*event).ppid = parent_pid();
        (*event).uid = uid;
        (*event).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        (*event).filename[0] = 0;
        (*event).filename_len = match ctx.read_at::<*const u8>(FILENAME_FIELD_OFFSET) {
            Ok(filename) => bpf_probe_read_user_str_bytes(filename, &mut (*event).filename)
                .map(|bytes| bytes.len() as u32)
                .unwrap_or(0),
            Err(_) => 0,
        };
    }
    entry.submit(0);
    debug!(ctx, "exec by pid {} uid {}", pid, uid);
    Ok(())
}

/// Counts one record `EVENTS` could not take (see `EVENTS_LOST`).
fn count_lost() {
    if let Some(count) = EVENTS_LOST.get_ptr_mut(0) {
        atomic_add(count, 1);
    }
}

fn count_exec(uid: u32) {
    match EXEC_COUNTS.get_ptr_mut(&uid) {
        Some(count) => atomic_add(count, 1),
        None => {
            // Another CPU may have inserted the same uid meanwhile: then BPF_NOEXIST fails and we add to its entry.
            if EXEC_COUNTS.insert(&uid, &1, BPF_NOEXIST as u64).is_err() {
                if let Some(count) = EXEC_COUNTS.get_ptr_mut(&uid) {
                    atomic_add(count, 1);
                }
            }
        }
    }
}

/// Adds to a map value with the BPF atomic add instruction, so execs on several CPUs at once are all counted.
/// (The BPF target has no compare-and-swap, so `core::sync::atomic` offers no `fetch_add` there.)
fn atomic_add(value: *mut u64, delta: u64) {
    // SAFETY: `value` points at a live, 8-byte aligned u64 map value returned by the kernel.
    unsafe { core::arch::asm!("lock *(u64 *)({0} + 0) += {1}", in(reg) value, in(reg) delta) };
}

fn parent_pid() -> u32 {
    // SAFETY: the current task is a live task_struct; the reads go through bpf_probe_read_kernel, so a failed one
    // yields an error, never a fault.
    unsafe { PARENT_TGID.read(bpf_get_current_task() as *const u8) }.map_or(0, |tgid| tgid as u32)
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
