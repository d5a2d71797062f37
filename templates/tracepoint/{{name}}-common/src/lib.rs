//! Types shared by the kernel-side program and user space. Every type is `#[repr(C)]` so its layout is the same on
//! both sides and is described by the object's BTF.
#![no_std]

/// Bytes kept of the executed file's path; longer paths are cut.
pub const FILENAME_LEN: usize = 256;
/// The kernel's `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;

/// One `execve` call, as sent through the `EVENTS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    /// Process id (the kernel's tgid) of the caller.
    pub pid: u32,
    /// Process id of the caller's parent.
    pub ppid: u32,
    /// Real user id of the caller.
    pub uid: u32,
    /// Length of `filename` in bytes, without the terminating NUL.
    pub filename_len: u32,
    /// The caller's command name before the exec, NUL-padded.
    pub comm: [u8; COMM_LEN],
    /// The path passed to execve, NUL-terminated.
    pub filename: [u8; FILENAME_LEN],
}
