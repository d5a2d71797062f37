//! `Ebpf.load(globals=..., max_entries=...)` checked against the object before aya sees them. aya ignores a
//! `max_entries` for a map the object does not have, and patches as a "global" any named symbol of a section that
//! became a map (a `#[map]` definition included); so a misspelt name would go unnoticed, or rewrite a map's
//! definition.

use std::collections::{BTreeMap, HashMap};

use aya_obj::{EbpfSectionKind, Object};

use crate::errors::{Deferred, Kind};

/// The sections whose data symbols are globals: `.rodata` (read-only, fixed at load), `.data`, `.bss`.
const GLOBAL_SECTIONS: [&str; 3] = [".rodata", ".data", ".bss"];

/// Every global of the object (`#[no_mangle] static` items in `.rodata*`, `.data*` or `.bss*`) and its size.
pub fn globals(data: &[u8]) -> BTreeMap<String, u64> {
    let mut found = BTreeMap::new();
    let Ok(elf) = pyaya_core::elf::Elf::parse(data) else {
        return found;
    };
    for symbol in &elf.symbols {
        if symbol.kind != pyaya_core::elf::STT_OBJECT || symbol.name.is_empty() {
            continue;
        }
        let in_globals = elf
            .section_of(symbol)
            .is_some_and(|section| GLOBAL_SECTIONS.iter().any(|p| section.name.starts_with(p)));
        if in_globals {
            found.insert(symbol.name.clone(), symbol.size);
        }
    }
    found
}

fn listed<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let mut names: Vec<&str> = names.map(String::as_str).collect();
    names.sort_unstable();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// Every name in `globals` must be a global of the object with exactly its size, and every name in
/// `max_entries` one of its maps (not one holding globals).
pub fn check(
    object: &Object,
    data: &[u8],
    globals: &HashMap<String, Vec<u8>>,
    max_entries: &HashMap<String, u32>,
) -> Result<(), Deferred> {
    let resizable: BTreeMap<&String, EbpfSectionKind> = object
        .maps
        .iter()
        .map(|(name, map)| (name, map.section_kind()))
        .collect();
    let mut names: Vec<&String> = max_entries.keys().collect();
    names.sort_unstable();
    for name in names {
        match resizable.get(name) {
            Some(EbpfSectionKind::Maps | EbpfSectionKind::BtfMaps) => {}
            Some(_) => {
                return Err(Deferred::Plain(
                    Kind::InvalidArgument,
                    format!(
                        "max_entries names {name:?}, the map holding the object's globals, which cannot be \
                         resized; the maps that can are: {}",
                        listed(resizable.iter().filter_map(|(n, kind)| {
                            matches!(kind, EbpfSectionKind::Maps | EbpfSectionKind::BtfMaps).then_some(*n)
                        }))
                    ),
                ))
            }
            None => {
                return Err(Deferred::Plain(
                    Kind::InvalidArgument,
                    format!(
                        "max_entries names map {name:?}, which the object does not have; its maps are: {}",
                        listed(resizable.iter().filter_map(|(n, kind)| {
                            matches!(kind, EbpfSectionKind::Maps | EbpfSectionKind::BtfMaps).then_some(*n)
                        }))
                    ),
                ))
            }
        }
    }
    if globals.is_empty() {
        return Ok(());
    }
    let known = self::globals(data);
    let mut names: Vec<&String> = globals.keys().collect();
    names.sort_unstable();
    for name in names {
        let given = globals[name].len();
        match known.get(name) {
            None => {
                let what = if object.maps.contains_key(name) {
                    format!("{name:?} is a map, not a global")
                } else {
                    format!("the object has no global {name:?}")
                };
                return Err(Deferred::Plain(
                    Kind::InvalidArgument,
                    format!(
                        "globals: {what}; its globals (#[no_mangle] statics) are: {}",
                        listed(known.keys())
                    ),
                ));
            }
            Some(&size) if size != given as u64 => {
                return Err(Deferred::Plain(
                    Kind::InvalidArgument,
                    format!(
                        "globals: {name:?} is {size} bytes but the value given is {given} bytes: pass exactly \
                         {size} bytes (e.g. a ctypes value of that size)"
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Every name in `extensions` must be a program of the object (aya would ignore one that is not).
pub fn check_extensions(object: &Object, extensions: &[String]) -> Result<(), Deferred> {
    for name in extensions {
        if !object.programs.contains_key(name) {
            return Err(Deferred::Plain(
                Kind::InvalidArgument,
                format!(
                    "extensions names {name:?}, which is not a program of the object; its programs are: {}",
                    listed(object.programs.keys())
                ),
            ));
        }
    }
    Ok(())
}
