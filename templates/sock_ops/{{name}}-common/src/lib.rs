//! Types shared by the kernel-side program and user space. Every type is `#[repr(C)]` so its layout is the same on
//! both sides and is described by the object's BTF.
#![no_std]

/// `TcpEvent::kind`: this host opened the connection (connect) and it is now established.
pub const ACTIVE_ESTABLISHED: u32 = 1;
/// `TcpEvent::kind`: a connection to a listening socket of this host is now established (accept).
pub const PASSIVE_ESTABLISHED: u32 = 2;
/// `TcpEvent::kind`: the connection is closed.
pub const CLOSED: u32 = 3;

/// One event of a TCP connection, as sent through the `EVENTS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TcpEvent {
    /// `ACTIVE_ESTABLISHED`, `PASSIVE_ESTABLISHED` or `CLOSED`.
    pub kind: u32,
    /// 2 (AF_INET) or 10 (AF_INET6).
    pub family: u32,
    /// Local address in network byte order: IPv4 in the first 4 bytes (the rest zero), or IPv6.
    pub local: [u8; 16],
    /// Remote address, like `local`.
    pub remote: [u8; 16],
    /// Local port (host byte order).
    pub local_port: u16,
    /// Remote port (host byte order).
    pub remote_port: u16,
    /// Smoothed round-trip time in microseconds (0 until a first sample).
    pub srtt_us: u32,
    /// Bytes this side sent that the peer acknowledged.
    pub bytes_acked: u64,
    /// Bytes this side received.
    pub bytes_received: u64,
    /// Segments retransmitted over the connection's life.
    pub total_retrans: u32,
    /// Explicit padding, so no byte of the record is left uninitialised.
    pub padding: u32,
}
