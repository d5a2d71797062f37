//! Types shared by the kernel-side program and user space. Every type is `#[repr(C)]` so its layout is the same on
//! both sides and is described by the object's BTF.
#![no_std]

/// Bytes kept of the executed file's path; longer paths are cut.
pub const FILENAME_LEN: usize = 256;
/// The kernel's `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;

/// One hit of the tracepoint (one exec for `sched_process_exec`), as sent through the `EVENTS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    /// Process id (the kernel's tgid) of the current task.
    pub pid: u32,
    /// The pid the task had before the exec (differs from `pid` when a thread other than the leader called execve).
    pub old_pid: u32,
    /// Real user id of the current task.
    pub uid: u32,
    /// Length of `filename` in bytes, without the terminating NUL.
    pub filename_len: u32,
    /// The task's command name (after an exec: the new program's), NUL-padded.
    pub comm: [u8; COMM_LEN],
    /// The path of the executed file as the kernel resolved it (`linux_binprm.filename`), NUL-terminated.
    pub filename: [u8; FILENAME_LEN],
}
