//! Types shared by the kernel-side program and user space. Every type is `#[repr(C)]` so its layout is the same on
//! both sides and is described by the object's BTF.
#![no_std]

/// One direction of a conversation: the key of the `FLOWS` map.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Flow {
    /// Source address in network byte order: IPv4 in the first 4 bytes (the rest zero), or IPv6.
    pub source: [u8; 16],
    /// Destination address, like `source`.
    pub destination: [u8; 16],
    /// TCP, UDP or SCTP source port (host byte order); 0 for other protocols and for IPv4 fragments.
    pub source_port: u16,
    /// Destination port, like `source_port`.
    pub destination_port: u16,
    /// The IP protocol number (6 = TCP, 17 = UDP, 1 = ICMP, 58 = ICMPv6).
    pub protocol: u8,
    /// 4 or 6.
    pub family: u8,
    /// Explicit padding: a map key must have no uninitialised byte.
    pub padding: [u8; 2],
}

/// What went through one flow: the value of the `FLOWS` map.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FlowStats {
    pub packets: u64,
    /// Bytes of the packets as the classifier saw them (from the link-layer header on).
    pub bytes: u64,
}

/// The first packet of a flow (or the first since the flow was evicted from `FLOWS`), sent through `NEW_FLOWS`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NewFlowEvent {
    pub flow: Flow,
    /// Length of the packet in bytes.
    pub length: u32,
    /// Index of the interface the classifier saw it on.
    pub ifindex: u32,
}
