//! Types shared by the kernel-side program and user space. Every type is `#[repr(C)]` so its layout is the same on
//! both sides and is described by the object's BTF.
#![no_std]

/// The kernel's `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;

/// One getsockopt or setsockopt call, as sent through the `EVENTS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SockoptEvent {
    /// Process id (the kernel's tgid) of the caller.
    pub pid: u32,
    /// Socket level: 1 SOL_SOCKET, 6 IPPROTO_TCP, 0 IPPROTO_IP, 41 IPPROTO_IPV6, ...
    pub level: i32,
    /// The option's number within its level (SO_RCVBUF, TCP_NODELAY, ...).
    pub optname: i32,
    /// setsockopt: the length of the caller's buffer; getsockopt: the length of the kernel's answer (the program
    /// runs after the kernel's handler).
    pub optlen: i32,
    /// getsockopt only: what the kernel's handler returned (0, or a negative errno); 0 for setsockopt.
    pub retval: i32,
    /// The socket's address family (2 AF_INET, 10 AF_INET6, 1 AF_UNIX, ...).
    pub family: u32,
    /// The socket's type (1 SOCK_STREAM, 2 SOCK_DGRAM, 3 SOCK_RAW).
    pub socket_type: u32,
    /// The socket's protocol (6 TCP, 17 UDP, ...).
    pub protocol: u32,
    /// The caller's command name, NUL-padded.
    pub comm: [u8; COMM_LEN],
}
