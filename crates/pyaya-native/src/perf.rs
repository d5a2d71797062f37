//! `PerfEventArray`: the per-CPU perf buffers of a `BPF_MAP_TYPE_PERF_EVENT_ARRAY`, read as one stream of records.
//! One buffer per online CPU (aya's `PerfEventArray::open`), all watched by one epoll fd; lost-sample records are
//! added up in `lost`, never dropped silently.

use std::ops::ControlFlow;
use std::os::fd::{AsFd as _, AsRawFd as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use aya::maps::perf::{PerfEvent, PerfEventArrayBuffer};
use aya::maps::{Map as AyaMap, MapData, PerfEventArray as AyaPerfEventArray};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::ebpf::Ebpf;
use crate::errors::{closed, new_err, Deferred, Kind};
use crate::maps::{drain_waiting, lock, Shape, Shared};
use crate::sys;

/// Kernel `BPF_MAP_TYPE_PERF_EVENT_ARRAY`.
pub const MAP_TYPE_PERF_EVENT_ARRAY: u32 = 4;

/// Pages per CPU buffer unless the user asks otherwise: 32 KiB with 4 KiB pages.
const DEFAULT_PAGE_COUNT: usize = 8;

/// One perf buffer per CPU, with the CPU it reads.
type CpuBuffers = Vec<(u32, PerfEventArrayBuffer<MapData>)>;

/// The open buffers of a perf event array.
pub struct PerfState {
    array: AyaPerfEventArray<MapData>,
    /// `(cpu, buffer)` for every online CPU.
    buffers: CpuBuffers,
    epoll: sys::Epoll,
    /// Where to resume reading, so one busy CPU does not starve the others when `max_records` is small.
    next_buffer: usize,
}

fn open_buffers(
    array: &mut AyaPerfEventArray<MapData>,
    page_count: usize,
) -> Result<(CpuBuffers, sys::Epoll), Deferred> {
    let cpus = aya::util::online_cpus().map_err(|(path, err)| {
        Deferred::Plain(Kind::Map, format!("reading online CPUs from {path}: {err}"))
    })?;
    let epoll = sys::Epoll::new()
        .map_err(|err| Deferred::MapIo("creating an epoll fd for perf buffers".into(), err))?;
    let mut buffers = Vec::with_capacity(cpus.len());
    for cpu in cpus {
        let buffer = array.open(cpu, Some(page_count)).map_err(|err| {
            Deferred::Plain(
                Kind::Map,
                format!(
                    "opening the perf buffer of CPU {cpu} ({page_count} pages): {}",
                    crate::errors::chain_message(&err)
                ),
            )
        })?;
        epoll.add(buffer.as_fd(), u64::from(cpu)).map_err(|err| {
            Deferred::MapIo(format!("watching the perf buffer of CPU {cpu}"), err)
        })?;
        buffers.push((cpu, buffer));
    }
    Ok((buffers, epoll))
}

/// A perf event array read as a stream of `(cpu, record)` pairs.
#[pyclass(module = "pyaya._native", frozen)]
pub struct PerfEventArray {
    name: String,
    state: Shared<PerfState>,
    owner: Option<Py<Ebpf>>,
    wake_on_logs: bool,
    shape: Shape,
    lost: AtomicU64,
    page_count: AtomicUsize,
    pub(crate) pinned: Mutex<Option<PathBuf>>,
}

impl PerfEventArray {
    /// Opens one buffer per online CPU on `data` with the default page count.
    pub fn open_all(
        name: &str,
        data: MapData,
        owner: Option<Py<Ebpf>>,
        wake_on_logs: bool,
        shape: Shape,
    ) -> PyResult<(Self, Shared<PerfState>)> {
        let mut array =
            AyaPerfEventArray::try_from(AyaMap::PerfEventArray(data)).map_err(|err| {
                new_err(
                    Kind::Map,
                    format!("opening perf event array {name:?}: {err}"),
                )
            })?;
        let (buffers, epoll) = open_buffers(&mut array, DEFAULT_PAGE_COUNT)?;
        let shared = Arc::new(Mutex::new(Some(PerfState {
            array,
            buffers,
            epoll,
            next_buffer: 0,
        })));
        Ok((
            Self {
                name: name.to_owned(),
                state: shared.clone(),
                owner,
                wake_on_logs,
                shape,
                lost: AtomicU64::new(0),
                page_count: AtomicUsize::new(DEFAULT_PAGE_COUNT),
                pinned: Mutex::new(None),
            },
            shared,
        ))
    }

    fn closed_error(&self) -> Deferred {
        Deferred::Plain(
            Kind::Closed,
            format!("perf event array {:?} is closed", self.name),
        )
    }

    /// Copies out up to `limit` available records without waiting, visiting the CPUs round-robin.
    fn take_available(&self, limit: usize) -> Result<Vec<(u32, Vec<u8>)>, Deferred> {
        let mut guard = lock(&self.state);
        let state = guard.as_mut().ok_or_else(|| self.closed_error())?;
        let mut records = Vec::new();
        let mut lost = 0u64;
        let count = state.buffers.len();
        for step in 0..count {
            if records.len() >= limit {
                break;
            }
            let index = (state.next_buffer + step) % count;
            let (cpu, buffer) = &mut state.buffers[index];
            let cpu = *cpu;
            if !buffer.readable() {
                continue;
            }
            let _ = buffer.try_fold((), |(), event| {
                match event {
                    PerfEvent::Sample { head, tail } => {
                        let mut record = Vec::with_capacity(head.len() + tail.len());
                        record.extend_from_slice(head);
                        record.extend_from_slice(tail);
                        records.push((cpu, record));
                    }
                    PerfEvent::Lost { count } => lost += count,
                }
                if records.len() >= limit {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
        }
        if count > 0 {
            state.next_buffer = (state.next_buffer + 1) % count;
        }
        self.lost.fetch_add(lost, Ordering::Relaxed);
        Ok(records)
    }
}

#[pyaya_guard::guard(Map)]
#[pymethods]
impl PerfEventArray {
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    #[getter]
    fn kind(&self) -> &'static str {
        "PerfEventArray"
    }

    /// Number of slots in the map (one per possible CPU).
    #[getter]
    fn max_entries(&self) -> u32 {
        self.shape.max_entries
    }

    /// The kernel's id of the map.
    #[getter]
    fn id(&self) -> u32 {
        self.shape.id
    }

    /// Samples the kernel dropped because a CPU's buffer was full, counted from its lost-sample records.
    #[getter]
    fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Pages per CPU buffer.
    #[getter]
    fn page_count(&self) -> usize {
        self.page_count.load(Ordering::Relaxed)
    }

    /// The CPUs that have a buffer (the online CPUs when it was opened).
    #[getter]
    fn cpus(&self) -> PyResult<Vec<u32>> {
        let guard = lock(&self.state);
        let state = guard
            .as_ref()
            .ok_or_else(|| closed(&format!("perf event array {:?}", self.name)))?;
        Ok(state.buffers.iter().map(|(cpu, _)| *cpu).collect())
    }

    /// Replaces every CPU's buffer with one of `page_count` pages (a power of two). Records still in the old
    /// buffers are dropped (and not counted as lost): read them first.
    fn reopen(&self, py: Python<'_>, page_count: usize) -> PyResult<()> {
        if page_count == 0 || !page_count.is_power_of_two() {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "page_count must be a power of two (1, 2, 4, ...), got {page_count}"
            )));
        }
        py.detach(|| {
            let mut guard = lock(&self.state);
            let state = guard.as_mut().ok_or_else(|| self.closed_error())?;
            // The old buffers go first so each CPU's slot is free for its new perf event.
            state.buffers.clear();
            let (buffers, epoll) = open_buffers(&mut state.array, page_count)?;
            state.buffers = buffers;
            state.epoll = epoll;
            state.next_buffer = 0;
            Ok::<(), Deferred>(())
        })?;
        self.page_count.store(page_count, Ordering::Relaxed);
        Ok(())
    }

    /// Returns up to `max_records` `(cpu, record)` pairs (all available when `None`). When none is available,
    /// waits up to `timeout` seconds (`None`: until one arrives; `0`: not at all) with the GIL released, checking
    /// for signals every 100 ms. Returns an empty list when the time runs out.
    #[pyo3(signature = (max_records = None, timeout = None))]
    fn drain<'py>(
        &self,
        py: Python<'py>,
        max_records: Option<usize>,
        timeout: Option<f64>,
    ) -> PyResult<Vec<(u32, Bound<'py, PyBytes>)>> {
        let limit = max_records.unwrap_or(usize::MAX);
        let records = drain_waiting(
            py,
            self.owner.as_ref().map(Py::get),
            self.wake_on_logs,
            timeout,
            |py| {
                py.detach(|| self.take_available(limit))
                    .map_err(PyErr::from)
            },
            |wake_fd, millis| {
                let guard = lock(&self.state);
                let state = guard.as_ref().ok_or_else(|| self.closed_error())?;
                let mut fds = vec![state.epoll.as_fd()];
                fds.extend(wake_fd);
                sys::wait_readable(&fds, millis).map_err(|err| {
                    Deferred::MapIo(format!("waiting on perf event array {:?}", self.name), err)
                })
            },
        )?;
        Ok(records
            .iter()
            .map(|(cpu, record)| (*cpu, PyBytes::new(py, record)))
            .collect())
    }

    /// An fd that is readable when any CPU's buffer has records (an epoll fd), for asyncio's `add_reader`.
    /// pyaya keeps ownership: never close it.
    fn fileno(&self) -> PyResult<i32> {
        let guard = lock(&self.state);
        let state = guard
            .as_ref()
            .ok_or_else(|| closed(&format!("perf event array {:?}", self.name)))?;
        Ok(state.epoll.as_fd().as_raw_fd())
    }

    /// Pins the map at `path` in bpffs (the buffers themselves belong to this process).
    fn pin(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let context = format!(
            "pinning perf event array {:?} at {}",
            self.name,
            path.display()
        );
        py.detach(|| {
            let guard = lock(&self.state);
            let state = guard.as_ref().ok_or_else(|| self.closed_error())?;
            state.array.pin(&path).map_err(|err| {
                Deferred::Plain(
                    Kind::Map,
                    format!("{context}: {}", crate::errors::chain_message(&err)),
                )
            })
        })?;
        *self.pinned.lock().unwrap_or_else(PoisonError::into_inner) = Some(path);
        Ok(())
    }

    /// Removes the pin this handle made.
    fn unpin(&self) -> PyResult<()> {
        crate::map_ops::remove_pin(&self.pinned, &self.name)
    }

    /// Where this handle pinned the map (or the pin it was opened from, or its `pin_maps` pin), or `None`.
    #[getter]
    fn pinned_path(&self) -> Option<PathBuf> {
        self.pinned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    #[getter]
    fn closed(&self) -> bool {
        lock(&self.state).is_none()
    }

    /// Closes the buffers and this handle on the map.
    fn close(&self, py: Python<'_>) {
        let state = lock(&self.state).take();
        py.detach(move || drop(state));
    }
}
