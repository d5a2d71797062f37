//! pyaya's lost-record convention, shared by the fixtures that write streams: a ring buffer or perf event array
//! `NAME` has a companion per-CPU array `NAME_LOST` whose entry 0 counts what the program could not write
//! (`RingBuf.lost` and `PerfEventArray.lost` add it up; `pyaya run` reports it).

use aya_ebpf::{
    bindings::BPF_F_CURRENT_CPU,
    btf_maps::{PerCpuArray, PerfEventArray},
    helpers::bpf_perf_event_output,
    EbpfContext,
};

/// `-ENOSPC`: the perf buffer was full; the perf event counts those itself.
const ENOSPC: i64 = 28;

/// Adds one to this CPU's slot 0 of `counter` (a `#[btf_map]` per-CPU array of one u64).
pub fn count_lost(counter: &PerCpuArray<u64, 1>) {
    if let Some(count) = counter.get_ptr_mut(0) {
        // SAFETY: this CPU's value of a per-CPU array; a program runs to its end before another starts on the CPU.
        unsafe { *count += 1 };
    }
}

/// `array.output(ctx, record, 0)`, counting in `lost` the outputs that failed for another reason than a full
/// buffer (aya-ebpf's `PerfEventArray::output` does not say whether the helper failed).
pub fn perf_output<C: EbpfContext, T>(ctx: &C, array: &PerfEventArray, record: &T, lost: &PerCpuArray<u64, 1>) {
    // SAFETY: `array` is a `#[btf_map]` perf event array definition, whose address is the map for the helper (as
    // aya-ebpf's own `output` passes it), and `record` is a live value of the size passed; the helper only reads
    // both.
    let result = unsafe {
        bpf_perf_event_output(
            ctx.as_ptr(),
            core::ptr::from_ref(array).cast_mut().cast(),
            u64::from(BPF_F_CURRENT_CPU),
            core::ptr::from_ref(record).cast_mut().cast(),
            core::mem::size_of::<T>() as u64,
        )
    };
    if result < 0 && result != -ENOSPC {
        count_lost(lost);
    }
}
