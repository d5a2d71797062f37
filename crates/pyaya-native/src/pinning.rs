//! `Ebpf.load(..., pin_maps=DIR)`: every map of the object pinned by name under DIR, existing pins reused. aya
//! reuses whatever is pinned at a path without looking at it, so the pins are checked against the object's map
//! definitions first: reusing a map of another shape would make the programs read and write past its values.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use aya::maps::MapInfo;
use aya_obj::{EbpfSectionKind, Object};
use pyo3::prelude::*;

use crate::errors::{chain_message, from_map_io, new_err, Deferred, Kind};
use crate::names::map_kind;

/// aya-log's ring buffer stays private to each loaded object: its records belong to the loader that reads them.
const LOG_MAP: &str = "AYA_LOGS";
const PERF_EVENT_ARRAY: u32 = 4;
const RINGBUF: u32 = 27;

/// `statfs.f_type` of bpffs.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// The modes of what pyaya creates in bpffs, set explicitly so the umask plays no part: pin folders and pins are
/// the owner's alone (whoever holds a pin can read and write the map, or attach the program).
pub const PIN_DIR_MODE: u32 = 0o700;
pub const PIN_FILE_MODE: u32 = 0o600;

/// The usual name of a filesystem magic number, for messages.
fn filesystem_name(magic: i64) -> String {
    match magic {
        0xef53 => "ext4".to_owned(),
        0x0102_1994 => "tmpfs".to_owned(),
        0x5846_5342 => "xfs".to_owned(),
        0x9123_683e => "btrfs".to_owned(),
        0x794c_7630 => "overlayfs".to_owned(),
        0x6265_6572 => "sysfs".to_owned(),
        0x9fa0 => "proc".to_owned(),
        0x6367_7270 => "cgroup2".to_owned(),
        0x7472_6163 => "tracefs".to_owned(),
        0x6969 => "nfs".to_owned(),
        other => format!("a filesystem of type {other:#x}"),
    }
}

/// Why nothing can be pinned at (or under) `path`, when the folder it would live in is not on bpffs; None when it
/// is (or when that cannot be told: the kernel then has the last word).
pub fn not_on_bpffs(path: &Path) -> Option<String> {
    let mut existing = path;
    while !existing.is_dir() {
        existing = existing.parent()?;
    }
    let magic = crate::sys::filesystem_type(existing).ok()?;
    (magic != BPF_FS_MAGIC).then(|| {
        let place = if existing == path {
            format!("{} is on {}", path.display(), filesystem_name(magic))
        } else {
            format!(
                "{} would be on {}, as {} is",
                path.display(),
                filesystem_name(magic),
                existing.display()
            )
        };
        format!(
            "{place}, not on a bpffs mount: pins only live in bpffs; use a folder under /sys/fs/bpf, or mount \
             bpffs there with `mount -t bpf bpf /sys/fs/bpf`"
        )
    })
}

/// Refuses to pin at `path` outside bpffs (the kernel would answer EPERM, which reads as a missing privilege),
/// as an error of `kind` prefixed by `context`.
pub fn check_pin_place(kind: Kind, context: &str, path: &Path) -> Result<(), Deferred> {
    match path.parent().and_then(not_on_bpffs) {
        Some(reason) => Err(Deferred::Plain(kind, format!("{context}: {reason}"))),
        None => Ok(()),
    }
}

/// `set_pin_mode` as an error of `kind`, for the pins of `Map.pin`, `Program.pin` and `Link.pin`.
pub fn finish_pin(kind: Kind, context: &str, path: &Path) -> Result<(), Deferred> {
    set_pin_mode(path)
        .map_err(|err| Deferred::Plain(kind, format!("{context}: setting the pin's mode: {err}")))
}

/// Gives a pin pyaya just made its explicit mode (the kernel applies the umask to it).
pub fn set_pin_mode(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(PIN_FILE_MODE))
}

/// Creates `directory` and any missing parents with mode `PIN_DIR_MODE` whatever the umask; returns the folders
/// created, outermost first.
fn create_pin_directories(directory: &Path) -> std::io::Result<Vec<PathBuf>> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let mut missing = Vec::new();
    let mut current = Some(directory);
    while let Some(folder) = current {
        if folder.is_dir() {
            break;
        }
        missing.push(folder.to_path_buf());
        current = folder.parent();
    }
    missing.reverse();
    let mut created = Vec::new();
    for folder in missing {
        let made = std::fs::DirBuilder::new()
            .mode(PIN_DIR_MODE)
            .create(&folder)
            .and_then(|()| {
                std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(PIN_DIR_MODE))
            });
        if let Err(err) = made {
            for folder in created.iter().rev() {
                let _ = std::fs::remove_dir(folder);
            }
            return Err(err);
        }
        created.push(folder);
    }
    Ok(created)
}

/// Where this load pins maps, and what it created, so a failed load leaves nothing behind.
pub struct Pins {
    pub paths: Vec<(String, PathBuf)>,
    created_directories: Vec<PathBuf>,
    new_pins: Vec<PathBuf>,
}

impl Pins {
    /// Removes the pins (and the folders) this load created: called when loading fails after maps were pinned.
    pub fn remove_new(&self) {
        for path in &self.new_pins {
            let _ = std::fs::remove_file(path);
        }
        for directory in self.created_directories.iter().rev() {
            let _ = std::fs::remove_dir(directory);
        }
    }

    /// Gives the pins this load created their explicit mode; on failure, removes what this load created.
    pub fn set_modes(&self) -> Result<(), Deferred> {
        for path in &self.new_pins {
            set_pin_mode(path).map_err(|err| {
                self.remove_new();
                Deferred::Plain(
                    Kind::Map,
                    format!("setting the mode of the pin {}: {err}", path.display()),
                )
            })?;
        }
        Ok(())
    }
}

/// The pin path of each map of `object` that pinning applies to: maps declared with `#[map]` or `#[btf_map]`,
/// not the `.rodata`/`.data`/`.bss` maps that hold globals (those are the object's own, rewritten at each load).
/// Pins already present are checked against the object's definitions; a mismatch is an error naming the pin.
/// The folder must be on bpffs; the folders created for it get mode `PIN_DIR_MODE`.
pub fn pin_paths(
    object: &Object,
    directory: &Path,
    max_entries: &HashMap<String, u32>,
) -> Result<Pins, Deferred> {
    if let Some(reason) = not_on_bpffs(directory) {
        return Err(Deferred::Plain(Kind::Map, format!("pin_maps: {reason}")));
    }
    let created_directories = create_pin_directories(directory).map_err(|err| {
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
            let checked = check_pin(
                name,
                &path,
                map.map_type(),
                map.key_size(),
                map.value_size(),
                wanted_entries,
                map.map_flags(),
            );
            if let Err(err) = checked {
                for directory in created_directories.iter().rev() {
                    let _ = std::fs::remove_dir(directory);
                }
                return Err(err);
            }
        } else {
            new_pins.push(path.clone());
        }
        paths.push((name.clone(), path));
    }
    Ok(Pins {
        paths,
        created_directories,
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

/// Removes the pin recorded in `pinned` (made by this map handle: `Map`, `RingBuf` or `PerfEventArray`).
pub(crate) fn remove_pin(pinned: &Mutex<Option<PathBuf>>, name: &str) -> PyResult<()> {
    let path = pinned.lock().unwrap_or_else(PoisonError::into_inner).take();
    let Some(path) = path else {
        return Err(new_err(
            Kind::Map,
            format!("map {name:?} was not pinned by this handle; remove another pin with os.unlink(path)"),
        ));
    };
    std::fs::remove_file(&path).map_err(|err| {
        from_map_io(
            &format!("unpinning map {name:?} from {}", path.display()),
            &err,
        )
    })
}
