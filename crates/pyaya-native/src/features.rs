//! Kernel feature probes over aya's own (`aya::sys::is_*_supported`, `aya::features()`): each loads a tiny
//! program or creates a tiny map and closes it at once, so the answer is the kernel's, not a version guess.

use aya::maps::MapType;
use aya::programs::{LsmAttachType, ProgramType};
use aya::sys::{is_helper_supported, is_map_supported, is_program_supported, BpfHelper};
use aya_obj::generated::{bpf_func_id, bpf_map_type};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{chain_message, new_err, Kind};
use crate::names::map_kind;

/// aya's program type for a pyaya program class name (or the kernel's own names for types without a class).
fn program_type(name: &str) -> Option<ProgramType> {
    Some(match name {
        "SocketFilter" => ProgramType::SocketFilter,
        "KProbe" | "UProbe" => ProgramType::KProbe,
        "SchedClassifier" => ProgramType::SchedClassifier,
        "SchedAction" => ProgramType::SchedAction,
        "TracePoint" => ProgramType::TracePoint,
        "Xdp" => ProgramType::Xdp,
        "PerfEvent" => ProgramType::PerfEvent,
        "CgroupSkb" => ProgramType::CgroupSkb,
        "CgroupSock" => ProgramType::CgroupSock,
        "LwtInput" => ProgramType::LwtInput,
        "LwtOutput" => ProgramType::LwtOutput,
        "LwtXmit" => ProgramType::LwtXmit,
        "SockOps" => ProgramType::SockOps,
        "SkSkb" => ProgramType::SkSkb,
        "CgroupDevice" => ProgramType::CgroupDevice,
        "SkMsg" => ProgramType::SkMsg,
        "RawTracePoint" => ProgramType::RawTracePoint,
        "CgroupSockAddr" => ProgramType::CgroupSockAddr,
        "LwtSeg6local" => ProgramType::LwtSeg6local,
        "LircMode2" => ProgramType::LircMode2,
        "SkReuseport" => ProgramType::SkReuseport,
        "FlowDissector" => ProgramType::FlowDissector,
        "CgroupSysctl" => ProgramType::CgroupSysctl,
        "RawTracePointWritable" => ProgramType::RawTracePointWritable,
        "CgroupSockopt" => ProgramType::CgroupSockopt,
        // fentry, fexit, tp_btf and iterators are all BPF_PROG_TYPE_TRACING; aya probes it with an fentry.
        "Tracing" | "FEntry" | "FExit" | "BtfTracePoint" | "Iter" => ProgramType::Tracing,
        "StructOps" => ProgramType::StructOps,
        "Extension" => ProgramType::Extension,
        "Lsm" => ProgramType::Lsm(LsmAttachType::Mac),
        "LsmCgroup" => ProgramType::Lsm(LsmAttachType::Cgroup),
        "SkLookup" => ProgramType::SkLookup,
        "Syscall" => ProgramType::Syscall,
        "Netfilter" => ProgramType::Netfilter,
        _ => return None,
    })
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
    if helper == 0 || helper >= bpf_func_id::__BPF_FUNC_MAX_ID as u32 {
        return Err(new_err(
            Kind::NotFound,
            format!(
                "no BPF helper number {helper}: helpers are numbered 1 to {} (enum bpf_func_id)",
                bpf_func_id::__BPF_FUNC_MAX_ID as u32 - 1
            ),
        ));
    }
    // SAFETY: `bpf_func_id` is a `#[repr(u32)]` enum whose variants are every value from 0 to __BPF_FUNC_MAX_ID;
    // `helper` was checked to be in that range.
    let helper_id = unsafe { std::mem::transmute::<u32, BpfHelper>(helper) };
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
        dict.set_item("btf_float", btf.btf_float())?;
        dict.set_item("btf_decl_tag", btf.btf_decl_tag())?;
        dict.set_item("btf_type_tag", btf.btf_type_tag())?;
        dict.set_item("btf_enum64", btf.btf_enum64())?;
    }
    Ok(dict)
}
