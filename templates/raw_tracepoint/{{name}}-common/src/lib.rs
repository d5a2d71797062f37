//! Types shared by the kernel-side program and user space. Every type is `#[repr(C)]` so its layout is the same on
//! both sides and is described by the object's BTF.
#![no_std]

/// The kernel's `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;

/// A process's command name (NUL-padded), the value of the `PROCESS_NAMES` map.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Comm {
    pub name: [u8; COMM_LEN],
}
