//! Types shared by the kernel-side program and user space. Every type is `#[repr(C)]` so its layout is the same on
//! both sides and is described by the object's BTF.
#![no_std]

/// Bytes kept of the checked object's name; longer names are cut.
pub const NAME_LEN: usize = 256;
/// The kernel's `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;

/// One call of the hook, as sent through the `EVENTS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Check {
    /// Process id (the kernel's tgid) of the task being checked.
    pub pid: u32,
    /// Its real user id.
    pub uid: u32,
    /// The decision so far (0: allowed; a negative errno when an earlier BPF LSM program denied). This program
    /// returns it unchanged.
    pub decision: i32,
    /// Length of `name` in bytes, without the terminating NUL.
    pub name_len: u32,
    /// The task's command name, NUL-padded.
    pub comm: [u8; COMM_LEN],
    /// What is checked: the program's path (`bprm_check_security`) or the file's name (`file_open`), NUL-terminated.
    pub name: [u8; NAME_LEN],
}
