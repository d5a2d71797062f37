//! Types shared by the kernel-side programs and user space. Every type is `#[repr(C)]` so its layout is the same
//! on both sides and is described by the object's BTF.
#![no_std]

/// The kernel's `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;
/// Slots of the log2 latency histogram (`LATENCY_NS`): slot `n` counts latencies in `[2^(n-1), 2^n)` nanoseconds.
pub const HISTOGRAM_SLOTS: u32 = 64;

/// One call that took at least the chosen minimum, as sent through the `EVENTS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SlowCall {
    /// Process id (the kernel's tgid) of the caller.
    pub pid: u32,
    /// Thread id of the caller.
    pub tid: u32,
    /// Time from entry to return, in nanoseconds.
    pub latency_ns: u64,
    /// The caller's command name, NUL-padded.
    pub comm: [u8; COMM_LEN],
}
