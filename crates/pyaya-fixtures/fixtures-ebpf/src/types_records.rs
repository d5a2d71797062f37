//! Typed data fixture: on `getppid()` by the test's process (`TARGET_PID`), sends a `Sample` through a BTF ring
//! buffer and a legacy one, and stores it in legacy and `#[btf_map]` maps with struct keys and values. Logs one
//! record per aya-log level so tests can check which levels the kernel sends.
//!
//! Its `#[map]` maps (`RAW_SAMPLES`, `MIXED`, `SAMPLES_BY_KEY`, `SIGNED`, `LAST_TOTALS`) are legacy on purpose: the
//! tests check how pyaya types maps whose types only the static's type name carries, and rings that user space
//! types by hand. So are aya-log's: this object is not one libbpf loads (`pyaya inspect --compat` says why).
#![no_std]
#![no_main]

#[path = "stream_lost.rs"]
mod stream_lost;
#[path = "types_common.rs"]
mod types_common;

use aya_ebpf::{
    btf_maps::{self, PerCpuArray},
    macros::{btf_map, map, tracepoint},
    maps::{Array, HashMap, RingBuf},
    programs::TracePointContext,
};
use stream_lost::count_lost;
use aya_log_ebpf::{debug, error, info, trace, warn};
use types_common::{Color, Inner, Sample, SampleKey, Totals};

/// Samples for user space, typed by the map itself (its BTF value type is `Sample`).
#[btf_map]
static SAMPLES: btf_maps::RingBuf<Sample, { 64 * 1024 }> = btf_maps::RingBuf::new();

/// The same samples through a legacy ring buffer, which carries no type: user space names it. (Legacy on purpose.)
#[map]
static RAW_SAMPLES: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);

/// Records each ring could not take (pyaya's lost-record convention: `NAME_LOST`, entry 0).
#[btf_map]
static SAMPLES_LOST: PerCpuArray<u64, 1> = PerCpuArray::new();
#[btf_map]
static RAW_SAMPLES_LOST: PerCpuArray<u64, 1> = PerCpuArray::new();

/// Records of two sizes, which user space types as `Totals`: per call a `Totals`, a bare `u32` (too short for it),
/// and a `Totals` again. Legacy on purpose: a ring whose BTF names no record type, typed by hand.
#[map]
static MIXED: RingBuf = RingBuf::with_byte_size(4096, 0);
#[btf_map]
static MIXED_LOST: PerCpuArray<u64, 1> = PerCpuArray::new();

/// Legacy map (on purpose) whose key and value types are only in the static's type name.
#[map]
static SAMPLES_BY_KEY: HashMap<SampleKey, Sample> = HashMap::with_max_entries(64, 0);

/// Legacy map (on purpose) of primitives, one of them signed.
#[map]
static SIGNED: HashMap<u32, i64> = HashMap::with_max_entries(64, 0);

/// Legacy array (on purpose) of structs.
#[map]
static LAST_TOTALS: Array<Totals> = Array::with_max_entries(1, 0);

/// BTF-defined map: its definition points at the key and value types.
#[btf_map]
static TOTALS: btf_maps::HashMap<SampleKey, Totals, 64> = btf_maps::HashMap::new();

/// The only process whose calls are recorded (written by the test before loading).
#[no_mangle]
static TARGET_PID: u32 = 0;

/// Run-time globals: each recorded call adds `STEP` (in `.data`, user space may change it while the program runs)
/// to `CALLS` (in `.bss`), and leaves its totals in `LAST_SEEN` (a record in `.bss`).
#[no_mangle]
static mut CALLS: u64 = 0;
#[no_mangle]
static mut STEP: u64 = 1;
#[no_mangle]
static mut LAST_SEEN: Totals = Totals { calls: 0, last: Color::Red };

#[tracepoint(category = "syscalls", name = "sys_enter_getppid")]
pub fn types_records(ctx: TracePointContext) -> u32 {
    // SAFETY: a volatile read keeps the compiler from folding the loader-patched global to its initial zero.
    let target = unsafe { core::ptr::read_volatile(&TARGET_PID) };
    let pid = (aya_ebpf::helpers::bpf_get_current_pid_tgid() >> 32) as u32;
    if target == 0 || pid != target {
        return 0;
    }
    let sample = Sample {
        small: 250,
        small_signed: -5,
        short: 65000,
        short_signed: -30000,
        word: 4_000_000_000,
        word_signed: -2_000_000_000,
        long: 18_000_000_000_000_000_000,
        long_signed: -9_000_000_000_000_000_000,
        flag: true,
        color: Color::Green,
        words: [1, 2, 3],
        inner: Inner { a: 7, b: -7, tag: [1, 2, 3, 4] },
        inners: [
            Inner { a: 10, b: -10, tag: [0xde, 0xad, 0xbe, 0xef] },
            Inner { a: 20, b: -20, tag: [0, 0, 0, 0] },
        ],
        name: *b"hello types\0\0\0\0\0",
        blob: [0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8],
        pid,
    };
    if SAMPLES.output(&sample, 0).is_err() {
        count_lost(&SAMPLES_LOST);
    }
    if RAW_SAMPLES.output::<Sample>(&sample, 0).is_err() {
        count_lost(&RAW_SAMPLES_LOST);
    }
    // A map key's padding bytes are part of the key, so they must be zero, as user space writes them, or every
    // call inserts a new entry and lookups from Python miss. Neither `mem::zeroed()` nor `MaybeUninit::zeroed()`
    // does that: both return the key by value, and a value of SampleKey's layout (a pair of scalars) is moved as
    // its two fields, so the zeroed padding is not copied (5.10 and 6.1 showed stack garbage there). The storage
    // is zeroed where it lives and the key is only ever borrowed from it.
    let mut storage = core::mem::MaybeUninit::<SampleKey>::uninit();
    let key_ptr = storage.as_mut_ptr();
    // SAFETY: `key_ptr` points at this frame's storage, zeroed here in place; SampleKey is plain integers, for which
    // all zero bytes is a valid value, so the reference below reads an initialised key whose padding stays zero.
    let key: &SampleKey = unsafe {
        key_ptr.write_bytes(0, 1);
        (*key_ptr).pid = pid;
        (*key_ptr).slot = 3;
        &*key_ptr
    };
    let _ = SAMPLES_BY_KEY.insert(key, &sample, 0);
    let _ = SIGNED.insert(&pid, &-42, 0);
    let totals = match TOTALS.get_ptr(key) {
        // SAFETY: the pointer comes from the kernel's lookup of a live entry.
        Some(previous) => Totals { calls: unsafe { (*previous).calls } + 1, last: Color::Blue },
        None => Totals { calls: 1, last: Color::Blue },
    };
    let _ = TOTALS.insert(key, &totals, 0);
    for (index, calls) in [totals.calls, 0, totals.calls + 1000].into_iter().enumerate() {
        let sent = if index == 1 {
            MIXED.output::<u32>(&pid, 0)
        } else {
            MIXED.output::<Totals>(&Totals { calls, last: Color::Red }, 0)
        };
        if sent.is_err() {
            count_lost(&MIXED_LOST);
        }
    }
    // SAFETY: plain integers and a plain record, written by this program only (one CPU at a time per call; a
    // lost increment under concurrency is acceptable for the fixture), read by user space through the map.
    unsafe {
        let calls = &raw mut CALLS;
        calls.write_volatile(calls.read_volatile() + (&raw const STEP).read_volatile());
        (&raw mut LAST_SEEN).write_volatile(totals);
    }
    if let Some(slot) = LAST_TOTALS.get_ptr_mut(0) {
        // SAFETY: array slots always exist and are 8-byte aligned.
        unsafe { *slot = totals };
    }
    error!(&ctx, "types error {}", pid);
    warn!(&ctx, "types warn {}", pid);
    info!(&ctx, "types info {}", pid);
    debug!(&ctx, "types debug {}", pid);
    trace!(&ctx, "types trace {}", pid);
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
