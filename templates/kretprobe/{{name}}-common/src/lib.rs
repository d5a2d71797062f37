//! Types shared by the kernel-side program and user space. Every type is `#[repr(C)]` so its layout is the same on
//! both sides and is described by the object's BTF.
#![no_std]

/// The kernel's `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;
/// Slots of the log2 histogram of results (`RESULTS`): slot `n` counts results in `[2^(n-1), 2^n)`.
pub const HISTOGRAM_SLOTS: u32 = 64;
/// The kernel's `MAX_ERRNO`: a result in `[-MAX_ERRNO, -1]` is an error (a negative errno or an `ERR_PTR`).
pub const MAX_ERRNO: i64 = 4095;

/// One call that returned an error, as sent through the `EVENTS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Failure {
    /// Process id (the kernel's tgid) of the caller.
    pub pid: u32,
    /// Thread id of the caller.
    pub tid: u32,
    /// The error, positive (`EISDIR` is 21).
    pub errno: u32,
    pub _padding: u32,
    /// The caller's command name, NUL-padded.
    pub comm: [u8; COMM_LEN],
}
