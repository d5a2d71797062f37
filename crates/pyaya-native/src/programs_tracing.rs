//! Attach calls of the tracing program types (tracepoints, probes, BTF-based tracing, perf events, iterators).

use aya::programs::Program as AyaProgram;
use pyo3::prelude::*;

use crate::ebpf::{wrong_kind, Program};
use crate::errors::Deferred;
use crate::links::{Link, OwnedLink};
use crate::names::program_kind;

/// Turns a `take_link` result into an owned link, keeping aya's error.
pub fn owned<L: OwnedLink>(
    context: &str,
    link: Result<L, aya::programs::ProgramError>,
) -> Result<Box<dyn OwnedLink>, Deferred> {
    link.map(|link| Box::new(link) as Box<dyn OwnedLink>)
        .map_err(|err| Deferred::Program(context.to_owned(), Box::new(err)))
}

#[pymethods]
impl Program {
    /// Attaches a TracePoint program to `category/name` (see /sys/kernel/tracing/events).
    fn attach_tracepoint(&self, py: Python<'_>, category: &str, name: &str) -> PyResult<Link> {
        let context = format!(
            "attaching {:?} to tracepoint {category}/{name}",
            self.name_str()
        );
        self.attach_with(py, |program| match program {
            AyaProgram::TracePoint(p) => {
                let id = p
                    .attach(category, name)
                    .map_err(|error| Deferred::TracePoint {
                        context: context.clone(),
                        category: category.to_owned(),
                        name: name.to_owned(),
                        error: Box::new(error),
                    })?;
                owned(&context, p.take_link(id))
            }
            other => Err(wrong_kind(
                self.name_str(),
                program_kind(other),
                "TracePoint",
            )),
        })
    }

    /// Attaches a RawTracePoint program to the raw tracepoint `name` (e.g. `"sched_switch"`).
    fn attach_raw_tracepoint(&self, py: Python<'_>, name: &str) -> PyResult<Link> {
        let context = format!("attaching {:?} to raw tracepoint {name}", self.name_str());
        self.attach_with(py, |program| match program {
            AyaProgram::RawTracePoint(p) => {
                let id = p
                    .attach(name)
                    .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?;
                owned(&context, p.take_link(id))
            }
            other => Err(wrong_kind(
                self.name_str(),
                program_kind(other),
                "RawTracePoint",
            )),
        })
    }
}
