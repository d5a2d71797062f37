//! `Ebpf.load(..., pin_maps=DIR)`: every map of the object pinned by name under DIR, existing pins reused. aya
//! reuses whatever is pinned at a path without looking at it, so the pins are checked against the object's map
//! definitions first: reusing a map of another shape would make the programs read and write past its values.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aya::maps::MapInfo;
use aya_obj::{EbpfSectionKind, Object};

use crate::errors::{chain_message, Deferred, Kind};
use crate::names::map_kind;

/// aya-log's ring buffer stays private to each loaded object: its records belong to the loader that reads them.
const LOG_MAP: &str = "AYA_LOGS";
const PERF_EVENT_ARRAY: u32 = 4;
const RINGBUF: u32 = 27;

/// Where this load pins maps, and what it created, so a failed load leaves nothing behind.
pub struct Pins {
    pub paths: Vec<(String, PathBuf)>,
    created_directory: Option<PathBuf>,
    new_pins: Vec<PathBuf>,
}

impl Pins {
    /// Removes the pins (and the folder) this load created: called when loading fails after maps were pinned.
    pub fn remove_new(&self) {
        for path in &self.new_pins {
            let _ = std::fs::remove_file(path);
        }
        if let Some(directory) = &self.created_directory {
            let _ = std::fs::remove_dir(directory);
        }
    }
}

/// The pin path of each map of `data` that pinning applies to: maps declared with `#[map]` or `#[btf_map]`, not
/// the `.rodata`/`.data`/`.bss` maps that hold globals (those are the object's own, rewritten at each load).
/// Pins already present are checked against the object's definitions; a mismatch is an error naming the pin.
pub fn pin_paths(
    data: &[u8],
    directory: &Path,
    max_entries: &HashMap<String, u32>,
) -> Result<Pins, Deferred> {
    let object = Object::parse(data).map_err(|err| {
        Deferred::Plain(
            Kind::Object,
            format!("not a valid BPF object: {}", chain_message(&err)),
        )
    })?;
    let created_directory = (!directory.exists()).then(|| directory.to_path_buf());
    std::fs::create_dir_all(directory).map_err(|err| {
        Deferred::Plain(
            Kind::Map,
            format!(
                "cannot create the pin folder {}: {err} (it must be on a mounted bpffs, e.g. under /sys/fs/bpf)",
                directory.display()
            ),
        )
    })?;
    let mut paths = Vec::new();
    let mut new_pins = Vec::new();
    for (name, map) in &object.maps {
        if name == LOG_MAP
            || !matches!(
                map.section_kind(),
                EbpfSectionKind::Maps | EbpfSectionKind::BtfMaps
            )
        {
            continue;
        }
        let path = directory.join(name);
        if path.exists() {
            let wanted_entries = max_entries
                .get(name)
                .copied()
                .unwrap_or_else(|| map.max_entries());
            check_pin(
                name,
                &path,
                map.map_type(),
                map.key_size(),
                map.value_size(),
                wanted_entries,
                map.map_flags(),
            )?;
        } else {
            new_pins.push(path.clone());
        }
        paths.push((name.clone(), path));
    }
    Ok(Pins {
        paths,
        created_directory,
        new_pins,
    })
}

fn check_pin(
    name: &str,
    path: &Path,
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
) -> Result<(), Deferred> {
    let remedy = format!(
        "remove the old pin with `rm {}` (or pin into another folder) and load again",
        path.display()
    );
    let info = MapInfo::from_pin(path).map_err(|err| {
        Deferred::Plain(
            Kind::Map,
            format!(
                "{} exists but is not a pinned map ({}); {remedy}",
                path.display(),
                chain_message(&err)
            ),
        )
    })?;
    let pinned_type = info.map_type().map_or(u32::MAX, |map_type| map_type as u32);
    let mut differences = Vec::new();
    if pinned_type != map_type {
        differences.push(format!(
            "type {} (the object wants {})",
            map_kind(pinned_type),
            map_kind(map_type)
        ));
    }
    if info.key_size() != key_size {
        differences.push(format!(
            "key size {} (the object wants {key_size})",
            info.key_size()
        ));
    }
    // Ring buffers and perf event arrays are resized by aya at load (page size, CPU count): sizes there are not a
    // layout the programs depend on.
    if info.value_size() != value_size && map_type != RINGBUF && map_type != PERF_EVENT_ARRAY {
        differences.push(format!(
            "value size {} (the object wants {value_size})",
            info.value_size()
        ));
    }
    if max_entries != 0
        && info.max_entries() != max_entries
        && map_type != RINGBUF
        && map_type != PERF_EVENT_ARRAY
    {
        differences.push(format!(
            "max_entries {} (the object wants {max_entries})",
            info.max_entries()
        ));
    }
    if info.map_flags() != flags {
        differences.push(format!(
            "flags {:#x} (the object wants {flags:#x})",
            info.map_flags()
        ));
    }
    if differences.is_empty() {
        return Ok(());
    }
    Err(Deferred::Plain(
        Kind::Map,
        format!(
            "the map pinned at {} does not fit map {name:?} of this object: it has {}; {remedy}",
            path.display(),
            differences.join(", ")
        ),
    ))
}
