//! Types shared by the kernel-side program and user space. Every type is `#[repr(C)]` so its layout is the same on
//! both sides and is described by the object's BTF.
#![no_std]

/// Bytes kept of the executed file's path; longer paths are cut.
pub const FILENAME_LEN: usize = 256;
/// The kernel's `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;
/// Bytes kept of a cgroup's name (a container runtime's `docker-<64 hex digits>.scope` fits); longer names are cut.
pub const CGROUP_LEN: usize = 128;
/// The kernel's `__NEW_UTS_LEN + 1`: a UTS nodename (hostname) and its NUL.
pub const NODENAME_LEN: usize = 65;

/// A cgroup's name, the key of `CGROUP_EXECS`: NUL-terminated, zero-padded (so equal names are equal keys).
pub type CgroupName = [u8; CGROUP_LEN];

/// One exec, as sent through the `EVENTS` ring buffer. The fields are ordered so that every array starts 8-byte
/// aligned (no padding inside the record).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    /// The id of the process's cgroup in the default (v2) hierarchy: the inode number of its folder under the
    /// cgroup v2 mount.
    pub cgroup_id: u64,
    /// Process id (the kernel's tgid) of the process that called exec.
    pub pid: u32,
    /// Process id of its parent (`real_parent`).
    pub ppid: u32,
    /// Process id of its parent's parent.
    pub gppid: u32,
    /// Real user id of the process.
    pub uid: u32,
    /// The process's command name after the exec (the new program's), NUL-padded.
    pub comm: [u8; COMM_LEN],
    /// The parent's command name.
    pub pcomm: [u8; COMM_LEN],
    /// The grandparent's command name.
    pub gpcomm: [u8; COMM_LEN],
    /// The name of the process's cgroup in the default (v2) hierarchy (its folder's name; `/` for the root).
    pub cgroup: CgroupName,
    /// The path of the executed file as the kernel resolved it, NUL-terminated.
    pub filename: [u8; FILENAME_LEN],
    /// The nodename (hostname) of the process's UTS namespace: a container's hostname.
    pub nodename: [u8; NODENAME_LEN],
}
