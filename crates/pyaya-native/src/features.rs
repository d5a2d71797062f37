//! Kernel feature probes over aya's own (`aya::sys::is_*_supported`, `aya::features()`): each loads a tiny
//! program or creates a tiny map and closes it at once, so the answer is the kernel's, not a version guess.

use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd};

use aya::maps::MapType;
use aya::programs::{LsmAttachType, ProgramType};
use aya::sys::{is_helper_supported, is_map_supported, is_program_supported, BpfHelper};
use aya_obj::generated::{
    bpf_attach_type, bpf_attr, bpf_cmd, bpf_func_id, bpf_map_type, bpf_prog_type, bpf_stats_type,
    BPF_ALU64, BPF_CALL, BPF_EXIT, BPF_JMP, BPF_K, BPF_MOV,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{chain_message, new_err, Kind};
use crate::names::map_kind;
use crate::sys;

/// Every program type name `program_supported` and `helper_supported` take (pyaya's program class names), with
/// aya's program type for it: the one table of program types, exported to Python as `_native.PROGRAM_TYPES`.
/// fentry, fexit, tp_btf and iterators are all BPF_PROG_TYPE_TRACING, which aya probes with an fentry.
pub const PROGRAM_TYPES: [(&str, ProgramType); 40] = [
    ("SocketFilter", ProgramType::SocketFilter),
    ("KProbe", ProgramType::KProbe),
    ("UProbe", ProgramType::KProbe),
    // Multi-point probes are kprobe programs with a multi attach type (`multi_load.rs`).
    ("KProbeMulti", ProgramType::KProbe),
    ("UProbeMulti", ProgramType::KProbe),
    ("SchedClassifier", ProgramType::SchedClassifier),
    ("SchedAction", ProgramType::SchedAction),
    ("TracePoint", ProgramType::TracePoint),
    ("Xdp", ProgramType::Xdp),
    ("PerfEvent", ProgramType::PerfEvent),
    ("CgroupSkb", ProgramType::CgroupSkb),
    ("CgroupSock", ProgramType::CgroupSock),
    ("LwtInput", ProgramType::LwtInput),
    ("LwtOutput", ProgramType::LwtOutput),
    ("LwtXmit", ProgramType::LwtXmit),
    ("SockOps", ProgramType::SockOps),
    ("SkSkb", ProgramType::SkSkb),
    ("CgroupDevice", ProgramType::CgroupDevice),
    ("SkMsg", ProgramType::SkMsg),
    ("RawTracePoint", ProgramType::RawTracePoint),
    ("CgroupSockAddr", ProgramType::CgroupSockAddr),
    ("LwtSeg6local", ProgramType::LwtSeg6local),
    ("LircMode2", ProgramType::LircMode2),
    ("SkReuseport", ProgramType::SkReuseport),
    ("FlowDissector", ProgramType::FlowDissector),
    ("CgroupSysctl", ProgramType::CgroupSysctl),
    ("RawTracePointWritable", ProgramType::RawTracePointWritable),
    ("CgroupSockopt", ProgramType::CgroupSockopt),
    ("Tracing", ProgramType::Tracing),
    ("FEntry", ProgramType::Tracing),
    ("FExit", ProgramType::Tracing),
    ("BtfTracePoint", ProgramType::Tracing),
    ("Iter", ProgramType::Tracing),
    ("StructOps", ProgramType::StructOps),
    ("Extension", ProgramType::Extension),
    ("Lsm", ProgramType::Lsm(LsmAttachType::Mac)),
    ("LsmCgroup", ProgramType::Lsm(LsmAttachType::Cgroup)),
    ("SkLookup", ProgramType::SkLookup),
    ("Syscall", ProgramType::Syscall),
    ("Netfilter", ProgramType::Netfilter),
];

/// aya's program type for a pyaya program class name (or the kernel's own names for types without a class).
fn program_type(name: &str) -> Option<ProgramType> {
    PROGRAM_TYPES
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, program_type)| *program_type)
}

fn unknown_program_type(name: &str) -> PyErr {
    new_err(
        Kind::NotFound,
        format!("no program type {name:?}: use a pyaya program class name such as \"Xdp\" or \"TracePoint\""),
    )
}

/// Whether the kernel loads programs of this type (`kind`: a pyaya program class name, e.g. `"Xdp"`).
#[pyaya_guard::guard(Load)]
#[pyfunction]
pub fn program_supported(py: Python<'_>, kind: &str) -> PyResult<bool> {
    let program_type = program_type(kind).ok_or_else(|| unknown_program_type(kind))?;
    py.detach(|| is_program_supported(program_type))
        .map_err(|err| {
            new_err(
                Kind::Load,
                format!("probing {kind} programs failed: {}", chain_message(&err)),
            )
        })
}

/// Whether the kernel creates maps of this type (`kind`: a pyaya map type name, e.g. `"RingBuf"`).
#[pyaya_guard::guard(Load)]
#[pyfunction]
pub fn map_supported(py: Python<'_>, kind: &str) -> PyResult<bool> {
    let number = (0..64).find(|number| map_kind(*number) == kind).ok_or_else(|| {
        new_err(
            Kind::NotFound,
            format!("no map type {kind:?}: use a pyaya map type name such as \"HashMap\" or \"RingBuf\""),
        )
    })?;
    let map_type = bpf_map_type::try_from(number)
        .ok()
        .and_then(|raw| MapType::try_from(raw).ok())
        .ok_or_else(|| {
            new_err(
                Kind::Unsupported,
                format!("aya 0.14 cannot probe {kind} maps"),
            )
        })?;
    py.detach(|| is_map_supported(map_type)).map_err(|err| {
        new_err(
            Kind::Load,
            format!("probing {kind} maps failed: {}", chain_message(&err)),
        )
    })
}

/// Whether programs of type `kind` may call the helper numbered `helper` (`enum bpf_func_id`).
#[pyaya_guard::guard(Load)]
#[pyfunction]
pub fn helper_supported(py: Python<'_>, kind: &str, helper: u32) -> PyResult<bool> {
    let program_type = program_type(kind).ok_or_else(|| unknown_program_type(kind))?;
    let helper_id = helper_of(helper).ok_or_else(|| no_such_helper(helper))?;
    py.detach(|| is_helper_supported(program_type, helper_id))
        .map_err(|err| {
            new_err(
                Kind::Load,
                format!(
                    "probing helper {helper} for {kind} programs failed: {}",
                    chain_message(&err)
                ),
            )
        })
}

/// The helper `number` as `enum bpf_func_id` knows it, checked against the enum's range.
fn helper_of(number: u32) -> Option<BpfHelper> {
    if number == 0 || number >= bpf_func_id::__BPF_FUNC_MAX_ID as u32 {
        return None;
    }
    // SAFETY: `bpf_func_id` is a `#[repr(u32)]` enum whose variants are every value from 0 to __BPF_FUNC_MAX_ID;
    // `number` was checked to be in that range.
    Some(unsafe { std::mem::transmute::<u32, BpfHelper>(number) })
}

/// Every helper's name by number (`enum bpf_func_id` of the kernel headers aya-obj was generated from, without
/// the `BPF_FUNC_` prefix; 0 is `unspec`): the names the verifier's messages use, after `bpf_`.
pub fn helper_names() -> Vec<String> {
    (0..bpf_func_id::__BPF_FUNC_MAX_ID as u32)
        .map(|number| match helper_of(number) {
            Some(helper) => format!("{helper:?}")
                .trim_start_matches("BPF_FUNC_")
                .to_owned(),
            None => "unspec".to_owned(),
        })
        .collect()
}

/// Whether the kernel knows the helper numbered `helper` at all, whichever program types may call it: a socket
/// filter calling it is refused with "invalid func" only by kernels older than the helper (the verifier checks
/// the number against its own `__BPF_FUNC_MAX_ID` before asking the program type).
#[pyaya_guard::guard(Load)]
#[pyfunction]
pub fn helper_known(py: Python<'_>, helper: u32) -> PyResult<bool> {
    let helper_id = helper_of(helper).ok_or_else(|| no_such_helper(helper))?;
    Ok(py.detach(|| {
        let call = (BPF_JMP | BPF_CALL) as u8;
        // call helper; exit: the opcode is byte 0, the helper number the 32-bit immediate at byte 4.
        let mut insns = [0u8; 16];
        insns[0] = call;
        insns[4..8].copy_from_slice(&(helper_id as u32).to_le_bytes());
        insns[8] = (BPF_JMP | BPF_EXIT) as u8;
        let (loaded, log) = load_probe(
            bpf_prog_type::BPF_PROG_TYPE_SOCKET_FILTER as u32,
            &insns,
            0,
            0,
        );
        drop(owned_fd(&loaded));
        !log.contains("invalid func ")
    }))
}

fn no_such_helper(helper: u32) -> PyErr {
    new_err(
        Kind::NotFound,
        format!(
            "no BPF helper number {helper}: helpers are numbered 1 to {} (enum bpf_func_id)",
            bpf_func_id::__BPF_FUNC_MAX_ID as u32 - 1
        ),
    )
}

/// What aya detected about this kernel when it first loaded an object (BTF kinds, bpf_link for perf events...).
#[pyaya_guard::guard(Load)]
#[pyfunction]
pub fn kernel_features(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let features = py.detach(aya::features);
    let dict = PyDict::new(py);
    dict.set_item("bpf_name", features.bpf_name())?;
    dict.set_item("probe_read_kernel", features.bpf_probe_read_kernel())?;
    dict.set_item("perf_link", features.bpf_perf_link())?;
    dict.set_item("global_data", features.bpf_global_data())?;
    dict.set_item("cookie", features.bpf_cookie())?;
    dict.set_item("cpumap_prog_id", features.cpumap_prog_id())?;
    dict.set_item("devmap_prog_id", features.devmap_prog_id())?;
    let btf = features.btf();
    dict.set_item("btf", btf.is_some())?;
    if let Some(btf) = btf {
        dict.set_item("btf_func", btf.btf_func())?;
        dict.set_item("btf_func_global", btf.btf_func_global())?;
        dict.set_item("btf_datasec", btf.btf_datasec())?;
        dict.set_item("btf_datasec_zero", btf.btf_datasec_zero())?;
        dict.set_item("btf_float", btf.btf_float())?;
        dict.set_item("btf_decl_tag", btf.btf_decl_tag())?;
        dict.set_item("btf_type_tag", btf.btf_type_tag())?;
        dict.set_item("btf_enum64", btf.btf_enum64())?;
    }
    Ok(dict)
}

// -- probes aya does not have --------------------------------------------------------------------------------------
// Each answers with the kernel's errno (0 for success) so that `pyaya.features` words the reason; attributes are
// aya-obj's generated `bpf_attr`, never hand-counted offsets.

/// A zeroed `bpf_attr`: every command reads only its own union member and needs the rest zero.
fn zeroed_attr() -> bpf_attr {
    // SAFETY: `bpf_attr` is a union of plain integer structs (bindgen's output for the kernel's header); all zero
    // bytes is a valid value of each member, and the kernel requires unused bytes to be zero.
    unsafe { std::mem::zeroed() }
}

fn errno_of(result: &std::io::Result<libc::c_long>) -> i32 {
    match result {
        Ok(_) => 0,
        Err(error) => error.raw_os_error().unwrap_or(libc::EIO),
    }
}

/// Takes ownership of the fd a successful command returned, so that it is closed when dropped.
fn owned_fd(result: &std::io::Result<libc::c_long>) -> Option<OwnedFd> {
    let fd = result
        .as_ref()
        .ok()
        .and_then(|fd| i32::try_from(*fd).ok())?;
    // SAFETY: the kernel just returned this fd for an object created by this call; nothing else holds it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bpf_command(command: bpf_cmd, attr: &mut bpf_attr) -> std::io::Result<libc::c_long> {
    sys::bpf(command as libc::c_long, attr)
}

fn create_map(map_type: bpf_map_type) -> std::io::Result<libc::c_long> {
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_1.map_type = map_type as u32;
    attr.__bindgen_anon_1.key_size = 4;
    attr.__bindgen_anon_1.value_size = 4;
    attr.__bindgen_anon_1.max_entries = 1;
    bpf_command(bpf_cmd::BPF_MAP_CREATE, &mut attr)
}

/// `BPF_MAP_CREATE` of a one-entry array map, closed at once: the errno (0 when it worked).
#[pyaya_guard::guard(Load)]
#[pyfunction]
pub fn map_create_errno(py: Python<'_>) -> i32 {
    py.detach(|| {
        let created = create_map(bpf_map_type::BPF_MAP_TYPE_ARRAY);
        drop(owned_fd(&created));
        errno_of(&created)
    })
}

/// `BPF_MAP_LOOKUP_BATCH` of one entry of an empty hash map: `(create errno, batch errno)`; the batch errno is
/// ENOENT when the kernel walked the map to its end (batched operations exist).
#[pyaya_guard::guard(Load)]
#[pyfunction]
pub fn lookup_batch_errno(py: Python<'_>) -> (i32, i32) {
    py.detach(|| {
        let created = create_map(bpf_map_type::BPF_MAP_TYPE_HASH);
        let Some(map) = owned_fd(&created) else {
            return (errno_of(&created), 0);
        };
        let (mut out_batch, mut key, mut value) = ([0u8; 8], [0u8; 8], [0u8; 8]);
        let mut attr = zeroed_attr();
        attr.batch.out_batch = out_batch.as_mut_ptr() as u64;
        attr.batch.keys = key.as_mut_ptr() as u64;
        attr.batch.values = value.as_mut_ptr() as u64;
        attr.batch.count = 1;
        attr.batch.map_fd = map.as_raw_fd() as u32;
        // The buffers hold one 4-byte key, one 4-byte value and the hash map's 4-byte batch token.
        let result = bpf_command(bpf_cmd::BPF_MAP_LOOKUP_BATCH, &mut attr);
        (0, errno_of(&result))
    })
}

/// `BPF_PROG_QUERY` of tcx ingress on lo (ifindex 1): `(errno, programs attached)`.
#[pyaya_guard::guard(Load)]
#[pyfunction]
pub fn tcx_query_errno(py: Python<'_>) -> (i32, u32) {
    py.detach(|| {
        let mut attr = zeroed_attr();
        attr.query.__bindgen_anon_1.target_ifindex = 1;
        attr.query.attach_type = bpf_attach_type::BPF_TCX_INGRESS as u32;
        let result = bpf_command(bpf_cmd::BPF_PROG_QUERY, &mut attr);
        // SAFETY: `prog_cnt` and `count` are the two u32 names of one union; the kernel wrote it on success and
        // it was zero before.
        let count = unsafe { attr.query.__bindgen_anon_2.prog_cnt };
        (errno_of(&result), count)
    })
}

/// `BPF_ENABLE_STATS(BPF_STATS_RUN_TIME)`, its fd closed at once: the errno (0 when it worked).
#[pyaya_guard::guard(Load)]
#[pyfunction]
pub fn enable_stats_errno(py: Python<'_>) -> i32 {
    py.detach(|| {
        let mut attr = zeroed_attr();
        attr.enable_stats.type_ = bpf_stats_type::BPF_STATS_RUN_TIME as u32;
        let result = bpf_command(bpf_cmd::BPF_ENABLE_STATS, &mut attr);
        drop(owned_fd(&result));
        errno_of(&result)
    })
}

/// How a BTF-based program type is loaded and attached by [`btf_program_errno`].
enum Attach {
    /// `BPF_RAW_TRACEPOINT_OPEN` with no name: builds the trampoline (fentry, fexit, tp_btf, lsm).
    RawTracepointOpen,
    /// `BPF_LINK_CREATE` with the program's attach type (iterators).
    LinkCreate,
    /// Loading only: attaching needs a target of the caller's (lsm_cgroup needs a cgroup).
    LoadOnly,
}

fn btf_program_kind(kind: &str) -> Option<(bpf_prog_type, bpf_attach_type, Attach)> {
    use bpf_attach_type::{
        BPF_LSM_CGROUP, BPF_LSM_MAC, BPF_TRACE_FENTRY, BPF_TRACE_FEXIT, BPF_TRACE_ITER,
        BPF_TRACE_RAW_TP,
    };
    use bpf_prog_type::{BPF_PROG_TYPE_LSM, BPF_PROG_TYPE_TRACING};
    Some(match kind {
        "FEntry" => (
            BPF_PROG_TYPE_TRACING,
            BPF_TRACE_FENTRY,
            Attach::RawTracepointOpen,
        ),
        "FExit" => (
            BPF_PROG_TYPE_TRACING,
            BPF_TRACE_FEXIT,
            Attach::RawTracepointOpen,
        ),
        "BtfTracePoint" => (
            BPF_PROG_TYPE_TRACING,
            BPF_TRACE_RAW_TP,
            Attach::RawTracepointOpen,
        ),
        "Iter" => (BPF_PROG_TYPE_TRACING, BPF_TRACE_ITER, Attach::LinkCreate),
        "Lsm" => (BPF_PROG_TYPE_LSM, BPF_LSM_MAC, Attach::RawTracepointOpen),
        "LsmCgroup" => (BPF_PROG_TYPE_LSM, BPF_LSM_CGROUP, Attach::LoadOnly),
        _ => return None,
    })
}

/// The verifier log's size: a 2-instruction program's log is a few lines.
const PROBE_LOG_SIZE: usize = 4096;

/// `BPF_PROG_LOAD` of the 2-instruction program `insns` (named `pyaya_probe`, GPL) of `program_type`, with its
/// attach type and BTF target where it needs them: the kernel's answer (a new fd, to be owned by the caller) and
/// the verifier's log.
fn load_probe(
    program_type: u32,
    insns: &[u8; 16],
    expected_attach_type: u32,
    attach_btf_id: u32,
) -> (std::io::Result<libc::c_long>, String) {
    let license = c"GPL";
    let mut log = vec![0u8; PROBE_LOG_SIZE];
    let mut attr = zeroed_attr();
    // SAFETY: the union is zeroed plain integers, so its program-load member is initialised; only that member
    // is written, and BPF_PROG_LOAD reads only it.
    let load = unsafe { &mut attr.__bindgen_anon_3 };
    load.prog_type = program_type;
    load.insn_cnt = 2;
    load.insns = insns.as_ptr() as u64;
    load.license = license.as_ptr() as u64;
    load.log_level = 1;
    load.log_size = PROBE_LOG_SIZE as u32;
    load.log_buf = log.as_mut_ptr() as u64;
    for (slot, byte) in load.prog_name.iter_mut().zip(b"pyaya_probe") {
        *slot = *byte as libc::c_char;
    }
    load.expected_attach_type = expected_attach_type;
    load.attach_btf_id = attach_btf_id;
    let loaded = bpf_command(bpf_cmd::BPF_PROG_LOAD, &mut attr);
    let log_end = log.iter().position(|byte| *byte == 0).unwrap_or(log.len());
    let log = String::from_utf8_lossy(log.get(..log_end).unwrap_or_default()).into_owned();
    (loaded, log)
}

/// Loads a 2-instruction program (`r0 = 0; exit`) of the BTF-based type `kind` (`"FEntry"`, `"FExit"`,
/// `"BtfTracePoint"`, `"Iter"`, `"Lsm"`, `"LsmCgroup"`) on vmlinux's BTF type `btf_type_id`, then attaches it as
/// that type attaches; every fd is closed before returning. Answers `(load errno, verifier log, attach errno)`:
/// errnos are 0 for success, the attach errno is None when attaching was not tried (the load failed, or
/// `LsmCgroup`, whose attach needs a cgroup).
#[pyaya_guard::guard(Load)]
#[pyfunction]
pub fn btf_program_errno(
    py: Python<'_>,
    kind: &str,
    btf_type_id: u32,
) -> PyResult<(i32, String, Option<i32>)> {
    let (program_type, attach_type, attach) = btf_program_kind(kind).ok_or_else(|| {
        new_err(
            Kind::NotFound,
            format!("{kind:?} is not a BTF-based program type: one of FEntry, FExit, BtfTracePoint, Iter, Lsm, LsmCgroup"),
        )
    })?;
    Ok(py.detach(|| {
        // r0 = 0 (BPF_ALU64 | BPF_MOV | BPF_K); exit (BPF_JMP | BPF_EXIT): byte 0 of each instruction is its opcode.
        let mut insns = [0u8; 16];
        insns[0] = (BPF_ALU64 | BPF_MOV | BPF_K) as u8;
        insns[8] = (BPF_JMP | BPF_EXIT) as u8;
        let (loaded, log) =
            load_probe(program_type as u32, &insns, attach_type as u32, btf_type_id);
        let Some(program) = owned_fd(&loaded) else {
            return (errno_of(&loaded), log, None);
        };
        let mut attr = zeroed_attr();
        let attached = match attach {
            Attach::LoadOnly => return (0, log, None),
            Attach::RawTracepointOpen => {
                attr.raw_tracepoint.prog_fd = program.as_raw_fd() as u32;
                bpf_command(bpf_cmd::BPF_RAW_TRACEPOINT_OPEN, &mut attr)
            }
            Attach::LinkCreate => {
                attr.link_create.__bindgen_anon_1.prog_fd = program.as_raw_fd() as u32;
                attr.link_create.attach_type = attach_type as u32;
                bpf_command(bpf_cmd::BPF_LINK_CREATE, &mut attr)
            }
        };
        drop(owned_fd(&attached));
        (0, log, Some(errno_of(&attached)))
    }))
}

/// libbpf's probe of uprobe_multi links (6.6): a 2-instruction kprobe program loaded with the
/// `BPF_TRACE_UPROBE_MULTI` attach type, then a link on "/" (no ELF file): a kernel that has these links answers
/// EBADF, one without them EINVAL. Answers `(load errno, link errno)`, 0 for success; the link errno is None when
/// the load failed. Every fd is closed before returning.
#[pyaya_guard::guard(Load)]
#[pyfunction]
pub fn uprobe_multi_errno(py: Python<'_>) -> (i32, Option<i32>) {
    py.detach(|| multi_probe_errno(crate::sys::BPF_TRACE_UPROBE_MULTI))
}

/// The probe of kprobe_multi links (5.18 with CONFIG_FPROBE): the same program loaded for
/// `BPF_TRACE_KPROBE_MULTI` and linked, for a moment, on `bpf_fentry_test1` (a function the kernel keeps for BPF
/// tests). Answers `(load errno, link errno)` as `uprobe_multi_errno` does; every fd is closed before returning.
#[pyaya_guard::guard(Load)]
#[pyfunction]
pub fn kprobe_multi_errno(py: Python<'_>) -> (i32, Option<i32>) {
    py.detach(|| multi_probe_errno(crate::sys::BPF_TRACE_KPROBE_MULTI))
}

fn multi_probe_errno(attach_type: u32) -> (i32, Option<i32>) {
    {
        // r0 = 0 (BPF_ALU64 | BPF_MOV | BPF_K); exit (BPF_JMP | BPF_EXIT): each opcode in the low byte.
        let instructions = [
            u64::from(BPF_ALU64 | BPF_MOV | BPF_K),
            u64::from(BPF_JMP | BPF_EXIT),
        ];
        let program = match crate::sys::load_kprobe_program(
            &instructions,
            c"GPL",
            0,
            "pyaya_probe",
            attach_type,
            0,
        ) {
            Ok(program) => program,
            Err((err, _)) => return (err.raw_os_error().unwrap_or(libc::EIO), None),
        };
        let linked = if attach_type == crate::sys::BPF_TRACE_KPROBE_MULTI {
            crate::sys::link_kprobe_multi(
                program.as_fd(),
                &[c"bpf_fentry_test1".to_owned()],
                &[],
                false,
            )
        } else {
            crate::sys::link_uprobe_multi(program.as_fd(), c"/", &[0], &[], 0, false)
        };
        let errno = match linked {
            Ok(_) => 0,
            Err(err) => err.raw_os_error().unwrap_or(libc::EIO),
        };
        (0, Some(errno))
    }
}
