//! Every map type aya-ebpf 0.2 declares both ways (`#[map]` and `#[btf_map]`), declared here through BTF
//! (`#[btf_map]`, in the `.maps` section every loader reads; the deprecated cgroup storage maps are in
//! `maps_btf.rs`), and a raw tracepoint on `sys_enter` that writes into them when the test's process makes the
//! trigger syscall: counters (plain and per-CPU), a queue and a stack, stack ids, perf and ring buffer records, and
//! a tail call through the program array.
#![no_std]
#![no_main]

#[path = "stream_lost.rs"]
mod stream_lost;

use aya_ebpf::{
    bindings::{BPF_EXIST, BPF_F_REUSE_STACKID, BPF_F_USER_STACK},
    btf_maps::{
        Array, BloomFilter, CgroupArray, CpuMap, DevMap, DevMapHash, HashMap, LpmTrie, LruHashMap,
        LruPerCpuHashMap, PerCpuArray, PerCpuHashMap, PerfEventArray, ProgramArray, Queue, RingBuf,
        SockHash, SockMap, Stack, StackTrace, XskMap,
    },
    helpers::{bpf_get_current_pid_tgid, bpf_get_smp_processor_id},
    macros::{btf_map, raw_tracepoint},
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

#[btf_map]
static MAPS_HASH: HashMap<u32, u64, 8192> = HashMap::new();
#[btf_map]
static MAPS_LRU_HASH: LruHashMap<u32, u64, 64> = LruHashMap::new();
#[btf_map]
static MAPS_PERCPU_HASH: PerCpuHashMap<u32, u64, 8192> = PerCpuHashMap::new();
#[btf_map]
static MAPS_LRU_PERCPU_HASH: LruPerCpuHashMap<u32, u64, 64> = LruPerCpuHashMap::new();
#[btf_map]
static MAPS_ARRAY: Array<u64, 4096> = Array::new();
#[btf_map]
static MAPS_PERCPU_ARRAY: PerCpuArray<u64, 4096> = PerCpuArray::new();
#[btf_map]
static MAPS_PROGS: ProgramArray<4> = ProgramArray::new();
/// Its BTF definition names no record type (`btf_maps::PerfEventArray` has none): user space types the records.
#[btf_map]
static MAPS_PERF: PerfEventArray = PerfEventArray::new();
#[btf_map]
static MAPS_PERF_LOST: PerCpuArray<u64, 1> = PerCpuArray::new();
/// Records of one u64, `(cpu << 32) | seq`, typed by the map itself.
#[btf_map]
static MAPS_RING: RingBuf<u64, { 64 * 1024 }> = RingBuf::new();
#[btf_map]
static MAPS_RING_LOST: PerCpuArray<u64, 1> = PerCpuArray::new();
#[btf_map]
static MAPS_STACK: Stack<u64, 16> = Stack::new();
#[btf_map]
static MAPS_QUEUE: Queue<u64, 16> = Queue::new();
#[btf_map]
static MAPS_STACKS: StackTrace<256> = StackTrace::new();
/// Stack ids of the last trigger: key 10 the kernel stack, 11 the user stack. (Not 0: a `&0u32` constant can be
/// merged with the zero-initialised `MAPS_TARGET_TGID` global, which the loader patches to the test's pid.)
#[btf_map]
static MAPS_STACK_IDS: HashMap<u32, i64, 2> = HashMap::new();
/// `BPF_F_NO_PREALLOC`, which the kernel requires of LPM tries, is btf_maps::LpmTrie's default flag.
#[btf_map]
static MAPS_LPM: LpmTrie<[u8; 4], u32, 64> = LpmTrie::new();
#[btf_map]
static MAPS_BLOOM: BloomFilter<u32, 128> = BloomFilter::new();
#[btf_map]
static MAPS_SOCKMAP: SockMap<4> = SockMap::new();
#[btf_map]
static MAPS_SOCKHASH: SockHash<u32, 4> = SockHash::new();
#[btf_map]
static MAPS_DEVMAP: DevMap<4> = DevMap::new();
#[btf_map]
static MAPS_DEVMAP_HASH: DevMapHash<4> = DevMapHash::new();
#[btf_map]
static MAPS_CPUMAP: CpuMap<2> = CpuMap::new();
#[btf_map]
static MAPS_XSKMAP: XskMap<4> = XskMap::new();
#[btf_map]
static MAPS_CGROUPS: CgroupArray<2> = CgroupArray::new();

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
    if MAPS_RING.output((u64::from(cpu) << 32) | u64::from(seq), 0).is_err() {
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
