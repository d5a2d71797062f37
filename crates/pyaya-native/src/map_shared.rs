//! What map handles (`Map`, `RingBuf`, `PerfEventArray`) share below their classes: the interface to the object
//! that owns them (`Owner`, implemented by `Ebpf`), the shared slot a handle and its object both hold, a map's
//! shape, and the wait loop of every stream's `drain`. `maps.rs` and `perf.rs` build on it and `ebpf.rs` creates
//! both, so neither needs to name `Ebpf`.

use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use aya::maps::MapData;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyWeakrefReference};

use crate::errors::{Deferred, Kind};

/// What a stream needs from the object that owns it: its log records delivered, and the fd that becomes
/// readable when there are some (so a wait on the stream also wakes for logs).
pub(crate) trait LogOwner: Sync {
    /// The log wake-up fd, when the object reads logs.
    fn wake_fd(&self) -> Option<BorrowedFd<'_>>;
    /// Hands pending log records to the object's handler; how many there were.
    fn flush_logs(&self, py: Python<'_>) -> PyResult<usize>;
}

/// A handle's reference to the object that owns it, held weakly: the object keeps its maps' handles, so a strong
/// reference back would be a cycle that only `close()` (or the garbage collector) breaks. Reaches the object's logs
/// through `logs`, which the object's module supplies (it casts the Python object back to its class).
pub(crate) struct Owner {
    object: Py<PyWeakrefReference>,
    logs: LogsOf,
}

/// Casts an owner's Python object to its `LogOwner`, borrowed from the object.
pub(crate) type LogsOf = for<'a, 'py> fn(&'a Bound<'py, PyAny>) -> Option<&'a dyn LogOwner>;

impl Owner {
    pub(crate) fn new(object: &Bound<'_, PyAny>, logs: LogsOf) -> PyResult<Self> {
        Ok(Self {
            object: PyWeakrefReference::new(object)?.unbind(),
            logs,
        })
    }

    /// The owning object, while it still exists.
    pub(crate) fn upgrade<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        self.object.bind(py).upgrade()
    }

    /// The logs of `object` (what `upgrade` returned), borrowed from it.
    pub(crate) fn logs_of<'a>(&self, object: &'a Bound<'_, PyAny>) -> Option<&'a dyn LogOwner> {
        (self.logs)(object)
    }
}

/// How long one wait may block with the GIL released before checking for signals (Ctrl-C).
pub(crate) const SIGNAL_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// What every stream's `drain` does: deliver pending log records of the stream's owner (while it exists), take
/// what is ready, and otherwise wait (GIL released) in slices of `SIGNAL_CHECK_INTERVAL`, checking for signals
/// between slices so Ctrl-C interrupts, until `timeout` seconds have passed (`None`: forever). `wait(wake_fd,
/// millis)` blocks on the stream's fd and the owner's log wake-up fd.
pub(crate) fn drain_waiting<T: Taken>(
    py: Python<'_>,
    owner: Option<&Owner>,
    wake_on_logs: bool,
    timeout: Option<f64>,
    mut take: impl FnMut(Python<'_>) -> PyResult<T>,
    wait: impl Fn(Option<std::os::fd::BorrowedFd<'_>>, i32) -> Result<bool, Deferred> + Sync,
) -> PyResult<T> {
    let deadline = match timeout {
        Some(seconds) if seconds.is_nan() || seconds < 0.0 => {
            return Err(crate::errors::new_err(
                Kind::InvalidArgument,
                format!("timeout must be a number of seconds >= 0 (or None to wait for ever), not {seconds}"),
            ))
        }
        Some(seconds) if seconds.is_finite() => {
            Some(Instant::now() + Duration::from_secs_f64(seconds))
        }
        _ => None,
    };
    let object = owner.and_then(|owner| owner.upgrade(py));
    let owner = owner
        .zip(object.as_ref())
        .and_then(|(owner, object)| owner.logs_of(object));
    loop {
        if let (true, Some(owner)) = (wake_on_logs, owner) {
            owner.flush_logs(py)?;
        }
        let records = take(py)?;
        if !records.nothing() {
            return Ok(records);
        }
        let slice = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(records);
                }
                left.min(SIGNAL_CHECK_INTERVAL)
            }
            None => SIGNAL_CHECK_INTERVAL,
        };
        let millis = slice.as_millis().try_into().unwrap_or(i32::MAX);
        py.detach(|| wait(owner.and_then(LogOwner::wake_fd), millis))?;
        py.check_signals()?;
    }
}

/// What one look at a stream took: `drain_waiting` waits while it is nothing.
pub(crate) trait Taken {
    fn nothing(&self) -> bool;
}

impl<T> Taken for Vec<T> {
    fn nothing(&self) -> bool {
        self.is_empty()
    }
}

impl<T> Taken for Option<T> {
    fn nothing(&self) -> bool {
        self.is_none()
    }
}

/// Records copied at a fixed stride into one buffer (`drain_packed`): each record's first `stride` bytes, in
/// order. A record shorter than `stride` ends the batch and is kept whole in `short` (it was taken from the
/// stream, so the caller must hand it on: nothing is dropped).
pub(crate) struct Packed<S> {
    pub(crate) stride: usize,
    pub(crate) data: Vec<u8>,
    pub(crate) count: usize,
    pub(crate) short: Option<S>,
}

impl<S> Packed<S> {
    /// A batch written into `data` (an emptied buffer, whose capacity is reused).
    pub(crate) fn new(stride: usize, data: Vec<u8>) -> Self {
        Self {
            stride,
            data,
            count: 0,
            short: None,
        }
    }

    /// Adds a record given as two slices (a ring's wrap-around splits it); false when it was short and the batch
    /// ends. `whole` builds the record kept in `short`.
    pub(crate) fn push(&mut self, first: &[u8], second: &[u8], whole: impl FnOnce() -> S) -> bool {
        let stride = self.stride;
        if first.len() + second.len() < stride {
            self.short = Some(whole());
            return false;
        }
        if first.len() >= stride {
            self.data.extend_from_slice(&first[..stride]);
        } else {
            self.data.extend_from_slice(first);
            self.data.extend_from_slice(&second[..stride - first.len()]);
        }
        self.count += 1;
        true
    }
}

/// What every stream's `drain_packed` does around `drain_waiting`: the batch is written into the stream's
/// `scratch` buffer (taken for the call and put back after, so its capacity is kept), copied into one `bytes`, and
/// handed back with its count and the short record that ended it, if one did. `take(py, buffer)` copies what is
/// ready into `buffer`.
pub(crate) fn drain_packed_waiting<'py, S>(
    py: Python<'py>,
    owner: Option<&Owner>,
    wake_on_logs: bool,
    timeout: Option<f64>,
    scratch: &Mutex<Vec<u8>>,
    mut take: impl FnMut(Python<'_>, Vec<u8>) -> PyResult<Packed<S>>,
    wait: impl Fn(Option<std::os::fd::BorrowedFd<'_>>, i32) -> Result<bool, Deferred> + Sync,
) -> PyResult<(Bound<'py, PyBytes>, usize, Option<S>)> {
    let mut buffer = std::mem::take(&mut *scratch.lock().unwrap_or_else(PoisonError::into_inner));
    let taken = drain_waiting(
        py,
        owner,
        wake_on_logs,
        timeout,
        |py| {
            let packed = take(py, std::mem::take(&mut buffer))?;
            if packed.count == 0 && packed.short.is_none() {
                buffer = packed.data; // nothing yet: keep the buffer for the next look
                return Ok(None);
            }
            Ok(Some(packed))
        },
        wait,
    );
    let Some(packed) = taken? else {
        *scratch.lock().unwrap_or_else(PoisonError::into_inner) = buffer;
        return Ok((PyBytes::new(py, &[]), 0, None));
    };
    let data = PyBytes::new(py, &packed.data);
    *scratch.lock().unwrap_or_else(PoisonError::into_inner) = packed.data;
    Ok((data, packed.count, packed.short))
}

/// `stride` for `drain_packed`, checked: records are copied `stride` bytes each.
pub(crate) fn check_stride(stride: usize) -> PyResult<()> {
    if stride == 0 {
        return Err(crate::errors::new_err(
            Kind::InvalidArgument,
            "stride must be the record type's size in bytes (>= 1), not 0".to_owned(),
        ));
    }
    Ok(())
}

pub(crate) type Shared<T> = Arc<Mutex<Option<T>>>;

pub(crate) fn lock<T>(shared: &Shared<T>) -> MutexGuard<'_, Option<T>> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Key and value sizes and the rest of what the kernel says about a map.
#[derive(Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) map_type: u32,
    pub(crate) key_size: u32,
    pub(crate) value_size: u32,
    pub(crate) max_entries: u32,
    pub(crate) flags: u32,
    pub(crate) id: u32,
}

/// Key and value sizes and the rest of what the kernel says about `data`.
pub(crate) fn shape_of(name: &str, data: &MapData) -> Result<Shape, Deferred> {
    let info = data.info().map_err(|err| {
        Deferred::Plain(Kind::Map, format!("reading info of map {name:?}: {err}"))
    })?;
    Ok(Shape {
        map_type: info.map_type().map_or(u32::MAX, |t| t as u32),
        key_size: info.key_size(),
        value_size: info.value_size(),
        max_entries: info.max_entries(),
        flags: info.map_flags(),
        id: info.id(),
    })
}
