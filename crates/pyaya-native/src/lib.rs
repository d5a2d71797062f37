//! `pyaya._native`: aya's loader for Python. This crate owns every fd and all unsafe code; the `pyaya` package
//! gives the API its Pythonic shape on top.

mod btf;
mod ebpf;
mod errors;
mod features;
mod inspect;
mod links;
mod logs;
mod map_ops;
mod maps;
mod names;
mod perf;
mod pinning;
mod programs_common;
mod programs_net;
mod programs_tracing;
mod sys;
mod testrun;

use pyo3::prelude::*;

#[pyaya_guard::guard(Load)]
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<ebpf::Ebpf>()?;
    module.add_class::<ebpf::Program>()?;
    module.add_class::<links::Link>()?;
    module.add_class::<maps::Map>()?;
    module.add_class::<maps::RingBuf>()?;
    module.add_class::<perf::PerfEventArray>()?;
    module.add_function(wrap_pyfunction!(inspect::inspect_object, module)?)?;
    module.add_function(wrap_pyfunction!(ebpf::loaded_programs, module)?)?;
    module.add_class::<btf::Btf>()?;
    module.add_function(wrap_pyfunction!(btf::kernel_member_offsets, module)?)?;
    module.add_function(wrap_pyfunction!(btf::parse_rust_type, module)?)?;
    module.add_function(wrap_pyfunction!(btf::rust_type_arguments, module)?)?;
    module.add_function(wrap_pyfunction!(btf::unescape_name, module)?)?;
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
    module.add_function(wrap_pyfunction!(features::program_supported, module)?)?;
    module.add_function(wrap_pyfunction!(features::map_supported, module)?)?;
    module.add_function(wrap_pyfunction!(features::helper_supported, module)?)?;
    module.add_function(wrap_pyfunction!(features::kernel_features, module)?)?;
    module.add("AYA_VERSION", "0.14")?;
    Ok(())
}
