//! Records for `benchmarks/stream_throughput.py` and `benchmarks/decode.py`.
//!
//! Two raw tracepoints on `sys_enter` (the benchmark attaches one at a time) emit one 64-byte `BenchEvent` per
//! `getppid()` of the benchmark's producer process (`BENCH_TGID`): `bench_ring` through a ring buffer,
//! `bench_perf` through a perf event array. `BENCH_COUNTS` (per-CPU) counts, in slot 0, the events produced;
//! `BENCH_RING_LOST` and `BENCH_PERF_LOST` (pyaya's lost-record convention) the writes that failed, so lost records
//! are never mistaken for speed.
//! `BenchExecEvent` (an exec tracer's record) is only declared, for the decoding benchmark.
#![no_std]
#![no_main]

#[path = "stream_lost.rs"]
mod stream_lost;

use aya_ebpf::{
    btf_maps::{Array, PerCpuArray, PerfEventArray, RingBuf},
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns},
    macros::{btf_map, raw_tracepoint},
    programs::RawTracePointContext,
};
use stream_lost::{count_lost, perf_output};

/// One streamed record: 64 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BenchEvent {
    pub seq: u64,
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub cpu: u32,
    pub syscall: u32,
    pub comm: [u8; 16],
    pub args: [u64; 2],
}

/// A typical exec tracer's record, decoded by `benchmarks/decode.py`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BenchExecEvent {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: [u8; 16],
    pub filename: [u8; 256],
}

/// 16 MiB: room for 200 000 records (64 bytes + 8 of header each) read after the producer has finished.
#[btf_map]
static BENCH_RING: RingBuf<BenchEvent, { 16 * 1024 * 1024 }> = RingBuf::new();

/// `BenchEvent`s too, though its BTF definition does not say so (`btf_maps::PerfEventArray` names no record type):
/// the benchmark types its records.
#[btf_map]
static BENCH_PERF: PerfEventArray = PerfEventArray::new();

/// Slot 0: events produced.
#[btf_map]
static BENCH_COUNTS: PerCpuArray<u64, 1> = PerCpuArray::new();
/// Ring writes that failed (ring full).
#[btf_map]
static BENCH_RING_LOST: PerCpuArray<u64, 1> = PerCpuArray::new();
/// Perf outputs that failed other than with a full buffer (which the perf event counts).
#[btf_map]
static BENCH_PERF_LOST: PerCpuArray<u64, 1> = PerCpuArray::new();

/// Declares `BenchExecEvent` in the object's BTF; nothing writes it.
#[btf_map]
static BENCH_EXEC: Array<BenchExecEvent, 1> = Array::new();

/// The producer's tgid, written by the benchmark before loading.
#[no_mangle]
static BENCH_TGID: u32 = 0;

const GETPPID: u64 = 110; // x86-64

fn volatile<T: Copy>(value: &T) -> T {
    // SAFETY: reading a loader-patched global; volatile keeps the compiler from folding its initial value.
    unsafe { core::ptr::read_volatile(value) }
}

fn bump(slot: u32) -> u64 {
    match BENCH_COUNTS.get_ptr_mut(slot) {
        // SAFETY: a live per-CPU value only this CPU touches.
        Some(count) => unsafe {
            *count += 1;
            *count
        },
        None => 0,
    }
}

fn event(ctx: &RawTracePointContext) -> Option<BenchEvent> {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 != volatile(&BENCH_TGID) {
        return None;
    }
    let syscall: u64 = ctx.arg(1);
    if syscall != GETPPID {
        return None;
    }
    Some(BenchEvent {
        seq: bump(0),
        // SAFETY: helpers without arguments.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        pid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        // SAFETY: helper without arguments.
        cpu: unsafe { bpf_get_smp_processor_id() },
        syscall: syscall as u32,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
        args: [0, 0],
    })
}

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn bench_ring(ctx: RawTracePointContext) -> i32 {
    if let Some(record) = event(&ctx) {
        if BENCH_RING.output(record, 0).is_err() {
            count_lost(&BENCH_RING_LOST);
        }
    }
    0
}

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn bench_perf(ctx: RawTracePointContext) -> i32 {
    if let Some(record) = event(&ctx) {
        perf_output(&ctx, &BENCH_PERF, &record, &BENCH_PERF_LOST);
    }
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
