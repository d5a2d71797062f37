//! Types shared by the kernel-side program and user space. Every type is `#[repr(C)]` so its layout is the same on
//! both sides and is described by the object's BTF.
#![no_std]

/// The kernel's `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;
/// Bytes kept of a sysctl's name (`net/ipv4/ip_forward`); longer names are cut.
pub const NAME_LEN: usize = 64;
/// Bytes kept of a value; longer values are cut.
pub const VALUE_LEN: usize = 32;
/// Bytes of a name kept in the `ACCESSES` key.
pub const KEY_NAME_LEN: usize = 60;

/// One read or write of a file under /proc/sys, as sent through the `EVENTS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SysctlEvent {
    /// Process id (the kernel's tgid) of the caller.
    pub pid: u32,
    /// 1 for a write, 0 for a read.
    pub write: u32,
    /// The caller's command name, NUL-padded.
    pub comm: [u8; COMM_LEN],
    /// The sysctl's name with `/` between its parts (`kernel/ostype`), NUL-terminated.
    pub name: [u8; NAME_LEN],
    /// Its value before the access, as the file shows it, NUL-terminated.
    pub value: [u8; VALUE_LEN],
    /// For a write: what is being written, NUL-terminated; empty for a read.
    pub new_value: [u8; VALUE_LEN],
}

/// The key of `ACCESSES`: which sysctl, read or written.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Access {
    /// The start of the sysctl's name, NUL-padded.
    pub name: [u8; KEY_NAME_LEN],
    /// 1 for writes, 0 for reads.
    pub write: u32,
}
