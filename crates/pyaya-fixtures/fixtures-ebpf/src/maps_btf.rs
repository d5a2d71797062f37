//! The map types only `#[btf_map]` declares in aya-ebpf 0.2 (storage attached to sockets, inodes and cgroups, maps
//! of maps), the (deprecated) cgroup storage maps, and record values typed from BTF. Tests create them and use them
//! from user space.
#![no_std]
#![no_main]
#![expect(deprecated, reason = "cgroup storage maps are tested although the kernel deprecates them")]

use aya_ebpf::{
    btf_maps::{
        Array, ArrayOfMaps, CgroupStorage, CgrpStorage, HashMap, HashOfMaps, InodeStorage, LpmTrie,
        PerCpuCgroupStorage, PerCpuHashMap, SkStorage,
    },
    macros::{btf_map, raw_tracepoint},
    programs::RawTracePointContext,
};

#[btf_map]
static MAPS_SK_STORAGE: SkStorage<u64> = SkStorage::new();
#[btf_map]
static MAPS_INODE_STORAGE: InodeStorage<u64> = InodeStorage::new();
#[btf_map]
static MAPS_CGRP_STORAGE: CgrpStorage<u64> = CgrpStorage::new();
#[btf_map]
static MAPS_CGROUP_STORAGE: CgroupStorage<u64> = CgroupStorage::new();
#[btf_map]
static MAPS_PERCPU_CGROUP_STORAGE: PerCpuCgroupStorage<u64> = PerCpuCgroupStorage::new();
#[btf_map]
static MAPS_ARRAY_OF_MAPS: ArrayOfMaps<Array<u32, 4>, 4> = ArrayOfMaps::new();
#[btf_map]
static MAPS_HASH_OF_MAPS: HashOfMaps<u32, Array<u32, 4>, 4> = HashOfMaps::new();
/// An inner map candidate of the maps of maps' shape.
#[btf_map]
static MAPS_INNER: Array<u32, 4> = Array::new();
#[btf_map]
static MAPS_BTF_HASH: HashMap<u32, u64, 16> = HashMap::new();

/// A record value, typed from BTF in the maps below.
#[repr(C)]
pub struct Route {
    pub gateway: u32,
    pub metric: u16,
    pub _pad: u16,
}

/// An LPM trie: its BTF key is aya's `Key<[u8; 4]>` (prefix length + data), which user space splits.
#[btf_map]
static MAPS_BTF_LPM: LpmTrie<[u8; 4], Route, 16> = LpmTrie::new();
/// Per-CPU record values.
#[btf_map]
static MAPS_BTF_PERCPU: PerCpuHashMap<u32, Route, 16> = PerCpuHashMap::new();

/// Touches the inner map, so the object has a program (never attached by the tests).
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn maps_btf_probe(_ctx: RawTracePointContext) -> i32 {
    MAPS_INNER.get(0).map_or(0, |value| *value as i32)
}

/// The license the kernel reads before it lets a program call GPL-only helpers (`bpf_probe_read_*`,
/// `bpf_get_stackid`, ...). aya assumes GPL where an object has none; libbpf and cilium/ebpf do not.
#[no_mangle]
#[link_section = "license"]
pub static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
