//! Reads an object's programs and maps without loading anything: no privilege needed.

use aya_obj::Object;
use object::{Object as _, ObjectSection as _, SectionIndex};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::errors::{new_err, Kind};
use crate::names::map_kind;

/// The program type from aya's parsed section, e.g. `TracePoint` from `TracePoint`, `UProbe` from
/// `UProbe { sleepable: false }`.
fn section_kind(section: &aya_obj::ProgramSection) -> String {
    let debug = format!("{section:?}");
    debug
        .split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// `inspect_object(data)`: `{"programs": [{"name", "section", "type"}], "maps": [{"name", "type", "key_size",
/// "value_size", "max_entries"}]}`, sorted by name.
#[pyaya_guard::guard(Object)]
#[pyfunction]
pub fn inspect_object<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let parsed = Object::parse(data).map_err(|err| {
        new_err(
            Kind::Object,
            format!(
                "not a valid BPF object: {}",
                crate::errors::chain_message(&err)
            ),
        )
    })?;
    let elf = object::File::parse(data)
        .map_err(|err| new_err(Kind::Object, format!("not a valid ELF file: {err}")))?;

    let mut programs: Vec<_> = parsed.programs.iter().collect();
    programs.sort_by(|a, b| a.0.cmp(b.0));
    let program_list = PyList::empty(py);
    for (name, program) in programs {
        let section_name = elf
            .section_by_index(SectionIndex(program.section_index))
            .ok()
            .and_then(|section| section.name().ok().map(str::to_owned))
            .unwrap_or_default();
        let entry = PyDict::new(py);
        entry.set_item("name", name)?;
        entry.set_item("section", section_name)?;
        entry.set_item("type", section_kind(&program.section))?;
        program_list.append(entry)?;
    }

    let mut maps: Vec<_> = parsed.maps.iter().collect();
    maps.sort_by(|a, b| a.0.cmp(b.0));
    let map_list = PyList::empty(py);
    for (name, map) in maps {
        let entry = PyDict::new(py);
        entry.set_item("name", name)?;
        entry.set_item("type", map_kind(map.map_type()))?;
        entry.set_item("key_size", map.key_size())?;
        entry.set_item("value_size", map.value_size())?;
        entry.set_item("max_entries", map.max_entries())?;
        map_list.append(entry)?;
    }

    let result = PyDict::new(py);
    result.set_item("programs", program_list)?;
    result.set_item("maps", map_list)?;
    Ok(result)
}
