//! `Map` (any map, raw bytes in and out) and `RingBuf` (a stream of records), each sharing its fd with the owning
//! `Ebpf` so that closing the object closes the map too. Batch, pinning and fd-valued operations on `Map` live in
//! `map_ops.rs`, `PerfEventArray` in `perf.rs`.

use std::os::fd::AsFd as _;
use std::sync::{Arc, Mutex, PoisonError};

use aya::maps::{Map as AyaMap, MapData, RingBuf as AyaRingBuf};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::{closed, from_map_io, new_err, Deferred, Kind};
use crate::map_shared::{
    check_stride, drain_packed_waiting, drain_waiting, lock, shape_of, Owner, Packed, Shape, Shared,
};
use crate::names::{is_per_cpu, map_kind, MAP_TYPE_PERF_EVENT_ARRAY, MAP_TYPE_RINGBUF};
use crate::perf::{PerfEventArray, PerfShared, PerfState};
use crate::sys;

/// The owning `Ebpf`'s handle on a map it gave to Python, so `close()` can close it.
pub enum MapSlot {
    Data(Shared<MapData>),
    Ring(Shared<AyaRingBuf<MapData>>),
    Perf(PerfShared),
}

impl MapSlot {
    pub fn close(&self) {
        match self {
            Self::Data(data) => drop(lock(data).take()),
            Self::Ring(ring) => drop(lock(ring).take()),
            Self::Perf(perf) => perf.close(),
        }
    }

    /// A duplicate of the map's fd, or `None` once it is closed (ring buffers and perf arrays give none).
    pub fn duplicate_fd(&self) -> Option<std::io::Result<std::os::fd::OwnedFd>> {
        match self {
            Self::Data(data) => lock(data)
                .as_ref()
                .map(|data| data.fd().as_fd().try_clone_to_owned()),
            Self::Ring(_) | Self::Perf(_) => None,
        }
    }

    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Data(_) => "Map",
            Self::Ring(_) => "RingBuf",
            Self::Perf(_) => "PerfEventArray",
        }
    }
}

macro_rules! map_data {
    ($map:expr) => {
        match $map {
            AyaMap::Array(d)
            | AyaMap::ArrayOfMaps(d)
            | AyaMap::BloomFilter(d)
            | AyaMap::CgroupArray(d)
            | AyaMap::CgroupStorage(d)
            | AyaMap::CgrpStorage(d)
            | AyaMap::CpuMap(d)
            | AyaMap::DevMap(d)
            | AyaMap::DevMapHash(d)
            | AyaMap::HashMap(d)
            | AyaMap::HashOfMaps(d)
            | AyaMap::InodeStorage(d)
            | AyaMap::LpmTrie(d)
            | AyaMap::LruHashMap(d)
            | AyaMap::PerCpuArray(d)
            | AyaMap::PerCpuCgroupStorage(d)
            | AyaMap::PerCpuHashMap(d)
            | AyaMap::PerCpuLruHashMap(d)
            | AyaMap::PerfEventArray(d)
            | AyaMap::ProgramArray(d)
            | AyaMap::Queue(d)
            | AyaMap::ReusePortSockArray(d)
            | AyaMap::RingBuf(d)
            | AyaMap::SockHash(d)
            | AyaMap::SockMap(d)
            | AyaMap::SkStorage(d)
            | AyaMap::Stack(d)
            | AyaMap::StackTraceMap(d)
            | AyaMap::Unsupported(d)
            | AyaMap::XskMap(d) => d,
        }
    };
}

/// The fd and kernel handle of a map aya still holds.
pub fn map_data(map: &AyaMap) -> &MapData {
    map_data!(map)
}

/// The kind name of a map aya still holds.
pub fn map_kind_of(map: &AyaMap) -> &'static str {
    map_data!(map)
        .info()
        .ok()
        .and_then(|info| info.map_type().ok())
        .map_or("Unknown", |t| map_kind(t as u32))
}

pub(crate) fn possible_cpus() -> PyResult<usize> {
    aya::util::nr_cpus().map_err(|(path, err)| new_err(Kind::Map, format!("reading {path}: {err}")))
}

/// Wraps a map taken from aya in its Python class; returns the Python object and the owner's handle on it.
pub fn wrap(
    py: Python<'_>,
    owner: Owner,
    name: &str,
    map: AyaMap,
    wake_on_logs: bool,
) -> PyResult<(Py<PyAny>, MapSlot)> {
    let data = map_data!(map);
    wrap_data(py, Some(owner), name, data, wake_on_logs)
}

/// Records `path` as the pin of a handle made by `wrap_data`, whichever class it is: `pinned_path` shows it and
/// `unpin()` removes it.
pub(crate) fn set_pinned_path(handle: &Bound<'_, PyAny>, path: std::path::PathBuf) -> PyResult<()> {
    let pinned = if let Ok(map) = handle.cast::<Map>() {
        &map.get().pinned
    } else if let Ok(ring) = handle.cast::<RingBuf>() {
        &ring.get().pinned
    } else {
        &handle.cast::<crate::perf::PerfEventArray>()?.get().pinned
    };
    *pinned.lock().unwrap_or_else(PoisonError::into_inner) = Some(path);
    Ok(())
}

/// The Python handle on perf buffers already open (at load, or by `wrap_data`).
pub(crate) fn wrap_perf(
    py: Python<'_>,
    owner: Option<Owner>,
    name: &str,
    shared: PerfShared,
    wake_on_logs: bool,
    shape: Shape,
) -> PyResult<(Py<PyAny>, MapSlot)> {
    let object = PerfEventArray::new(name, shared.clone(), owner, wake_on_logs, shape);
    Ok((Py::new(py, object)?.into_any(), MapSlot::Perf(shared)))
}

/// Wraps a map's fd in the native class for its kind: `RingBuf`, `PerfEventArray` or `Map`. `owner` is `None` for
/// maps opened from a pin, which belong to no object.
pub(crate) fn wrap_data(
    py: Python<'_>,
    owner: Option<Owner>,
    name: &str,
    data: MapData,
    wake_on_logs: bool,
) -> PyResult<(Py<PyAny>, MapSlot)> {
    let shape = shape_of(name, &data)?;
    if shape.map_type == MAP_TYPE_RINGBUF {
        let ring = AyaRingBuf::try_from(AyaMap::RingBuf(data))
            .map_err(|err| new_err(Kind::Map, format!("opening ring buffer {name:?}: {err}")))?;
        let shared = Arc::new(Mutex::new(Some(ring)));
        let object = RingBuf {
            name: name.to_owned(),
            ring: shared.clone(),
            owner,
            wake_on_logs,
            max_entries: shape.max_entries,
            scratch: Mutex::new(Vec::new()),
            pinned: Mutex::new(None),
        };
        return Ok((Py::new(py, object)?.into_any(), MapSlot::Ring(shared)));
    }
    if shape.map_type == MAP_TYPE_PERF_EVENT_ARRAY {
        let state = PerfState::open(name, data).map_err(|failed| PyErr::from(failed.0))?;
        let shared = PerfShared::new(state);
        return wrap_perf(py, owner, name, shared, wake_on_logs, shape);
    }
    let value_buffer_len = if is_per_cpu(shape.map_type) {
        possible_cpus()? * (shape.value_size as usize).next_multiple_of(8)
    } else {
        shape.value_size as usize
    };
    let shared = Arc::new(Mutex::new(Some(data)));
    let object = Map {
        name: name.to_owned(),
        data: shared.clone(),
        shape,
        value_buffer_len,
        pinned: Mutex::new(None),
        batch_refused: std::sync::atomic::AtomicU8::new(0),
    };
    Ok((Py::new(py, object)?.into_any(), MapSlot::Data(shared)))
}

/// A map of any type, seen as raw key and value bytes. Python's `pyaya` classes give it its typed shape.
#[pyclass(module = "pyaya._native", frozen)]
pub struct Map {
    pub(crate) name: String,
    pub(crate) data: Shared<MapData>,
    pub(crate) shape: Shape,
    /// Bytes a lookup writes: `value_size`, or one 8-byte-aligned slot per possible CPU for per-CPU maps.
    pub(crate) value_buffer_len: usize,
    /// This handle's pin (made by `pin()`, opened by `from_pin`, or by `pin_maps`), so `unpin()` knows what to remove.
    pub(crate) pinned: Mutex<Option<std::path::PathBuf>>,
    /// One bit per batch command (`map_ops::BatchCommand`) the kernel refused for this map type, so later calls
    /// skip straight to the per-key path.
    pub(crate) batch_refused: std::sync::atomic::AtomicU8,
}

impl Map {
    pub(crate) fn with_fd<T>(
        &self,
        f: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> PyResult<T>,
    ) -> PyResult<T> {
        let guard = lock(&self.data);
        let data = guard
            .as_ref()
            .ok_or_else(|| closed(&format!("map {:?}", self.name)))?;
        f(data.fd().as_fd())
    }

    pub(crate) fn check_value(&self, value: &[u8]) -> PyResult<()> {
        if value.len() == self.value_buffer_len {
            Ok(())
        } else {
            Err(new_err(
                Kind::Map,
                format!(
                    "map {:?} takes {}-byte values, got {} bytes",
                    self.name,
                    self.value_buffer_len,
                    value.len()
                ),
            ))
        }
    }

    pub(crate) fn check_key(&self, key: &[u8]) -> PyResult<()> {
        if key.len() == self.shape.key_size as usize {
            Ok(())
        } else {
            Err(new_err(
                Kind::Map,
                format!(
                    "map {:?} has {}-byte keys, got {} bytes",
                    self.name,
                    self.shape.key_size,
                    key.len()
                ),
            ))
        }
    }
}

#[pyaya_guard::guard(Map)]
#[pymethods]
impl Map {
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The map's type name, e.g. `"HashMap"`.
    #[getter]
    fn kind(&self) -> &'static str {
        map_kind(self.shape.map_type)
    }

    #[getter]
    fn map_type(&self) -> u32 {
        self.shape.map_type
    }

    #[getter]
    fn key_size(&self) -> u32 {
        self.shape.key_size
    }

    #[getter]
    fn value_size(&self) -> u32 {
        self.shape.value_size
    }

    #[getter]
    fn max_entries(&self) -> u32 {
        self.shape.max_entries
    }

    #[getter]
    fn flags(&self) -> u32 {
        self.shape.flags
    }

    /// Length of the buffers `lookup` returns and `update` takes (larger than `value_size` for per-CPU maps).
    #[getter]
    fn value_buffer_len(&self) -> usize {
        self.value_buffer_len
    }

    /// The value under `key`, or `None`.
    fn lookup<'py>(&self, py: Python<'py>, key: &[u8]) -> PyResult<Option<Bound<'py, PyBytes>>> {
        self.check_key(key)?;
        let mut value = vec![0u8; self.value_buffer_len];
        let found = self.with_fd(|fd| {
            sys::lookup(fd, key, &mut value).map_err(|err| {
                from_map_io(&format!("looking up a key in map {:?}", self.name), &err)
            })
        })?;
        Ok(found.then(|| PyBytes::new(py, &value)))
    }

    /// Sets `key` to `value`. `flags`: 0 any, 1 only if absent, 2 only if present.
    #[pyo3(signature = (key, value, flags = 0))]
    fn update(&self, key: &[u8], value: &[u8], flags: u64) -> PyResult<()> {
        self.check_key(key)?;
        self.check_value(value)?;
        self.with_fd(|fd| {
            sys::update(fd, key, value, flags)
                .map_err(|err| from_map_io(&format!("updating map {:?}", self.name), &err))
        })
    }

    /// Removes `key`; returns whether it was there.
    fn delete(&self, key: &[u8]) -> PyResult<bool> {
        self.check_key(key)?;
        self.with_fd(|fd| {
            sys::delete(fd, key)
                .map_err(|err| from_map_io(&format!("deleting from map {:?}", self.name), &err))
        })
    }

    /// Every key, in the kernel's order.
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let key_size = self.shape.key_size as usize;
        let keys = self.with_fd(|fd| {
            let mut keys: Vec<Vec<u8>> = Vec::new();
            let mut next = vec![0u8; key_size];
            loop {
                let previous = keys.last().map(Vec::as_slice);
                let more = sys::next_key(fd, previous, &mut next).map_err(|err| {
                    from_map_io(&format!("listing keys of map {:?}", self.name), &err)
                })?;
                if !more || keys.len() > self.shape.max_entries as usize {
                    break;
                }
                keys.push(next.clone());
            }
            Ok(keys)
        })?;
        Ok(keys.iter().map(|key| PyBytes::new(py, key)).collect())
    }

    /// Every `(key, value)` pair; keys deleted meanwhile are skipped.
    fn items<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>> {
        let keys = self.keys(py)?;
        let mut items = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(value) = self.lookup(py, key.as_bytes())? {
                items.push((key, value));
            }
        }
        Ok(items)
    }

    #[getter]
    fn closed(&self) -> bool {
        lock(&self.data).is_none()
    }

    /// Closes this handle on the map (the kernel frees the map when nothing else holds it).
    fn close(&self) {
        drop(lock(&self.data).take());
    }
}

/// A BPF ring buffer read as a stream of records (`bytes`).
#[pyclass(module = "pyaya._native", frozen)]
pub struct RingBuf {
    name: String,
    ring: Shared<AyaRingBuf<MapData>>,
    /// `None` for a ring buffer opened from a pin: no object, no log records to wake for.
    owner: Option<Owner>,
    wake_on_logs: bool,
    max_entries: u32,
    /// `drain_packed`'s batch buffer, kept between calls: a fresh one would fault its pages in every batch.
    scratch: Mutex<Vec<u8>>,
    pub(crate) pinned: Mutex<Option<std::path::PathBuf>>,
}

impl RingBuf {
    /// Copies out up to `limit` available records without waiting.
    fn take_available(&self, limit: usize) -> PyResult<Vec<Vec<u8>>> {
        let mut guard = lock(&self.ring);
        let ring = guard
            .as_mut()
            .ok_or_else(|| closed(&format!("ring buffer {:?}", self.name)))?;
        let mut records = Vec::new();
        while records.len() < limit {
            match ring.next() {
                Some(item) => records.push(item.to_vec()),
                None => break,
            }
        }
        Ok(records)
    }

    fn closed_error(&self) -> Deferred {
        Deferred::Plain(
            Kind::Closed,
            format!("ring buffer {:?} is closed", self.name),
        )
    }

    /// Waits up to `millis` for the ring (or the owner's log wake-up fd) to turn readable.
    fn wait_readable(
        &self,
        wake_fd: Option<std::os::fd::BorrowedFd<'_>>,
        millis: i32,
    ) -> Result<bool, Deferred> {
        let guard = lock(&self.ring);
        let ring = guard.as_ref().ok_or_else(|| self.closed_error())?;
        let mut fds = vec![ring.as_fd()];
        fds.extend(wake_fd);
        sys::wait_readable(&fds, millis)
            .map_err(|err| Deferred::MapIo(format!("waiting on ring buffer {:?}", self.name), err))
    }

    /// Copies up to `limit` available records at `stride` bytes each into `buffer` (emptied first), without
    /// waiting: how many it copied, and the short record that ended the batch, if one did.
    fn take_packed(
        &self,
        limit: usize,
        stride: usize,
        mut buffer: Vec<u8>,
    ) -> PyResult<Packed<Vec<u8>>> {
        let mut guard = lock(&self.ring);
        let ring = guard
            .as_mut()
            .ok_or_else(|| closed(&format!("ring buffer {:?}", self.name)))?;
        buffer.clear();
        let mut packed = Packed::new(stride, buffer);
        while packed.count < limit {
            match ring.next() {
                Some(item) => {
                    if !packed.push(&item, &[], || item.to_vec()) {
                        break;
                    }
                }
                None => break,
            }
        }
        Ok(packed)
    }
}

#[pyaya_guard::guard(Map)]
#[pymethods]
impl RingBuf {
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    #[getter]
    fn kind(&self) -> &'static str {
        "RingBuf"
    }

    /// The ring's size in bytes.
    #[getter]
    fn size(&self) -> u32 {
        self.max_entries
    }

    /// Returns up to `max_records` records (all available when `None`). When none is available, waits up to
    /// `timeout` seconds (`None`: until one arrives; `0`: not at all) with the GIL released, checking for signals
    /// so Ctrl-C interrupts the wait. Returns an empty list when the time runs out.
    #[pyo3(signature = (max_records = None, timeout = None))]
    fn drain<'py>(
        &self,
        py: Python<'py>,
        max_records: Option<usize>,
        timeout: Option<f64>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let limit = max_records.unwrap_or(usize::MAX);
        let records = drain_waiting(
            py,
            self.owner.as_ref(),
            self.wake_on_logs,
            timeout,
            |_| self.take_available(limit),
            |wake_fd, millis| self.wait_readable(wake_fd, millis),
        )?;
        Ok(records
            .iter()
            .map(|record| PyBytes::new(py, record))
            .collect())
    }

    /// As `drain`, with the records copied into one `bytes` at `stride` bytes each (longer records cut to
    /// `stride`): `(data, count, short)`. A record shorter than `stride` ends the batch and comes back whole as
    /// `short` (taken from the ring: the caller hands it on); `short` is `None` otherwise.
    #[pyo3(signature = (stride, max_records = None, timeout = None))]
    #[allow(clippy::type_complexity)]
    fn drain_packed<'py>(
        &self,
        py: Python<'py>,
        stride: usize,
        max_records: Option<usize>,
        timeout: Option<f64>,
    ) -> PyResult<(Bound<'py, PyBytes>, usize, Option<Bound<'py, PyBytes>>)> {
        check_stride(stride)?;
        let limit = max_records.unwrap_or(usize::MAX);
        let (data, count, short) = drain_packed_waiting(
            py,
            self.owner.as_ref(),
            self.wake_on_logs,
            timeout,
            &self.scratch,
            |_, buffer| self.take_packed(limit, stride, buffer),
            |wake_fd, millis| self.wait_readable(wake_fd, millis),
        )?;
        Ok((data, count, short.map(|record| PyBytes::new(py, &record))))
    }

    /// Pins the ring buffer at `path` in bpffs, so it outlives this process until `unpin()`.
    fn pin(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        let context = format!("pinning ring buffer {:?} at {}", self.name, path.display());
        py.detach(|| {
            let guard = lock(&self.ring);
            let ring = guard.as_ref().ok_or_else(|| self.closed_error())?;
            crate::pinning::check_pin_place(Kind::Map, &context, &path)?;
            sys::pin_object(ring.as_fd(), &path)
                .map_err(|err| Deferred::PinIo(context.clone(), err))?;
            crate::pinning::finish_pin(Kind::Map, &context, &path)
        })?;
        *self.pinned.lock().unwrap_or_else(PoisonError::into_inner) = Some(path);
        Ok(())
    }

    /// Removes the pin this handle made.
    fn unpin(&self) -> PyResult<()> {
        crate::pinning::remove_pin(&self.pinned, &self.name)
    }

    /// Where this handle pinned the ring buffer (or the pin it was opened from, or its `pin_maps` pin), or `None`.
    #[getter]
    fn pinned_path(&self) -> Option<std::path::PathBuf> {
        self.pinned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The ring buffer's fd, for readiness notification (e.g. asyncio's `add_reader`). pyaya keeps ownership:
    /// never close it.
    fn fileno(&self) -> PyResult<i32> {
        use std::os::fd::AsRawFd as _;
        let guard = lock(&self.ring);
        let ring = guard
            .as_ref()
            .ok_or_else(|| closed(&format!("ring buffer {:?}", self.name)))?;
        Ok(ring.as_raw_fd())
    }

    #[getter]
    fn closed(&self) -> bool {
        lock(&self.ring).is_none()
    }

    fn close(&self) {
        drop(lock(&self.ring).take());
    }
}

impl Map {
    /// Runs `f` on the map's `MapData` under its lock, for program attachments that target a map (sk_msg, sk_skb
    /// on a SockMap or SockHash). Errors are deferred, so this is safe with the GIL released.
    pub(crate) fn with_map_data<T>(
        &self,
        f: impl FnOnce(&MapData) -> Result<T, Deferred>,
    ) -> Result<T, Deferred> {
        let guard = lock(&self.data);
        let data = guard.as_ref().ok_or_else(|| {
            Deferred::Plain(Kind::Closed, format!("map {:?} is closed", self.name))
        })?;
        f(data)
    }
}
