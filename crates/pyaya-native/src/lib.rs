//! `pyaya._native`: aya's loader for Python. This crate owns every fd and all unsafe code; the `pyaya` package
//! gives the API its Pythonic shape on top.

mod ebpf;
mod errors;
mod inspect;
mod links;
mod logs;
mod map_ops;
mod maps;
mod names;
mod perf;
mod programs_tracing;
mod sys;

use pyo3::prelude::*;

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
    module.add("AYA_VERSION", "0.14")?;
    Ok(())
}
