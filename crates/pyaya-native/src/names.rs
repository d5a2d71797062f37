//! Display names for program and map types, shared by the loader and `inspect_object`.

use aya::programs::Program;
use aya_obj::generated::bpf_map_type;

/// The pyaya class name of a loaded program's type.
pub const fn program_kind(program: &Program) -> &'static str {
    match program {
        Program::KProbe(_) => "KProbe",
        Program::UProbe(_) => "UProbe",
        Program::TracePoint(_) => "TracePoint",
        Program::SocketFilter(_) => "SocketFilter",
        Program::ReusePortSocketFilter(_) => "ReusePortSocketFilter",
        Program::Xdp(_) => "Xdp",
        Program::SkMsg(_) => "SkMsg",
        Program::SkSkb(_) => "SkSkb",
        Program::CgroupSockAddr(_) => "CgroupSockAddr",
        Program::SockOps(_) => "SockOps",
        Program::SchedClassifier(_) => "SchedClassifier",
        Program::CgroupSkb(_) => "CgroupSkb",
        Program::CgroupSysctl(_) => "CgroupSysctl",
        Program::CgroupSockopt(_) => "CgroupSockopt",
        Program::PerfEvent(_) => "PerfEvent",
        Program::RawTracePoint(_) => "RawTracePoint",
        Program::Lsm(_) => "Lsm",
        Program::LsmCgroup(_) => "LsmCgroup",
        Program::BtfTracePoint(_) => "BtfTracePoint",
        Program::FEntry(_) => "FEntry",
        Program::FExit(_) => "FExit",
        Program::FlowDissector(_) => "FlowDissector",
        Program::Extension(_) => "Extension",
        Program::SkLookup(_) => "SkLookup",
        Program::SkReuseport(_) => "SkReuseport",
        Program::CgroupSock(_) => "CgroupSock",
        Program::CgroupDevice(_) => "CgroupDevice",
        Program::Iter(_) => "Iter",
        Program::LircMode2(_) => "LircMode2",
    }
}

/// Kernel `enum bpf_map_type` values, in order, under the names pyaya's map classes use: the one table of map
/// types, exported to Python as `_native.MAP_TYPES` (index = the kernel's number).
pub const MAP_KINDS: [&str; 34] = [
    "Unspecified",
    "HashMap",
    "Array",
    "ProgramArray",
    "PerfEventArray",
    "PerCpuHashMap",
    "PerCpuArray",
    "StackTraceMap",
    "CgroupArray",
    "LruHashMap",
    "PerCpuLruHashMap",
    "LpmTrie",
    "ArrayOfMaps",
    "HashOfMaps",
    "DevMap",
    "SockMap",
    "CpuMap",
    "XskMap",
    "SockHash",
    "CgroupStorage",
    "ReusePortSockArray",
    "PerCpuCgroupStorage",
    "Queue",
    "Stack",
    "SkStorage",
    "DevMapHash",
    "StructOps",
    "RingBuf",
    "InodeStorage",
    "TaskStorage",
    "BloomFilter",
    "UserRingBuf",
    "CgrpStorage",
    "Arena",
];

/// The name of a kernel map type number (`"Unknown"` for types newer than this table).
pub fn map_kind(map_type: u32) -> &'static str {
    MAP_KINDS
        .get(map_type as usize)
        .copied()
        .unwrap_or("Unknown")
}

/// The kernel's `BPF_MAP_TYPE_RINGBUF` (aya-obj's enum).
pub const MAP_TYPE_RINGBUF: u32 = bpf_map_type::BPF_MAP_TYPE_RINGBUF as u32;
/// The kernel's `BPF_MAP_TYPE_PERF_EVENT_ARRAY` (aya-obj's enum).
pub const MAP_TYPE_PERF_EVENT_ARRAY: u32 = bpf_map_type::BPF_MAP_TYPE_PERF_EVENT_ARRAY as u32;

/// Per-CPU maps hold one value slot per possible CPU, each rounded up to 8 bytes.
pub const fn is_per_cpu(map_type: u32) -> bool {
    const PER_CPU: [bpf_map_type; 4] = [
        bpf_map_type::BPF_MAP_TYPE_PERCPU_HASH,
        bpf_map_type::BPF_MAP_TYPE_PERCPU_ARRAY,
        bpf_map_type::BPF_MAP_TYPE_LRU_PERCPU_HASH,
        bpf_map_type::BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE,
    ];
    let mut index = 0;
    while index < PER_CPU.len() {
        if PER_CPU[index] as u32 == map_type {
            return true;
        }
        index += 1;
    }
    false
}
