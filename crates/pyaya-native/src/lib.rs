//! `pyaya._native`: aya's loader for Python. This crate owns every fd and all unsafe code; the `pyaya` package
//! gives the API its Pythonic shape on top.

mod btf;
mod cookie_links;
mod ebpf;
mod errors;
mod features;
mod globals;
mod inspect;
mod links;
mod load_options;
mod logs;
mod map_ops;
mod map_shared;
mod maps;
mod multi_load;
mod names;
mod netlink;
mod object_pass;
mod perf;
mod perf_link;
mod pinning;
mod process;
mod program_types;
mod programs_common;
mod programs_multi;
mod programs_net;
mod programs_tracing;
mod record_decode;
mod sys;
mod testrun;
mod usdt;

use pyo3::prelude::*;

#[pyaya_guard::guard(Load)]
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<ebpf::Ebpf>()?;
    module.add_class::<ebpf::Program>()?;
    module.add_class::<links::Link>()?;
    module.add_class::<maps::Map>()?;
    module.add_class::<map_ops::BatchChunks>()?;
    module.add_class::<record_decode::RecordPlan>()?;
    module.add_class::<maps::RingBuf>()?;
    module.add_class::<perf::PerfEventArray>()?;
    module.add_function(wrap_pyfunction!(inspect::inspect_object, module)?)?;
    module.add_function(wrap_pyfunction!(ebpf::loaded_programs, module)?)?;
    module.add_function(wrap_pyfunction!(ebpf::loaded_links, module)?)?;
    module.add_function(wrap_pyfunction!(ebpf::loaded_maps, module)?)?;
    module.add_function(wrap_pyfunction!(programs_common::pin_by_id, module)?)?;
    module.add_function(wrap_pyfunction!(ebpf::wait_for_running_programs, module)?)?;
    module.add_function(wrap_pyfunction!(perf::perf_lost_count_supported, module)?)?;
    module.add_class::<btf::Btf>()?;
    module.add_function(wrap_pyfunction!(btf::kernel_member_offsets, module)?)?;
    module.add_function(wrap_pyfunction!(btf::parse_rust_type, module)?)?;
    module.add_function(wrap_pyfunction!(btf::rust_type_arguments, module)?)?;
    module.add_function(wrap_pyfunction!(btf::unescape_name, module)?)?;
    module.add_function(wrap_pyfunction!(btf::btf_to_c_header, module)?)?;
    module.add_function(wrap_pyfunction!(btf::btf_from_dwarf, module)?)?;
    module.add_function(wrap_pyfunction!(inspect::read_elf, module)?)?;
    module.add_function(wrap_pyfunction!(inspect::object_line_info, module)?)?;
    module.add_class::<programs_common::RunStats>()?;
    module.add_function(wrap_pyfunction!(programs_common::enable_stats, module)?)?;
    module.add_function(wrap_pyfunction!(
        programs_common::pinned_program_target,
        module
    )?)?;
    module.add_function(wrap_pyfunction!(
        programs_tracing::perf_event_names,
        module
    )?)?;
    module.add_function(wrap_pyfunction!(programs_tracing::read_iter, module)?)?;
    let program_types: Vec<&str> = features::PROGRAM_TYPES
        .iter()
        .map(|(name, _)| *name)
        .collect();
    module.add(
        "PROGRAM_TYPES",
        pyo3::types::PyTuple::new(module.py(), program_types)?,
    )?;
    module.add(
        "MAP_TYPES",
        pyo3::types::PyTuple::new(module.py(), names::MAP_KINDS)?,
    )?;
    module.add_function(wrap_pyfunction!(features::program_supported, module)?)?;
    module.add_function(wrap_pyfunction!(features::map_supported, module)?)?;
    module.add_function(wrap_pyfunction!(features::helper_supported, module)?)?;
    module.add_function(wrap_pyfunction!(features::helper_known, module)?)?;
    module.add_class::<globals::GlobalArea>()?;
    module.add(
        "HELPERS",
        pyo3::types::PyTuple::new(module.py(), features::helper_names())?,
    )?;
    module.add_function(wrap_pyfunction!(features::kernel_features, module)?)?;
    module.add_function(wrap_pyfunction!(features::map_create_errno, module)?)?;
    module.add_function(wrap_pyfunction!(features::lookup_batch_errno, module)?)?;
    module.add_function(wrap_pyfunction!(features::tcx_query_errno, module)?)?;
    module.add_function(wrap_pyfunction!(features::enable_stats_errno, module)?)?;
    module.add_function(wrap_pyfunction!(features::btf_program_errno, module)?)?;
    module.add_function(wrap_pyfunction!(features::uprobe_multi_errno, module)?)?;
    module.add_function(wrap_pyfunction!(features::kprobe_multi_errno, module)?)?;
    module.add_function(wrap_pyfunction!(process::set_parent_death_signal, module)?)?;
    module.add_function(wrap_pyfunction!(process::parent_death_signal, module)?)?;
    module.add_function(wrap_pyfunction!(process::join_namespace, module)?)?;
    module.add_function(wrap_pyfunction!(process::start_guard, module)?)?;
    module.add_function(wrap_pyfunction!(netlink::py_tc_filters, module)?)?;
    module.add_function(wrap_pyfunction!(programs_net::tcx_programs, module)?)?;
    module.add_function(wrap_pyfunction!(netlink::py_tc_filter_delete, module)?)?;
    module.add_function(wrap_pyfunction!(netlink::py_clsact_present, module)?)?;
    module.add_function(wrap_pyfunction!(
        netlink::py_clsact_remove_if_unused,
        module
    )?)?;
    module.add_function(wrap_pyfunction!(netlink::py_xdp_programs, module)?)?;
    module.add_function(wrap_pyfunction!(netlink::py_xdp_detach, module)?)?;
    module.add_function(wrap_pyfunction!(usdt::usdt_probes, module)?)?;
    module.add_function(wrap_pyfunction!(usdt::usdt_parse_argument, module)?)?;
    // From Cargo.lock (build.rs): the aya this module links.
    module.add("AYA_VERSION", env!("PYAYA_AYA_VERSION"))?;
    module.add("VERSION", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
