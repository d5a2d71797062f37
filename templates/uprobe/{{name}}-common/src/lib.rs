//! Types shared by the kernel-side programs and user space. Every type is `#[repr(C)]` so its layout is the same
//! on both sides and is described by the object's BTF.
#![no_std]

/// The kernel's `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;
/// Bytes kept of the first argument when it is a string (a host name for getaddrinfo); longer ones are cut.
pub const ARG_LEN: usize = 128;

/// What the entry probe remembers about a call in progress, keyed by thread (`STARTS`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CallStart {
    /// `bpf_ktime_get_ns()` at entry.
    pub start_ns: u64,
    /// The first argument's raw value.
    pub arg0: u64,
    /// The first argument read as a NUL-terminated string; empty when it is not a readable pointer.
    pub arg: [u8; ARG_LEN],
}

/// One finished call, as sent through the `EVENTS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CallEvent {
    /// Process id (the kernel's tgid) of the caller.
    pub pid: u32,
    /// Thread id of the caller.
    pub tid: u32,
    /// Time from entry to return, in nanoseconds.
    pub latency_ns: u64,
    /// The return value register, whole (getaddrinfo returns an int: 0, or an `EAI_*` error code, in its low half).
    pub ret: u64,
    /// The first argument's raw value.
    pub arg0: u64,
    /// The caller's command name, NUL-padded.
    pub comm: [u8; COMM_LEN],
    /// The first argument read as a string, NUL-terminated (empty when it is not one).
    pub arg: [u8; ARG_LEN],
}
