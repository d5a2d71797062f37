//! Types shared by the kernel-side program and user space. Every type is `#[repr(C)]` so its layout is the same on
//! both sides and is described by the object's BTF.
#![no_std]

/// Bytes of a message's start kept in `MessageEvent::head`.
pub const HEAD_LEN: usize = 16;

/// One message sent on a socket of the `SOCKETS` map, as sent through the `MESSAGES` ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MessageEvent {
    /// Local port of the sending socket (host byte order).
    pub local_port: u16,
    /// Remote port of the sending socket (host byte order).
    pub remote_port: u16,
    /// Size of the message in bytes.
    pub size: u32,
    /// 1 when the message was handed straight to the peer socket's receive queue, 0 when it went through TCP.
    pub redirected: u32,
    /// How many bytes of `head` are the message's.
    pub head_len: u32,
    /// The message's first bytes.
    pub head: [u8; HEAD_LEN],
}

/// Messages and bytes sent from one local port to one remote port: the value of the `ROUTES` map, whose key is
/// `local_port << 16 | remote_port`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RouteStats {
    pub messages: u64,
    pub bytes: u64,
    /// Of `messages`, how many were redirected to the peer socket.
    pub redirected: u64,
}
