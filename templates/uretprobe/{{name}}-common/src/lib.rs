//! Types shared by the kernel-side program and user space. Every type is `#[repr(C)]` so its layout is the same on
//! both sides and is described by the object's BTF.
#![no_std]

/// The kernel's `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;
/// Bytes kept of each returned line; longer lines are cut.
pub const LINE_LEN: usize = 256;

/// One return of the probed function, as sent through the `EVENTS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LineEvent {
    /// Process id (the kernel's tgid) of the caller.
    pub pid: u32,
    /// Real user id of the caller.
    pub uid: u32,
    /// Length of `line` in bytes, without the terminating NUL.
    pub line_len: u32,
    pub _padding: u32,
    /// The caller's command name, NUL-padded.
    pub comm: [u8; COMM_LEN],
    /// The returned string, NUL-terminated.
    pub line: [u8; LINE_LEN],
}
