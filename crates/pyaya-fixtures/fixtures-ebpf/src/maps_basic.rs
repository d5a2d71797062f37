//! Every legacy (`#[map]`) map type, and a raw tracepoint on `sys_enter` that writes into them when the test's
//! process makes the trigger syscall: counters (plain and per-CPU), a queue and a stack, stack ids, perf and
//! ring buffer records, and a tail call through the program array.
#![no_std]
#![no_main]

#[path = "stream_lost.rs"]
mod stream_lost;

use aya_ebpf::{
    bindings::{BPF_EXIST, BPF_F_REUSE_STACKID, BPF_F_USER_STACK},
    helpers::{bpf_get_current_pid_tgid, bpf_get_smp_processor_id},
    macros::{map, raw_tracepoint},
    maps::{
        Array, BloomFilter, CgroupArray, CpuMap, DevMap, DevMapHash, HashMap, LpmTrie, LruHashMap,
        LruPerCpuHashMap, PerCpuArray, PerCpuHashMap, PerfEventArray, ProgramArray, Queue, RingBuf,
        SockHash, SockMap, Stack, StackTrace, XskMap,
    },
    programs::{tracing::StackIdContext as _, RawTracePointContext},
};
use stream_lost::{count_lost, perf_output};

/// One perf sample: large on purpose, so a one-page buffer overflows after a few dozen.
#[repr(C)]
pub struct PerfRecord {
    pub cpu: u32,
    pub seq: u32,
    pub padding: [u64; 15],
}

#[map]
static MAPS_HASH: HashMap<u32, u64> = HashMap::with_max_entries(8192, 0);
#[map]
static MAPS_LRU_HASH: LruHashMap<u32, u64> = LruHashMap::with_max_entries(64, 0);
#[map]
static MAPS_PERCPU_HASH: PerCpuHashMap<u32, u64> = PerCpuHashMap::with_max_entries(8192, 0);
#[map]
static MAPS_LRU_PERCPU_HASH: LruPerCpuHashMap<u32, u64> = LruPerCpuHashMap::with_max_entries(64, 0);
#[map]
static MAPS_ARRAY: Array<u64> = Array::with_max_entries(4096, 0);
#[map]
static MAPS_PERCPU_ARRAY: PerCpuArray<u64> = PerCpuArray::with_max_entries(4096, 0);
#[map]
static MAPS_PROGS: ProgramArray = ProgramArray::with_max_entries(4, 0);
#[map]
static MAPS_PERF: PerfEventArray<PerfRecord> = PerfEventArray::new(0);
#[map]
static MAPS_PERF_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
#[map]
static MAPS_RING: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);
#[map]
static MAPS_RING_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
#[map]
static MAPS_STACK: Stack<u64> = Stack::with_max_entries(16, 0);
#[map]
static MAPS_QUEUE: Queue<u64> = Queue::with_max_entries(16, 0);
#[map]
static MAPS_STACKS: StackTrace = StackTrace::with_max_entries(256, 0);
/// Stack ids of the last trigger: key 10 the kernel stack, 11 the user stack. (Not 0: a `&0u32` constant can be
/// merged with the zero-initialised `MAPS_TARGET_TGID` global, which the loader patches to the test's pid.)
#[map]
static MAPS_STACK_IDS: HashMap<u32, i64> = HashMap::with_max_entries(2, 0);
#[map]
static MAPS_LPM: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(64, 1);
#[map]
static MAPS_BLOOM: BloomFilter<u32> = BloomFilter::with_max_entries(128, 0);
#[map]
static MAPS_SOCKMAP: SockMap = SockMap::with_max_entries(4, 0);
#[map]
static MAPS_SOCKHASH: SockHash<u32> = SockHash::with_max_entries(4, 0);
#[map]
static MAPS_DEVMAP: DevMap = DevMap::with_max_entries(4, 0);
#[map]
static MAPS_DEVMAP_HASH: DevMapHash = DevMapHash::with_max_entries(4, 0);
#[map]
static MAPS_CPUMAP: CpuMap = CpuMap::with_max_entries(2, 0);
#[map]
static MAPS_XSKMAP: XskMap = XskMap::with_max_entries(4, 0);
#[map]
static MAPS_CGROUPS: CgroupArray = CgroupArray::with_max_entries(2, 0);

/// Only this process (set by the test before loading) triggers the writer.
#[no_mangle]
static MAPS_TARGET_TGID: u32 = 0;
/// The trigger syscall's number (getppid by default on x86-64).
#[no_mangle]
static MAPS_TRIGGER_SYSCALL: u64 = 110;

fn volatile<T: Copy>(value: &T) -> T {
    // SAFETY: reading a loader-patched global; volatile keeps the compiler from folding its initial value.
    unsafe { core::ptr::read_volatile(value) }
}

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn maps_writer(ctx: RawTracePointContext) -> i32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if tgid != volatile(&MAPS_TARGET_TGID) {
        return 0;
    }
    let syscall: u64 = ctx.arg(1);
    if syscall != volatile(&MAPS_TRIGGER_SYSCALL) {
        return 0;
    }
    // SAFETY: helper without arguments.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    // Per-CPU slot 0 of the per-CPU array counts triggers on each CPU: no atomics needed.
    let seq = match MAPS_PERCPU_ARRAY.get_ptr_mut(0) {
        Some(count) => {
            // SAFETY: a live per-CPU map value only this CPU touches.
            unsafe {
                *count += 1;
                *count as u32
            }
        }
        None => 0,
    };
    match MAPS_PERCPU_HASH.get_ptr_mut(&1u32) {
        // SAFETY: a live per-CPU map value only this CPU touches.
        Some(count) => unsafe { *count += 1 },
        None => {
            let _ = MAPS_PERCPU_HASH.insert(&1u32, &1u64, 0);
        }
    }
    let _ = MAPS_HASH.insert(&cpu, &u64::from(seq), 0);
    let _ = MAPS_QUEUE.push(&u64::from(seq), BPF_EXIST as u64);
    let _ = MAPS_STACK.push(&u64::from(seq), BPF_EXIST as u64);
    // BPF_F_REUSE_STACKID: a stack whose hash bucket holds another (the test process makes many syscalls) takes
    // the bucket, instead of failing with EEXIST and leaving no id to read.
    if let Ok(id) = ctx.get_stackid(&MAPS_STACKS, BPF_F_REUSE_STACKID as u64) {
        let _ = MAPS_STACK_IDS.insert(&10u32, &id, 0);
    }
    if let Ok(id) = ctx.get_stackid(&MAPS_STACKS, (BPF_F_USER_STACK | BPF_F_REUSE_STACKID) as u64) {
        let _ = MAPS_STACK_IDS.insert(&11u32, &id, 0);
    }
    let record = PerfRecord {
        cpu,
        seq,
        padding: [0; 15],
    };
    perf_output(&ctx, &MAPS_PERF, &record, &MAPS_PERF_LOST);
    if MAPS_RING
        .output::<u64>(&((u64::from(cpu) << 32) | u64::from(seq)), 0)
        .is_err()
    {
        count_lost(&MAPS_RING_LOST);
    }
    // SAFETY: a tail call either jumps (never returning) or, with no program at index 0, falls through.
    unsafe { MAPS_PROGS.tail_call(&ctx, 0) };
    0
}

/// The tail-call target: counts the jumps in array slot 0.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn maps_tail(_ctx: RawTracePointContext) -> i32 {
    if let Some(count) = MAPS_ARRAY.get_ptr_mut(0) {
        // SAFETY: a live array value; tests trigger from one thread, so no concurrent writers.
        unsafe { *count += 1 };
    }
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
