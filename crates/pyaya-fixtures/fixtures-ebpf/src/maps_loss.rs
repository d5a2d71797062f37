//! Known numbers of records into a deliberately small ring buffer and perf event array, for the loss tests: a raw
//! tracepoint on `sys_enter` that, on each `getppid()` of the test's process (`LOSS_TARGET_TGID`), counts one
//! record in `LOSS_PRODUCED` (slot 0: ring, slot 1: perf) and then writes it to `LOSS_RING` (one page: a few dozen
//! records) and `LOSS_PERF`. What cannot be written is counted by pyaya's convention in `LOSS_RING_LOST` and
//! `LOSS_PERF_LOST` (for the perf array, the failures other than a full buffer, which its perf event counts).
#![no_std]
#![no_main]

#[path = "stream_lost.rs"]
mod stream_lost;

use aya_ebpf::{
    btf_maps::{PerCpuArray, PerfEventArray, RingBuf},
    helpers::{bpf_get_current_pid_tgid, bpf_get_smp_processor_id},
    macros::{btf_map, raw_tracepoint},
    programs::RawTracePointContext,
};
use stream_lost::{count_lost, perf_output};

/// One record: 64 bytes.
#[repr(C)]
pub struct LossRecord {
    pub seq: u64,
    pub cpu: u32,
    pub stream: u32,
    pub padding: [u64; 6],
}

/// One page: 56 records of 64 bytes (plus an 8-byte header each) fit.
#[btf_map]
static LOSS_RING: RingBuf<LossRecord, 4096> = RingBuf::new();
#[btf_map]
static LOSS_RING_LOST: PerCpuArray<u64, 1> = PerCpuArray::new();
/// Its records are `LossRecord`s too, which its BTF definition does not say (`btf_maps::PerfEventArray` names no
/// record type).
#[btf_map]
static LOSS_PERF: PerfEventArray = PerfEventArray::new();
#[btf_map]
static LOSS_PERF_LOST: PerCpuArray<u64, 1> = PerCpuArray::new();
/// Records made: slot 0 for the ring, slot 1 for the perf array, counted before each write is tried.
#[btf_map]
static LOSS_PRODUCED: PerCpuArray<u64, 2> = PerCpuArray::new();

/// Only this process (set by the test before loading) makes records.
#[no_mangle]
static LOSS_TARGET_TGID: u32 = 0;

const GETPPID: u64 = 110; // x86-64

fn produced(slot: u32) -> u64 {
    match LOSS_PRODUCED.get_ptr_mut(slot) {
        // SAFETY: this CPU's value of a per-CPU array; one program run at a time on a CPU.
        Some(count) => unsafe {
            *count += 1;
            *count
        },
        None => 0,
    }
}

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn maps_loss(ctx: RawTracePointContext) -> i32 {
    // SAFETY: a volatile read keeps the compiler from folding the loader-patched global to its initial zero.
    let target = unsafe { core::ptr::read_volatile(&LOSS_TARGET_TGID) };
    if (bpf_get_current_pid_tgid() >> 32) as u32 != target || ctx.arg::<u64>(1) != GETPPID {
        return 0;
    }
    // SAFETY: helper without arguments.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let ring_record = LossRecord {
        seq: produced(0),
        cpu,
        stream: 0,
        padding: [0; 6],
    };
    if LOSS_RING.output(&ring_record, 0).is_err() {
        count_lost(&LOSS_RING_LOST);
    }
    let perf_record = LossRecord {
        seq: produced(1),
        cpu,
        stream: 1,
        padding: [0; 6],
    };
    perf_output(&ctx, &LOSS_PERF, &perf_record, &LOSS_PERF_LOST);
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
