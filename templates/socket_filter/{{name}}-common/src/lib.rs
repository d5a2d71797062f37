//! Types shared by the kernel-side program and user space. Every type is `#[repr(C)]` so its layout is the same on
//! both sides and is described by the object's BTF.
#![no_std]

/// One packet the raw socket saw, as sent through the `PACKETS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PacketEvent {
    /// Source address in network byte order: IPv4 in the first 4 bytes (the rest zero), or IPv6; zero for non-IP.
    pub source: [u8; 16],
    /// Destination address, like `source`.
    pub destination: [u8; 16],
    /// TCP, UDP or SCTP source port (host byte order); 0 for other protocols.
    pub source_port: u16,
    /// Destination port, like `source_port`.
    pub destination_port: u16,
    /// The link layer's protocol (EtherType, host byte order): 0x0800 IPv4, 0x86DD IPv6, 0x0806 ARP, ...
    pub ethertype: u16,
    /// The IP protocol number (6 = TCP, 17 = UDP, 1 = ICMP, 58 = ICMPv6); 0 for non-IP.
    pub protocol: u8,
    /// 4, 6, or 0 for non-IP.
    pub family: u8,
    /// Length of the packet in bytes, link-layer header included.
    pub length: u32,
    /// Index of the interface it was seen on.
    pub ifindex: u32,
    /// The kernel's packet type: 0 to this host, 1 broadcast, 2 multicast, 3 to another host, 4 sent by this host.
    pub packet_type: u32,
}
