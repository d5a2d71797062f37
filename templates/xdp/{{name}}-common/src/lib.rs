//! Types shared by the kernel-side program and user space. Every type is `#[repr(C)]` so its layout is the same on
//! both sides and is described by the object's BTF.
#![no_std]

/// Slots of the `PACKETS` and `BYTES` arrays: one per IP protocol number (6 = TCP, 17 = UDP, 1 = ICMP, ...).
pub const PROTOCOL_SLOTS: u32 = 256;
/// The slot counting frames that are neither IPv4 nor IPv6 (ARP, LLDP, ...). 255 is IANA's reserved protocol number,
/// never seen on the wire.
pub const NOT_IP: u32 = 255;

/// One packet dropped because its IPv4 source address is in `DROP_LIST`, as sent through the `DROPPED` ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DropEvent {
    /// IPv4 source address, in network byte order (the packet's own bytes).
    pub source: [u8; 4],
    /// IPv4 destination address, in network byte order.
    pub destination: [u8; 4],
    /// Length of the frame in bytes.
    pub length: u32,
    /// Index of the interface the frame arrived on.
    pub ifindex: u32,
    /// The IP protocol number (6 = TCP, 17 = UDP, 1 = ICMP).
    pub protocol: u8,
    /// Explicit padding, so no byte of the record is left uninitialised.
    pub padding: [u8; 3],
}
