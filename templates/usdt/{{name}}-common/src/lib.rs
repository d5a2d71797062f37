//! Types shared by the kernel-side program and user space. Every type is `#[repr(C)]` so its layout is the same
//! on both sides and is described by the object's BTF.
#![no_std]

/// The kernel's `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;
/// Arguments sent per hit (a probe has at most 12; the rest are counted in `count` but not sent).
pub const ARGS: usize = 6;
/// Bytes kept of each argument read as a string; longer ones are cut.
pub const TEXT_LEN: usize = 64;

/// One hit of the probe, as sent through the `EVENTS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ProbeHit {
    /// Process id (the kernel's tgid) of the process at the probe.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// How many arguments the probe has.
    pub count: u32,
    /// Bit `n` set when argument `n` was read.
    pub read: u32,
    /// The arguments, sign-extended when the probe declares them signed.
    pub args: [i64; ARGS],
    /// The command name of the process, NUL-padded.
    pub comm: [u8; COMM_LEN],
    /// The first three arguments read as NUL-terminated strings (empty when one is not a readable pointer).
    pub text0: [u8; TEXT_LEN],
    pub text1: [u8; TEXT_LEN],
    pub text2: [u8; TEXT_LEN],
}
