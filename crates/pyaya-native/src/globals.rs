//! Global variables (`.bss`, `.data`, `.rodata`) at run time, read and written through the kernel's memory map of
//! their array maps, as libbpf's skeletons do: no syscall per access.
//!
//! aya 0.14 creates those maps without `BPF_F_MMAPABLE`, and has no hook for map flags. But it reuses any map
//! pinned where `EbpfLoader::map_pin_path` points (and still writes the section's initial data into it, and
//! freezes `.rodata`). So before aya loads, pyaya creates each data section's map itself, mmapable and otherwise
//! as aya would create it, pins it at a temporary path in bpffs for aya to pick up, and removes the pins once aya
//! holds the maps. Without bpffs, or on kernels without mmapable arrays (before 5.5), aya creates the maps as
//! usual and [`GlobalArea`] reads and writes them with map syscalls instead.

use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use aya_obj::{EbpfSectionKind, Object};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::{new_err, Kind};
use crate::sys;

/// `BPF_F_MMAPABLE` (`include/uapi/linux/bpf.h`).
const BPF_F_MMAPABLE: u32 = 1 << 10;
/// `BPF_FS_MAGIC`: the statfs type of bpffs.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const BPFFS: &str = "/sys/fs/bpf";

static AHEAD_PINS: AtomicU64 = AtomicU64::new(0);

/// Data-section maps created ahead of aya, pinned where aya will look for them; the pins go when this drops (the
/// maps stay alive through aya's fds).
#[derive(Default)]
pub struct AheadMaps {
    pub paths: Vec<(String, PathBuf)>,
}

impl Drop for AheadMaps {
    fn drop(&mut self) {
        for (_, path) in &self.paths {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Creates an mmapable array for every data section of `object` not in `skip` (maps pinned by the caller's own
/// choice), when bpffs is mounted at /sys/fs/bpf; any that cannot be made is left for aya to create.
pub fn create_ahead(object: &Object, skip: &[String]) -> AheadMaps {
    let mut ahead = AheadMaps::default();
    if sys::filesystem_type(std::path::Path::new(BPFFS)).ok() != Some(BPF_FS_MAGIC) {
        return ahead;
    }
    remove_stale_pins();
    for (name, map) in &object.maps {
        let data_section = matches!(
            map.section_kind(),
            EbpfSectionKind::Bss | EbpfSectionKind::Data | EbpfSectionKind::Rodata
        );
        if !data_section || skip.contains(name) || map.value_size() == 0 {
            continue;
        }
        let Ok(fd) = sys::create_map(
            map.map_type(),
            map.key_size(),
            map.value_size(),
            map.max_entries(),
            map.map_flags() | BPF_F_MMAPABLE,
            name,
        ) else {
            continue;
        };
        // bpffs refuses names with a dot (it keeps them for its own files, such as maps.debug).
        let serial = AHEAD_PINS.fetch_add(1, Ordering::Relaxed);
        let path = PathBuf::from(format!(
            "{BPFFS}/pyaya-globals-{}-{serial}",
            std::process::id()
        ));
        if sys::pin_object(fd.as_fd(), &path).is_ok() {
            ahead.paths.push((name.clone(), path));
        }
    }
    ahead
}

/// Pins a load left behind when its process was killed between pinning and aya's load (the window is short,
/// but SIGKILL can land in it): those of processes that no longer exist.
fn remove_stale_pins() {
    let Ok(entries) = std::fs::read_dir(BPFFS) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("pyaya-globals-")) else {
            continue;
        };
        let Some(pid) = rest
            .split('-')
            .next()
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// One data section's map, memory-mapped when the kernel allows it (`BPF_F_MMAPABLE`), else read and written
/// with map syscalls. Reads and writes are bounds-checked against the section's size.
#[pyclass(module = "pyaya._native", frozen)]
pub struct GlobalArea {
    fd: OwnedFd,
    size: usize,
    /// Start and length of the mapping, 0 when not mapped (the address as an integer: a pyclass must be Send).
    mapping: (usize, usize),
    writable: bool,
    section: String,
}

impl GlobalArea {
    /// `fd` is the section's array map (one entry of `size` bytes); `frozen`: `.rodata`, which the kernel
    /// refuses to map writable.
    pub fn open(fd: OwnedFd, size: usize, frozen: bool, section: &str) -> Self {
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let length = size.div_ceil(page).max(1) * page;
        let protection = if frozen {
            libc::PROT_READ
        } else {
            libc::PROT_READ | libc::PROT_WRITE
        };
        // SAFETY: a new shared mapping of the map's fd at offset 0, of a length the kernel checks against the
        // map's size; nothing else is at the address the kernel picks.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                length,
                protection,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        let mapping = if address == libc::MAP_FAILED || address.is_null() {
            (0, 0)
        } else {
            (address as usize, length)
        };
        Self {
            fd,
            size,
            mapping,
            writable: !frozen,
            section: section.to_owned(),
        }
    }

    fn check(&self, offset: usize, length: usize) -> PyResult<()> {
        if offset.checked_add(length).is_none_or(|end| end > self.size) {
            return Err(new_err(
                Kind::InvalidArgument,
                format!(
                    "{length} bytes at offset {offset} are outside {} ({} bytes)",
                    self.section, self.size
                ),
            ));
        }
        Ok(())
    }

    fn whole_value(&self) -> PyResult<Vec<u8>> {
        let mut value = vec![0u8; self.size];
        sys::lookup(self.fd.as_fd(), &0u32.to_ne_bytes(), &mut value)
            .map_err(|err| new_err(Kind::Map, format!("reading {} failed: {err}", self.section)))?;
        Ok(value)
    }
}

#[pyaya_guard::guard(Map)]
#[pymethods]
impl GlobalArea {
    /// Whether reads and writes go through the kernel's memory map of the section (else through map syscalls).
    #[getter]
    fn mapped(&self) -> bool {
        self.mapping.0 != 0
    }

    /// The section's size in bytes.
    #[getter]
    fn size(&self) -> usize {
        self.size
    }

    /// `length` bytes at `offset`, as the programs see them now.
    fn read<'py>(
        &self,
        py: Python<'py>,
        offset: usize,
        length: usize,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.check(offset, length)?;
        if self.mapping.0 == 0 {
            let value = self.whole_value()?;
            return Ok(PyBytes::new(
                py,
                value.get(offset..offset + length).unwrap_or_default(),
            ));
        }
        let base = self.mapping.0 as *const u8;
        // SAFETY: `offset + length <= size <= mapping length` (checked), the mapping lives as long as `self`, and
        // the kernel may write it concurrently: each byte is read with a volatile load.
        let bytes: Vec<u8> = (offset..offset + length)
            .map(|index| unsafe { base.add(index).read_volatile() })
            .collect();
        Ok(PyBytes::new(py, &bytes))
    }

    /// Writes `data` at `offset`, where the programs see it at once.
    fn write(&self, offset: usize, data: &[u8]) -> PyResult<()> {
        self.check(offset, data.len())?;
        if !self.writable {
            return Err(new_err(
                Kind::Unsupported,
                format!(
                    "{} is frozen once the object is loaded (the kernel refuses every write to it, root's too, so \
                     the verifier may treat its values as constants): set read-only globals before load, with \
                     Ebpf.load_file(..., globals={{name: value}})",
                    self.section
                ),
            ));
        }
        if self.mapping.0 == 0 {
            let mut value = self.whole_value()?;
            if let Some(slot) = value.get_mut(offset..offset + data.len()) {
                slot.copy_from_slice(data);
            }
            return sys::update(self.fd.as_fd(), &0u32.to_ne_bytes(), &value, 0).map_err(|err| {
                new_err(Kind::Map, format!("writing {} failed: {err}", self.section))
            });
        }
        let base = self.mapping.0 as *mut u8;
        for (index, byte) in data.iter().enumerate() {
            // SAFETY: `offset + data.len() <= size <= mapping length` (checked), the mapping is writable (not
            // frozen) and lives as long as `self`; each byte is written with a volatile store.
            unsafe { base.add(offset + index).write_volatile(*byte) };
        }
        Ok(())
    }
}

impl Drop for GlobalArea {
    fn drop(&mut self) {
        if self.mapping.0 != 0 {
            // SAFETY: the mapping was made by `open` with this address and length and is not used after drop.
            unsafe { libc::munmap(self.mapping.0 as *mut libc::c_void, self.mapping.1) };
        }
    }
}
