//! What `Map` does beyond lookup/update/delete: batch commands (aya has none), pinning, keyless queue/stack/bloom
//! commands, and values or keys that are fds (programs, maps, cgroups and files opened here, by path).

use std::fs::File;
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::PoisonError;

use aya::maps::MapData;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::ebpf::Program;
use crate::errors::{chain_message, from_map_io, new_err, Deferred, Kind};
use crate::map_shared::lock;
use crate::maps::{wrap_data, Map};
use crate::sys;

/// Entries asked for per batch call when the caller does not say: large enough to amortise the syscall, small
/// enough that the buffers stay modest for per-CPU maps.
const DEFAULT_BATCH_CHUNK: usize = 1024;

/// Entries per chunk of `lookup_batch_chunks`: enough that each chunk's decoding in Python outweighs its call.
const STREAMED_BATCH_CHUNK: usize = 16384;

/// One chunk of a streamed batch read: how many entries, their keys and their values back to back.
type Chunk = std::io::Result<(usize, Vec<u8>, Vec<u8>)>;

/// The reader thread of `lookup_batch_chunks`: chunks until the map ends, an error, or the iterator is dropped.
fn read_chunks(
    fd: &std::os::fd::OwnedFd,
    key_size: usize,
    value_len: usize,
    chunk: usize,
    sender: &std::sync::mpsc::SyncSender<Chunk>,
) {
    let mut cursor = sys::BatchCursor::new(key_size, false);
    let mut chunk = chunk.max(1);
    loop {
        let mut keys = vec![0u8; chunk * key_size];
        let mut values = vec![0u8; chunk * value_len];
        let (read, end) = match cursor.step(fd.as_fd(), &mut keys, &mut values, chunk) {
            Ok(sys::BatchStep::Read(read)) => (read, false),
            Ok(sys::BatchStep::End(read)) => (read, true),
            Ok(sys::BatchStep::TooSmall) => {
                chunk = chunk.saturating_mul(2);
                continue;
            }
            Err(err) => {
                let _ = sender.send(Err(err));
                return;
            }
        };
        keys.truncate(read * key_size);
        values.truncate(read * value_len);
        // A send fails once the iterator is gone: nobody wants the rest.
        if (read > 0 && sender.send(Ok((read, keys, values))).is_err()) || end {
            return;
        }
    }
}

/// The chunks of `Map.lookup_batch_chunks`, in the order the kernel gives them.
#[pyclass(module = "pyaya._native", frozen)]
pub struct BatchChunks {
    map: Py<Map>,
    /// `None` once the reader has finished (or failed) and every chunk was handed out.
    chunks: std::sync::Mutex<Option<std::sync::mpsc::Receiver<Chunk>>>,
    done: std::sync::atomic::AtomicUsize,
}

#[pyaya_guard::guard(Map)]
#[pymethods]
impl BatchChunks {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next `(count, keys, values)` chunk, waiting for the reader with the GIL released.
    #[allow(clippy::type_complexity)]
    fn __next__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<(usize, Bound<'py, PyBytes>, Bound<'py, PyBytes>)>> {
        let Some(receiver) = self
            .chunks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return Ok(None);
        };
        let (receiver, next) = py.detach(move || {
            let next = receiver.recv();
            (receiver, next)
        });
        match next {
            Ok(Ok((count, keys, values))) => {
                *self.chunks.lock().unwrap_or_else(PoisonError::into_inner) = Some(receiver);
                self.done.fetch_add(count, Ordering::Relaxed);
                Ok(Some((
                    count,
                    PyBytes::new(py, &keys),
                    PyBytes::new(py, &values),
                )))
            }
            Ok(Err(err)) => {
                let done = self.done.load(Ordering::Relaxed);
                Err(self
                    .map
                    .get()
                    .batch_error(BatchCommand::Lookup, done, &err)
                    .into())
            }
            Err(std::sync::mpsc::RecvError) => Ok(None),
        }
    }
}

/// The batch commands, each with its bit in `Map::batch_refused`.
#[derive(Clone, Copy)]
pub(crate) enum BatchCommand {
    Lookup = 1,
    LookupAndDelete = 2,
    Update = 4,
    Delete = 8,
}

impl BatchCommand {
    const ALL: [Self; 4] = [
        Self::Lookup,
        Self::LookupAndDelete,
        Self::Update,
        Self::Delete,
    ];

    const fn name(self) -> &'static str {
        match self {
            Self::Lookup => "BPF_MAP_LOOKUP_BATCH",
            Self::LookupAndDelete => "BPF_MAP_LOOKUP_AND_DELETE_BATCH",
            Self::Update => "BPF_MAP_UPDATE_BATCH",
            Self::Delete => "BPF_MAP_DELETE_BATCH",
        }
    }
}

/// An fd for `path` (a cgroup folder, a file), opened read-only and closed when dropped.
fn open_path(path: &Path) -> Result<File, Deferred> {
    File::open(path).map_err(|err| {
        Deferred::Plain(
            if err.kind() == std::io::ErrorKind::NotFound {
                Kind::NotFound
            } else {
                Kind::Map
            },
            format!("opening {}: {err}", path.display()),
        )
    })
}

/// An fd number as map value bytes (4 bytes, or 8 for maps whose values are u64).
fn fd_value(fd: BorrowedFd<'_>, len: usize) -> Vec<u8> {
    let raw = fd.as_raw_fd();
    if len >= 8 {
        let mut value = i64::from(raw).to_ne_bytes().to_vec();
        value.resize(len, 0);
        value
    } else {
        raw.to_ne_bytes().to_vec()
    }
}

impl Map {
    /// Writes under `key` the value `value_of` builds around a loaded program's fd (the GIL released).
    fn store_program_value(
        &self,
        py: Python<'_>,
        key: &[u8],
        program: &Program,
        flags: u64,
        what: &str,
        value_of: impl FnOnce(BorrowedFd<'_>) -> Vec<u8> + Send,
    ) -> PyResult<()> {
        self.check_key(key)?;
        let context = format!("{what} in map {:?}", self.name);
        py.detach(|| {
            program.with_fd(|program_fd| {
                let value = value_of(program_fd);
                let guard = lock(&self.data);
                let data = guard.as_ref().ok_or_else(|| {
                    Deferred::Plain(Kind::Closed, format!("map {:?} is closed", self.name))
                })?;
                sys::update(data.fd().as_fd(), key, &value, flags)
                    .map_err(|err| Deferred::MapIo(context, err))
            })
        })?;
        Ok(())
    }

    /// Runs `f` on the map's fd with the GIL released; errors are deferred until the GIL is back.
    fn detached<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(BorrowedFd<'_>) -> Result<T, Deferred> + Send,
    ) -> PyResult<T> {
        let result = py.detach(|| {
            let guard = lock(&self.data);
            let data = guard.as_ref().ok_or_else(|| {
                Deferred::Plain(Kind::Closed, format!("map {:?} is closed", self.name))
            })?;
            f(data.fd().as_fd())
        })?;
        Ok(result)
    }

    /// Turns a batch command's error into the exception Python sees, remembering "unsupported for this map".
    fn batch_error(&self, command: BatchCommand, done: usize, err: &std::io::Error) -> Deferred {
        let what = command.name();
        if done == 0 && sys::is_unsupported(err) {
            self.batch_refused
                .fetch_or(command as u8, Ordering::Relaxed);
            return Deferred::Plain(
                Kind::Unsupported,
                format!(
                    "this kernel has no {what} for {} map {:?} ({err}); use the per-key operations",
                    self.kind_name(),
                    self.name
                ),
            );
        }
        Deferred::MapIo(
            format!("{what} on map {:?} ({done} entries done)", self.name),
            std::io::Error::from_raw_os_error(err.raw_os_error().unwrap_or(libc::EIO)),
        )
    }

    fn kind_name(&self) -> &'static str {
        crate::names::map_kind(self.shape.map_type)
    }

    fn refuse_if_batch_unsupported(&self, command: BatchCommand) -> PyResult<()> {
        if self.batch_refused.load(Ordering::Relaxed) & command as u8 != 0 {
            return Err(new_err(
                Kind::Unsupported,
                format!(
                    "{} is not supported for {} map {:?} on this kernel (it said so before)",
                    command.name(),
                    self.kind_name(),
                    self.name
                ),
            ));
        }
        Ok(())
    }

    /// Every entry through `BPF_MAP_LOOKUP[_AND_DELETE]_BATCH` (GIL released): keys and values back to back.
    fn read_batch(
        &self,
        py: Python<'_>,
        chunk: Option<usize>,
        delete: bool,
    ) -> PyResult<sys::BatchRead> {
        let command = if delete {
            BatchCommand::LookupAndDelete
        } else {
            BatchCommand::Lookup
        };
        self.refuse_if_batch_unsupported(command)?;
        let key_size = self.shape.key_size as usize;
        let value_len = self.value_buffer_len;
        let chunk = chunk
            .unwrap_or(DEFAULT_BATCH_CHUNK)
            .clamp(1, (self.shape.max_entries as usize).max(1));
        self.detached(py, |fd| {
            sys::lookup_batch_all(fd, key_size, value_len, chunk, delete)
                .map_err(|err| self.batch_error(command, 0, &err))
        })
    }

    /// The entries of a batch read as one `(key, value)` pair of `bytes` each.
    fn read_batch_pairs<'py>(
        &self,
        py: Python<'py>,
        chunk: Option<usize>,
        delete: bool,
    ) -> PyResult<Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>> {
        let read = self.read_batch(py, chunk, delete)?;
        let key_size = self.shape.key_size as usize;
        let value_len = self.value_buffer_len;
        Ok((0..read.count)
            .map(|index| {
                (
                    PyBytes::new(py, &read.keys[index * key_size..(index + 1) * key_size]),
                    PyBytes::new(py, &read.values[index * value_len..(index + 1) * value_len]),
                )
            })
            .collect())
    }
}

/// Wraps a map that belongs to no loaded object (opened from a pin or an id), named as the kernel names it.
fn wrap_unowned(py: Python<'_>, data: MapData) -> PyResult<Py<PyAny>> {
    let name = data
        .info()
        .ok()
        .and_then(|info| info.name_as_str().map(str::to_owned))
        .unwrap_or_default();
    Ok(wrap_data(py, None, &name, data, false)?.0)
}

#[pyaya_guard::guard(Map)]
#[pymethods]
impl Map {
    /// A new map of kernel type `map_type` (`BPF_MAP_TYPE_*`) with these sizes, belonging to no object: it lives
    /// while a handle (or a pin, or a program using it) holds it.
    #[staticmethod]
    #[pyo3(signature = (map_type, key_size, value_size, max_entries, flags = 0, name = ""))]
    fn create(
        py: Python<'_>,
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        flags: u32,
        name: &str,
    ) -> PyResult<Py<PyAny>> {
        let what = format!(
            "creating a {} map (key {key_size} B, value {value_size} B, {max_entries} entries, flags {flags:#x})",
            crate::names::map_kind(map_type)
        );
        let data = py
            .detach(|| {
                let fd = sys::create_map(map_type, key_size, value_size, max_entries, flags, name)?;
                MapData::from_fd(fd).map_err(std::io::Error::other)
            })
            .map_err(|err| {
                let (kind, hint) = match err.raw_os_error() {
                    Some(libc::EPERM) => (
                        Kind::PermissionDenied,
                        format!("; {}", crate::errors::privilege_hint(crate::errors::Needs::BPF)),
                    ),
                    Some(libc::EINVAL) => (
                        Kind::InvalidArgument,
                        "; the kernel refuses these sizes or flags for this map type (an array's key is 4 \
                         bytes; sizes and max_entries must be above 0)"
                            .to_owned(),
                    ),
                    _ => (Kind::Map, String::new()),
                };
                new_err(kind, format!("{what} failed: {err}{hint}"))
            })?;
        wrap_unowned(py, data)
    }

    /// The kernel's id of the map.
    #[getter]
    fn id(&self) -> u32 {
        self.shape.id
    }

    /// A handle on the map pinned at `path` in bpffs (by this or another process): a `Map`, `RingBuf` or
    /// `PerfEventArray`, typed by what the kernel says about the pinned map.
    #[staticmethod]
    fn from_pin(py: Python<'_>, path: PathBuf) -> PyResult<Py<PyAny>> {
        let data = py.detach(|| MapData::from_pin(&path)).map_err(|err| {
            new_err(
                Kind::NotFound,
                format!(
                    "no pinned map at {}: {}",
                    path.display(),
                    chain_message(&err)
                ),
            )
        })?;
        let handle = wrap_unowned(py, data)?;
        // The handle owns the pin it was opened from, so `unpin()` removes it, as for programs and links.
        crate::maps::set_pinned_path(handle.bind(py), path)?;
        Ok(handle)
    }

    /// A handle on the map with kernel id `id` (e.g. an inner map of a map of maps).
    #[staticmethod]
    fn from_id(py: Python<'_>, id: u32) -> PyResult<Py<PyAny>> {
        let data = py.detach(|| MapData::from_id(id)).map_err(|err| {
            new_err(
                Kind::NotFound,
                format!("no map with id {id}: {}", chain_message(&err)),
            )
        })?;
        let handle = wrap_unowned(py, data)?;
        Ok(handle)
    }

    /// Pins the map at `path` in bpffs, so it outlives this process until `unpin()` (or removing the file).
    fn pin(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let context = format!("pinning map {:?} at {}", self.name, path.display());
        self.detached(py, |fd| {
            crate::pinning::check_pin_place(Kind::Map, &context, &path)?;
            sys::pin_object(fd, &path).map_err(|err| Deferred::PinIo(context.clone(), err))?;
            crate::pinning::finish_pin(Kind::Map, &context, &path)
        })?;
        *self.pinned.lock().unwrap_or_else(PoisonError::into_inner) = Some(path);
        Ok(())
    }

    /// Removes the pin this handle made; the map lives on while handles on it remain.
    fn unpin(&self) -> PyResult<()> {
        crate::pinning::remove_pin(&self.pinned, &self.name)
    }

    /// Where this handle pinned the map (or the pin it was opened from, or its `pin_maps` pin), or `None`.
    #[getter]
    fn pinned_path(&self) -> Option<PathBuf> {
        self.pinned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The batch commands the kernel refused for this map (each is tried once, then skipped).
    #[getter]
    fn batch_refused(&self) -> Vec<&'static str> {
        let refused = self.batch_refused.load(Ordering::Relaxed);
        BatchCommand::ALL
            .iter()
            .filter(|command| refused & **command as u8 != 0)
            .map(|command| command.name())
            .collect()
    }

    /// Every `(key, value)` pair, read with `BPF_MAP_LOOKUP_BATCH`, `chunk` entries per syscall (GIL released).
    /// Raises `UnsupportedError` when the kernel has no batch lookup for this map type.
    #[pyo3(signature = (chunk = None))]
    fn lookup_batch<'py>(
        &self,
        py: Python<'py>,
        chunk: Option<usize>,
    ) -> PyResult<Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>> {
        self.read_batch_pairs(py, chunk, false)
    }

    /// Every `(key, value)` pair, removed as read with `BPF_MAP_LOOKUP_AND_DELETE_BATCH`.
    #[pyo3(signature = (chunk = None))]
    fn lookup_and_delete_batch<'py>(
        &self,
        py: Python<'py>,
        chunk: Option<usize>,
    ) -> PyResult<Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>> {
        self.read_batch_pairs(py, chunk, true)
    }

    /// Every entry as `(count, keys, values)`, the keys and values back to back in one `bytes` each (the layout
    /// `update_batch` takes): one object per batch instead of two per entry, for callers that decode whole
    /// batches. `delete` removes the entries as read (`BPF_MAP_LOOKUP_AND_DELETE_BATCH`).
    #[pyo3(signature = (chunk = None, delete = false))]
    fn lookup_batch_packed<'py>(
        &self,
        py: Python<'py>,
        chunk: Option<usize>,
        delete: bool,
    ) -> PyResult<(usize, Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
        let read = self.read_batch(py, chunk, delete)?;
        Ok((
            read.count,
            PyBytes::new(py, &read.keys),
            PyBytes::new(py, &read.values),
        ))
    }

    /// Every entry through `BPF_MAP_LOOKUP_BATCH` as an iterator of `(count, keys, values)` chunks (as
    /// `lookup_batch_packed` gives the whole map): a thread of its own reads the next chunks (at most two ahead)
    /// while Python decodes the last one, so the kernel's work and the decoding overlap.
    #[pyo3(signature = (chunk = None))]
    fn lookup_batch_chunks(slf: &Bound<'_, Self>, chunk: Option<usize>) -> PyResult<BatchChunks> {
        let map = slf.get();
        map.refuse_if_batch_unsupported(BatchCommand::Lookup)?;
        let key_size = map.shape.key_size as usize;
        let value_len = map.value_buffer_len;
        let chunk = chunk
            .unwrap_or(STREAMED_BATCH_CHUNK)
            .clamp(1, (map.shape.max_entries as usize).max(1));
        let fd = {
            let guard = lock(&map.data);
            let data = guard
                .as_ref()
                .ok_or_else(|| new_err(Kind::Closed, format!("map {:?} is closed", map.name)))?;
            data.fd().as_fd().try_clone_to_owned().map_err(|err| {
                from_map_io(&format!("duplicating the fd of map {:?}", map.name), &err)
            })?
        };
        let (sender, receiver) = std::sync::mpsc::sync_channel(2);
        std::thread::Builder::new()
            .name("pyaya-batch".into())
            .spawn(move || read_chunks(&fd, key_size, value_len, chunk, &sender))
            .map_err(|err| {
                from_map_io(
                    &format!("starting a batch reader of map {:?}", map.name),
                    &err,
                )
            })?;
        Ok(BatchChunks {
            map: slf.clone().unbind(),
            chunks: std::sync::Mutex::new(Some(receiver)),
            done: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Writes many entries with one `BPF_MAP_UPDATE_BATCH`: `keys` and `values` are the keys and values back to
    /// back. Returns how many were written.
    #[pyo3(signature = (keys, values, flags = 0))]
    fn update_batch(
        &self,
        py: Python<'_>,
        keys: &[u8],
        values: &[u8],
        flags: u64,
    ) -> PyResult<usize> {
        self.refuse_if_batch_unsupported(BatchCommand::Update)?;
        let key_size = self.shape.key_size as usize;
        let count = self.batch_count(keys, key_size, "keys")?;
        if values.len() != count * self.value_buffer_len {
            return Err(new_err(
                Kind::Map,
                format!(
                    "{count} keys need {} bytes of values ({} each) for map {:?}, got {}",
                    count * self.value_buffer_len,
                    self.value_buffer_len,
                    self.name,
                    values.len()
                ),
            ));
        }
        if count == 0 {
            return Ok(0);
        }
        self.detached(py, |fd| {
            let (done, result) = sys::update_batch(fd, keys, values, count, flags);
            result
                .map(|()| done)
                .map_err(|err| self.batch_error(BatchCommand::Update, done, &err))
        })
    }

    /// Deletes many keys (back to back in `keys`) with one `BPF_MAP_DELETE_BATCH`. Returns how many were deleted;
    /// a missing key stops the batch with `NotFoundError`.
    fn delete_batch(&self, py: Python<'_>, keys: &[u8]) -> PyResult<usize> {
        self.refuse_if_batch_unsupported(BatchCommand::Delete)?;
        let key_size = self.shape.key_size as usize;
        let count = self.batch_count(keys, key_size, "keys")?;
        if count == 0 {
            return Ok(0);
        }
        self.detached(py, |fd| {
            let (done, result) = sys::delete_batch(fd, keys, count);
            match result {
                Ok(()) => Ok(done),
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Err(Deferred::Plain(
                    Kind::NotFound,
                    format!(
                        "deleting from map {:?}: key number {done} of the batch is not in the map ({done} deleted)",
                        self.name
                    ),
                )),
                Err(err) => Err(self.batch_error(BatchCommand::Delete, done, &err)),
            }
        })
    }

    /// Removes and returns the head of a queue or stack map, or `None` when it is empty.
    fn pop<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let mut value = vec![0u8; self.value_buffer_len];
        let found = self.with_fd(|fd| {
            sys::lookup_and_delete(fd, None, &mut value)
                .map_err(|err| from_map_io(&format!("popping from map {:?}", self.name), &err))
        })?;
        Ok(found.then(|| PyBytes::new(py, &value)))
    }

    /// Reads the head of a queue or stack map without removing it, or `None` when it is empty.
    fn peek<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let mut value = vec![0u8; self.value_buffer_len];
        let found = self.with_fd(|fd| {
            sys::lookup_keyless(fd, &mut value)
                .map_err(|err| from_map_io(&format!("peeking into map {:?}", self.name), &err))
        })?;
        Ok(found.then(|| PyBytes::new(py, &value)))
    }

    /// Pushes `value` onto a queue, stack or bloom filter (`flags` 2, BPF_EXIST, lets a full queue or stack drop
    /// its oldest value).
    #[pyo3(signature = (value, flags = 0))]
    fn push(&self, value: &[u8], flags: u64) -> PyResult<()> {
        self.check_value(value)?;
        self.with_fd(|fd| {
            sys::update_keyless(fd, value, flags)
                .map_err(|err| from_map_io(&format!("pushing onto map {:?}", self.name), &err))
        })
    }

    /// Whether a bloom filter may contain `value` (false means certainly not).
    fn may_contain(&self, value: &[u8]) -> PyResult<bool> {
        self.check_value(value)?;
        let mut probe = value.to_vec();
        self.with_fd(|fd| {
            sys::lookup_keyless(fd, &mut probe).map_err(|err| {
                from_map_io(&format!("looking up a value in map {:?}", self.name), &err)
            })
        })
    }

    /// Stores a loaded program's fd under `key` (program arrays; device and CPU maps take it in their values).
    #[pyo3(signature = (key, program, flags = 0))]
    fn update_program(
        &self,
        py: Python<'_>,
        key: &[u8],
        program: &Program,
        flags: u64,
    ) -> PyResult<()> {
        let value_len = self.value_buffer_len;
        self.store_program_value(py, key, program, flags, "storing a program", |fd| {
            fd_value(fd, value_len)
        })
    }

    /// Stores `head` followed by a loaded program's fd under `key`: device and CPU map entries whose program runs
    /// on each redirected frame (`struct bpf_devmap_val` / `bpf_cpumap_val`: an ifindex or queue size, then the
    /// program's fd). The rest of the value is zero.
    #[pyo3(signature = (key, head, program, flags = 0))]
    fn update_with_program(
        &self,
        py: Python<'_>,
        key: &[u8],
        head: &[u8],
        program: &Program,
        flags: u64,
    ) -> PyResult<()> {
        let value_len = self.value_buffer_len;
        if head.len() + 4 > value_len {
            return Err(new_err(
                Kind::InvalidArgument,
                format!(
                    "map {:?} has {value_len}-byte values: no room for a program after {} bytes (the map was \
                     declared without program entries; aya-ebpf's btf_maps::DevMap/CpuMap have them)",
                    self.name,
                    head.len()
                ),
            ));
        }
        self.store_program_value(
            py,
            key,
            program,
            flags,
            "storing an entry with a program",
            |fd| {
                let mut value = head.to_vec();
                value.extend_from_slice(&fd.as_raw_fd().to_ne_bytes());
                value.resize(value_len, 0);
                value
            },
        )
    }

    /// Stores another map's fd under `key` (maps of maps).
    #[pyo3(signature = (key, inner, flags = 0))]
    fn update_map(&self, py: Python<'_>, key: &[u8], inner: &Map, flags: u64) -> PyResult<()> {
        self.check_key(key)?;
        let context = format!("storing map {:?} in map {:?}", inner.name, self.name);
        if std::sync::Arc::ptr_eq(&self.data, &inner.data) {
            return Err(new_err(
                Kind::Map,
                format!("map {:?} cannot contain itself", self.name),
            ));
        }
        let value_len = self.value_buffer_len;
        self.detached(py, |fd| {
            // The inner map stays locked (so open) across the syscall: its fd number is in `value`.
            let inner_guard = lock(&inner.data);
            let inner_data = inner_guard.as_ref().ok_or_else(|| {
                Deferred::Plain(Kind::Closed, format!("map {:?} is closed", inner.name))
            })?;
            let value = fd_value(inner_data.fd().as_fd(), value_len);
            sys::update(fd, key, &value, flags).map_err(|err| Deferred::MapIo(context, err))
        })
    }

    /// Stores the fd of `path` (a cgroup folder for cgroup arrays) under `key`. The fd is opened here and closed
    /// after the update: the kernel keeps its own reference.
    #[pyo3(signature = (key, path, flags = 0))]
    fn update_path(&self, py: Python<'_>, key: &[u8], path: PathBuf, flags: u64) -> PyResult<()> {
        self.check_key(key)?;
        let context = format!("storing {} in map {:?}", path.display(), self.name);
        let value_len = self.value_buffer_len;
        self.detached(py, |fd| {
            let file = open_path(&path)?;
            let value = fd_value(file.as_fd(), value_len);
            sys::update(fd, key, &value, flags).map_err(|err| Deferred::MapIo(context, err))
        })
    }

    /// The value stored for the object at `path` (storage maps keyed by an fd: a cgroup folder, a file), or
    /// `None`.
    fn lookup_path<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let context = format!("looking up {} in map {:?}", path.display(), self.name);
        let key_size = self.shape.key_size as usize;
        let mut value = vec![0u8; self.value_buffer_len];
        let found = self.detached(py, |fd| {
            let file = open_path(&path)?;
            let key = fd_value(file.as_fd(), key_size);
            sys::lookup(fd, &key, &mut value).map_err(|err| Deferred::MapIo(context, err))
        })?;
        Ok(found.then(|| PyBytes::new(py, &value)))
    }

    /// Sets the value stored for the object at `path` (storage maps keyed by an fd).
    #[pyo3(signature = (path, value, flags = 0))]
    fn update_at_path(
        &self,
        py: Python<'_>,
        path: PathBuf,
        value: &[u8],
        flags: u64,
    ) -> PyResult<()> {
        self.check_value(value)?;
        let context = format!("updating {} in map {:?}", path.display(), self.name);
        let key_size = self.shape.key_size as usize;
        self.detached(py, |fd| {
            let file = open_path(&path)?;
            let key = fd_value(file.as_fd(), key_size);
            sys::update(fd, &key, value, flags).map_err(|err| Deferred::MapIo(context, err))
        })
    }

    /// Removes the value stored for the object at `path`; returns whether there was one.
    fn delete_path(&self, py: Python<'_>, path: PathBuf) -> PyResult<bool> {
        let context = format!("deleting {} from map {:?}", path.display(), self.name);
        let key_size = self.shape.key_size as usize;
        self.detached(py, |fd| {
            let file = open_path(&path)?;
            let key = fd_value(file.as_fd(), key_size);
            sys::delete(fd, &key).map_err(|err| Deferred::MapIo(context, err))
        })
    }
}

impl Map {
    fn batch_count(&self, blob: &[u8], element: usize, what: &str) -> PyResult<usize> {
        if element == 0 || blob.len() % element != 0 {
            return Err(new_err(
                Kind::Map,
                format!(
                    "{what} for map {:?} must be whole {element}-byte elements back to back, got {} bytes",
                    self.name,
                    blob.len()
                ),
            ));
        }
        let count = blob.len() / element;
        if u32::try_from(count).is_err() {
            return Err(new_err(
                Kind::Map,
                format!("too many {what} in one batch: {count}"),
            ));
        }
        Ok(count)
    }
}
