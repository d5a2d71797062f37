//! Reads an object's programs and maps without loading anything (no privilege needed), and ELF files and line
//! info for Python through pyaya-core's readers.

use aya_obj::Object;
use pyaya_core::btf::Btf;
use pyaya_core::btf_ext;
use pyaya_core::elf::{Elf, Symbol};
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
    pyaya_core::elf::check_for_aya(data)
        .map_err(|err| new_err(Kind::Object, format!("not a valid BPF object: {err}")))?;
    // The original names are read from `data` below: the pass renames sections, keeping their indexes.
    let prepared = crate::object_pass::for_inspection(data)?;
    let parsed = Object::parse(prepared.as_deref().unwrap_or(data)).map_err(|err| {
        new_err(
            Kind::Object,
            format!(
                "not a valid BPF object: {}",
                crate::errors::chain_message(&err)
            ),
        )
    })?;
    let elf = Elf::parse(data).map_err(|err| new_err(Kind::Object, err.to_string()))?;

    let mut programs: Vec<_> = parsed.programs.iter().collect();
    programs.sort_by(|a, b| a.0.cmp(b.0));
    let program_list = PyList::empty(py);
    for (name, program) in programs {
        let section_name = elf
            .sections
            .get(program.section_index)
            .map(|section| section.name.clone())
            .unwrap_or_default();
        let entry = PyDict::new(py);
        entry.set_item("name", name)?;
        entry.set_item("section", &section_name)?;
        // aya-obj reads a multi-point probe's renamed section as a plain probe: its real kind is in the original.
        let kind = match pyaya_core::object_pass::multi_probe(&section_name) {
            Some(probe) => match (probe.kernel, probe.retprobe) {
                (false, false) => "UProbeMulti".to_owned(),
                (false, true) => "URetProbeMulti".to_owned(),
                (true, false) => "KProbeMulti".to_owned(),
                (true, true) => "KRetProbeMulti".to_owned(),
            },
            None => section_kind(&program.section),
        };
        entry.set_item("type", kind)?;
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

type SectionRecord = (usize, String, u32, u64, u64, u64, u64, u32, u32, u64, u64);
type LineRecord = (String, u32, String, u32, u32, String);
type SymbolRecord = (usize, String, u64, u64, u8, u8, u8, u16, Option<usize>);

fn symbol_records(symbols: Vec<Symbol>) -> Vec<SymbolRecord> {
    symbols
        .into_iter()
        .map(|s| {
            (
                s.index,
                s.name,
                s.value,
                s.size,
                s.kind,
                s.binding,
                s.visibility,
                s.shndx,
                s.section,
            )
        })
        .collect()
}

/// `read_elf(data)`: `(header, sections, symbols, dynamic_symbols, segments)` of an ELF file of either class and
/// byte order; header `(little_endian, is_64, os_abi, type, machine)`, section `(index, name, type, flags, addr,
/// offset, size, link, info, addralign, entsize)`, symbol `(index, name, value, size, type, binding, visibility,
/// shndx, section index or None)`, segment `(type, offset, vaddr, filesz)`. ObjectError says what is malformed.
#[pyaya_guard::guard(Object)]
#[pyfunction]
#[allow(clippy::type_complexity, reason = "the tuple shapes Python receives")]
pub fn read_elf(
    py: Python<'_>,
    data: &[u8],
) -> PyResult<(
    (bool, bool, u8, u16, u16),
    Vec<SectionRecord>,
    Vec<SymbolRecord>,
    Vec<SymbolRecord>,
    Vec<(u32, u64, u64, u64)>,
)> {
    let elf = py
        .detach(|| Elf::parse(data))
        .map_err(|err| new_err(Kind::Object, err.to_string()))?;
    let header = &elf.header;
    let sections = elf
        .sections
        .iter()
        .map(|s| {
            (
                s.index,
                s.name.clone(),
                s.kind,
                s.flags,
                s.address,
                s.offset,
                s.size,
                s.link,
                s.info,
                s.align,
                s.entry_size,
            )
        })
        .collect();
    let segments = elf
        .segments
        .iter()
        .map(|s| (s.kind, s.offset, s.address, s.file_size))
        .collect();
    Ok((
        (
            header.little_endian,
            header.is_64,
            header.os_abi,
            header.kind,
            header.machine,
        ),
        sections,
        symbol_records(elf.symbols),
        symbol_records(elf.dynamic_symbols),
        segments,
    ))
}

/// `object_line_info(data)`: every `.BTF.ext` line_info record of an object as `(section, insn_offset, file,
/// line, column, text)`; empty without `.BTF.ext` or `.BTF`.
#[pyaya_guard::guard(Object)]
#[pyfunction]
pub fn object_line_info(py: Python<'_>, data: &[u8]) -> PyResult<Vec<LineRecord>> {
    let records = py.detach(|| {
        let elf = Elf::parse(data).map_err(|err| err.to_string())?;
        let (Some(ext), Some(btf)) = (elf.section(".BTF.ext"), elf.section(".BTF")) else {
            return Ok(Vec::new());
        };
        let btf =
            Btf::parse(elf.section_data(btf)).map_err(|err| format!("the object's .BTF: {err}"))?;
        btf_ext::line_info(elf.section_data(ext), &btf).map_err(|err| err.to_string())
    });
    let records = records.map_err(|message| new_err(Kind::Object, message))?;
    Ok(records
        .into_iter()
        .map(|r| (r.section, r.insn_offset, r.file, r.line, r.column, r.text))
        .collect())
}
