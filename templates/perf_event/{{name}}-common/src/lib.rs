//! Types shared by the kernel-side program and user space. Every type is `#[repr(C)]` so its layout is the same on
//! both sides and is described by the object's BTF.
#![no_std]

/// The kernel's `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;

/// What one sample is counted under in the `COUNTS` map: the process and its two stacks.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SampleKey {
    /// Process id (the kernel's tgid) that was on the CPU.
    pub pid: u32,
    /// Id of the kernel stack in the `STACKS` map, or a negative errno when there was none (a process in user
    /// space) or it could not be taken.
    pub kernel_stack_id: i32,
    /// Id of the user stack in the `STACKS` map, or a negative errno (kernel threads have no user stack).
    pub user_stack_id: i32,
    /// The command name, NUL-padded.
    pub comm: [u8; COMM_LEN],
}
