//! `PerfEventArray`: the per-CPU perf buffers of a `BPF_MAP_TYPE_PERF_EVENT_ARRAY`, read as one stream of records.
//!
//! pyaya opens these buffers itself instead of through aya 0.14's `PerfEventArray::open`, which wakes the reader
//! for every sample (`wakeup_events = 1`) and counts lost samples only from `PERF_RECORD_LOST` records, which the
//! kernel writes ahead of that CPU's next sample (so a burst's losses stay unseen when no sample follows). Here,
//! per online CPU: a `PERF_COUNT_SW_BPF_OUTPUT` software event with `PERF_SAMPLE_RAW`, woken once a quarter of its
//! buffer is filled (`watermark`), its fd stored in the map's slot for that CPU, its ring mmap'd and read with
//! `data_head` loaded with acquire and `data_tail` stored with release; lost samples are added up from
//! `PERF_RECORD_LOST` records and, on kernels with `PERF_FORMAT_LOST` (6.0), read exactly from the event itself.
//! The buffers are opened when the object is loaded (`Ebpf.load`), so no sample of an attached program finds an
//! empty slot.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd};
use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use aya::maps::MapData;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::{closed, Deferred, Kind};
use crate::map_shared::{
    check_stride, drain_packed_waiting, drain_waiting, lock, Owner, Packed, Shape, Shared,
};
use crate::sys;

/// Pages per CPU buffer unless the user asks otherwise: 32 KiB with 4 KiB pages.
const DEFAULT_PAGE_COUNT: usize = 8;

// perf_event_open(2) constants (include/uapi/linux/perf_event.h).
const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_BPF_OUTPUT: u64 = 10;
const PERF_SAMPLE_RAW: u64 = 1 << 10;
const PERF_FORMAT_LOST: u64 = 1 << 4;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
/// `perf_event_attr.watermark`: wake up after `wakeup_watermark` bytes rather than `wakeup_events` samples.
const ATTR_FLAG_WATERMARK: u64 = 1 << 14;
const PERF_RECORD_LOST: u32 = 2;
const PERF_RECORD_SAMPLE: u32 = 9;
/// `PERF_ATTR_SIZE_VER0`: every field this code sets is in the first version of the struct.
const PERF_ATTR_SIZE_VER0: u32 = 64;
/// Offsets of `data_head` and `data_tail` in `struct perf_event_mmap_page` (the first mmap'd page).
const DATA_HEAD_OFFSET: usize = 1024;
const DATA_TAIL_OFFSET: usize = 1032;
/// Size of `struct perf_event_header`.
const HEADER_LEN: usize = 8;

/// The first version of `struct perf_event_attr` (64 bytes); the kernel takes any version it knows.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_watermark: u32,
    bp_type: u32,
    config1: u64,
}

const _: () = assert!(std::mem::size_of::<PerfEventAttr>() == PERF_ATTR_SIZE_VER0 as usize);

/// Whether perf events count their own lost samples (`PERF_FORMAT_LOST`, kernel 6.0): 0 not probed yet, 1 yes,
/// 2 no. Probed by the first open: older kernels refuse the unknown `read_format` bit with EINVAL.
static FORMAT_LOST: AtomicU8 = AtomicU8::new(0);

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// Opens the BPF output event of `cpu`, enabled, waking readers once `watermark` bytes are unread.
fn open_output_event(cpu: u32, watermark: u32, count_lost: bool) -> io::Result<OwnedFd> {
    let attr = PerfEventAttr {
        kind: PERF_TYPE_SOFTWARE,
        size: PERF_ATTR_SIZE_VER0,
        config: PERF_COUNT_SW_BPF_OUTPUT,
        sample_period: 1,
        sample_type: PERF_SAMPLE_RAW,
        read_format: if count_lost { PERF_FORMAT_LOST } else { 0 },
        flags: ATTR_FLAG_WATERMARK,
        wakeup_watermark: watermark,
        ..PerfEventAttr::default()
    };
    let cpu = libc::c_int::try_from(cpu).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `attr` is a fully initialised perf_event_attr of the size it declares, alive for the call; the other
    // arguments are plain integers (pid -1 with a CPU: every process on that CPU; no group).
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            std::ptr::from_ref(&attr),
            -1 as libc::pid_t,
            cpu,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Opens `cpu`'s event with `PERF_FORMAT_LOST` where the kernel has it, probing on first use.
fn open_output_event_probing(cpu: u32, watermark: u32) -> io::Result<(OwnedFd, bool)> {
    match FORMAT_LOST.load(Ordering::Relaxed) {
        1 => Ok((open_output_event(cpu, watermark, true)?, true)),
        2 => Ok((open_output_event(cpu, watermark, false)?, false)),
        _ => match open_output_event(cpu, watermark, true) {
            Ok(fd) => {
                FORMAT_LOST.store(1, Ordering::Relaxed);
                Ok((fd, true))
            }
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
                // Kernels before 6.0 refuse the unknown read_format bit; if this open fails too, the EINVAL
                // was about something else and nothing is concluded.
                let fd = open_output_event(cpu, watermark, false)?;
                FORMAT_LOST.store(2, Ordering::Relaxed);
                Ok((fd, false))
            }
            Err(err) => Err(err),
        },
    }
}

/// Whether this kernel's perf events count their own lost samples (`PERF_FORMAT_LOST`, Linux 6.0), so that a
/// perf event array's `lost` is exact at any moment, even when no sample follows a burst of losses. Probed by
/// opening (and closing) one BPF output event on the first online CPU.
#[pyaya_guard::guard(Map)]
#[pyfunction]
pub fn perf_lost_count_supported(py: Python<'_>) -> PyResult<bool> {
    if FORMAT_LOST.load(Ordering::Relaxed) == 0 {
        py.detach(|| {
            let cpu = online_cpus()?.first().copied().unwrap_or(0);
            open_output_event_probing(cpu, 1).map(drop).map_err(|err| {
                Deferred::MapIo(format!("opening a BPF output perf event on CPU {cpu}"), err)
            })
        })?;
    }
    Ok(FORMAT_LOST.load(Ordering::Relaxed) == 1)
}

fn online_cpus() -> Result<Vec<u32>, Deferred> {
    aya::util::online_cpus().map_err(|(path, err)| {
        Deferred::Plain(Kind::Map, format!("reading online CPUs from {path}: {err}"))
    })
}

/// One CPU's perf buffer: its BPF output event and the mmap'd ring the kernel writes samples into.
struct CpuBuffer {
    cpu: u32,
    fd: OwnedFd,
    /// Start of the mapping: the `perf_event_mmap_page`, then `data_len` bytes of ring.
    mapping: NonNull<u8>,
    mapping_len: usize,
    page_size: usize,
    /// Ring size in bytes, a power of two.
    data_len: usize,
    /// Lost samples announced by `PERF_RECORD_LOST` records read so far.
    lost_records: u64,
    /// Opened with `PERF_FORMAT_LOST`: `read()` gives the exact count of samples the kernel dropped.
    counts_lost: bool,
}

// SAFETY: the mapping is owned by this value alone (unmapped in Drop) and only accessed through `&mut self` or
// atomics; the kernel side of the ring is designed for a reader on any thread.
unsafe impl Send for CpuBuffer {}

impl CpuBuffer {
    fn open(cpu: u32, page_count: usize) -> io::Result<Self> {
        let page_size = page_size();
        let data_len = page_size * page_count;
        // A wake-up per quarter buffer: the reader wakes once per batch instead of once per sample, and three
        // quarters are left for what arrives while it runs. Below the watermark, records wait for the reader's
        // next poll slice (`SIGNAL_CHECK_INTERVAL`, 100 ms), which bounds their latency.
        let watermark = u32::try_from(data_len / 4).unwrap_or(u32::MAX).max(1);
        let (fd, counts_lost) = open_output_event_probing(cpu, watermark)?;
        let mapping_len = page_size + data_len;
        // SAFETY: a fresh shared mapping of a perf event fd, which the kernel sizes and validates (1 + 2^n pages).
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapping_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if address == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mapping = NonNull::new(address.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        Ok(Self {
            cpu,
            fd,
            mapping,
            mapping_len,
            page_size,
            data_len,
            lost_records: 0,
            counts_lost,
        })
    }

    fn control(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: `offset` is DATA_HEAD_OFFSET or DATA_TAIL_OFFSET, 8-byte aligned fields inside the first page of
        // a live mapping; the kernel and this reader access them concurrently, so only through an atomic.
        unsafe { &*self.mapping.as_ptr().add(offset).cast::<AtomicU64>() }
    }

    /// The kernel's write position. Acquire: the record bytes before it are visible once it is read.
    fn head(&self) -> u64 {
        self.control(DATA_HEAD_OFFSET).load(Ordering::Acquire)
    }

    fn tail(&self) -> u64 {
        // Only this reader writes data_tail.
        self.control(DATA_TAIL_OFFSET).load(Ordering::Relaxed)
    }

    /// Hands the bytes before `tail` back to the kernel. Release: every read of them happens before.
    fn set_tail(&self, tail: u64) {
        self.control(DATA_TAIL_OFFSET)
            .store(tail, Ordering::Release);
    }

    fn readable(&self) -> bool {
        self.head() != self.tail()
    }

    /// The data pages as two slices holding `len` bytes from `position` (a free-running byte count): the second
    /// is empty unless the range wraps around the end of the ring.
    fn slices(&self, position: u64, len: usize) -> (&[u8], &[u8]) {
        let offset = (position as usize) & (self.data_len - 1);
        let len = len.min(self.data_len);
        let first = len.min(self.data_len - offset);
        // SAFETY: callers pass ranges inside [tail, head), which the kernel has published (acquire in `head`) and
        // does not overwrite until data_tail moves past them; `offset + first <= data_len` and `len - first <=
        // data_len`, so both slices lie inside the data pages that follow the first page of the mapping.
        unsafe {
            let data = self.mapping.as_ptr().add(self.page_size);
            (
                std::slice::from_raw_parts(data.add(offset), first),
                std::slice::from_raw_parts(data, len - first),
            )
        }
    }

    fn copy_into(&self, position: u64, out: &mut [u8]) {
        let (head, tail) = self.slices(position, out.len());
        out[..head.len()].copy_from_slice(head);
        out[head.len()..head.len() + tail.len()].copy_from_slice(tail);
    }

    fn read_u32(&self, position: u64) -> u32 {
        let mut bytes = [0u8; 4];
        self.copy_into(position, &mut bytes);
        u32::from_ne_bytes(bytes)
    }

    fn read_u64(&self, position: u64) -> u64 {
        let mut bytes = [0u8; 8];
        self.copy_into(position, &mut bytes);
        u64::from_ne_bytes(bytes)
    }

    /// Hands up to `limit` samples to `sink` (`sink(cpu, first, second)`: the record as two slices, the second
    /// non-empty when it wraps around the ring's end; false stops after that sample) and counts lost-sample
    /// records. A malformed record (which the kernel never writes) skips the rest of the ring and is reported,
    /// never silently dropped.
    fn read_with(
        &mut self,
        limit: usize,
        sink: &mut impl FnMut(u32, &[u8], &[u8]) -> bool,
    ) -> BufferRead {
        let head = self.head();
        let mut tail = self.tail();
        let mut read = BufferRead {
            moved: 0,
            stopped: false,
            malformed: None,
        };
        while tail != head && read.moved < limit && !read.stopped {
            // struct perf_event_header { u32 type; u16 misc; u16 size; }
            let mut header = [0u8; HEADER_LEN];
            self.copy_into(tail, &mut header);
            let kind = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]);
            let size = usize::from(u16::from_ne_bytes([header[6], header[7]]));
            let available = head.wrapping_sub(tail);
            if size < HEADER_LEN || size as u64 > available {
                read.malformed = Some(format!(
                    "a malformed perf record (type {kind}, {size} bytes) on CPU {}: the {available} unread bytes \
                     of its buffer were skipped",
                    self.cpu
                ));
                tail = head;
                break;
            }
            let body = tail.wrapping_add(HEADER_LEN as u64);
            match kind {
                PERF_RECORD_SAMPLE if size >= HEADER_LEN + 4 => {
                    // PERF_SAMPLE_RAW: a u32 size, then that many bytes (the program's record and its padding).
                    let raw_len = (self.read_u32(body) as usize).min(size - HEADER_LEN - 4);
                    let (first, second) = self.slices(body.wrapping_add(4), raw_len);
                    read.stopped = !sink(self.cpu, first, second);
                    read.moved += 1;
                }
                PERF_RECORD_LOST if size >= HEADER_LEN + 16 => {
                    // { header, u64 id, u64 lost }
                    self.lost_records += self.read_u64(body.wrapping_add(8));
                }
                _ => {}
            }
            tail = tail.wrapping_add(size as u64);
        }
        self.set_tail(tail);
        read
    }

    /// Samples this buffer's event dropped so far: exact (read from the event) with `PERF_FORMAT_LOST`, else those
    /// its lost-sample records announced.
    fn lost(&self) -> u64 {
        if !self.counts_lost {
            return self.lost_records;
        }
        // read_format = PERF_FORMAT_LOST: { u64 value; u64 lost; }
        let mut values = [0u64; 2];
        // SAFETY: `values` is a writable 16-byte buffer, what a read of this event returns; the fd is open.
        let read = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                values.as_mut_ptr().cast(),
                std::mem::size_of_val(&values),
            )
        };
        if read == std::mem::size_of_val(&values) as isize {
            // The records only announce drops the event has already counted.
            values[1].max(self.lost_records)
        } else {
            self.lost_records
        }
    }
}

/// What one `CpuBuffer::read_with` did.
struct BufferRead {
    moved: usize,
    /// The sink refused more.
    stopped: bool,
    malformed: Option<String>,
}

/// `(cpu, record)` from a record's two slices.
fn whole(cpu: u32, first: &[u8], second: &[u8]) -> (u32, Vec<u8>) {
    let mut record = Vec::with_capacity(first.len() + second.len());
    record.extend_from_slice(first);
    record.extend_from_slice(second);
    (cpu, record)
}

impl Drop for CpuBuffer {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `open` with this length and is not used after this point.
        unsafe { libc::munmap(self.mapping.as_ptr().cast(), self.mapping_len) };
    }
}

/// The open buffers of a perf event array.
pub struct PerfState {
    name: String,
    map: MapData,
    buffers: Vec<CpuBuffer>,
    epoll: sys::Epoll,
    page_count: usize,
    /// Where to resume reading, so one busy CPU does not starve the others when `max_records` is small.
    next_buffer: usize,
    /// Records still unread in buffers that `reopen` replaced: handed out before the new buffers' records.
    carried: VecDeque<(u32, Vec<u8>)>,
    /// Samples lost by the buffers that `reopen` replaced.
    lost_before: u64,
    /// A malformed record met while records were being returned: reported by the next `take`.
    malformed: Option<String>,
}

impl PerfState {
    /// Opens one buffer per online CPU on `map` and stores each buffer's event in the map's slot for its CPU. On
    /// failure the map comes back with the error.
    pub fn open(name: &str, map: MapData) -> Result<Self, Box<(Deferred, MapData)>> {
        let (buffers, epoll) = match open_buffers(name, &map, DEFAULT_PAGE_COUNT) {
            Ok(opened) => opened,
            Err(err) => return Err(Box::new((err, map))),
        };
        Ok(Self {
            name: name.to_owned(),
            map,
            buffers,
            epoll,
            page_count: DEFAULT_PAGE_COUNT,
            next_buffer: 0,
            carried: VecDeque::new(),
            lost_before: 0,
            malformed: None,
        })
    }

    /// Copies out up to `limit` available records without waiting, visiting the CPUs round-robin.
    fn take(&mut self, limit: usize) -> Result<Vec<(u32, Vec<u8>)>, Deferred> {
        let mut records = Vec::new();
        self.take_with(limit, |cpu, first, second| {
            records.push(whole(cpu, first, second));
            true
        })?;
        Ok(records)
    }

    /// Copies up to `limit` available records at `stride` bytes each into `data` (emptied first), without waiting.
    fn take_packed(
        &mut self,
        limit: usize,
        stride: usize,
        mut data: Vec<u8>,
    ) -> Result<Packed<(u32, Vec<u8>)>, Deferred> {
        data.clear();
        let mut packed = Packed::new(stride, data);
        self.take_with(limit, |cpu, first, second| {
            packed.push(first, second, || whole(cpu, first, second))
        })?;
        Ok(packed)
    }

    /// Hands up to `limit` available records to `sink` (see `CpuBuffer::read_with`) without waiting: records
    /// carried over from replaced buffers first, then the CPUs round-robin. Returns how many it handed over.
    fn take_with(
        &mut self,
        limit: usize,
        mut sink: impl FnMut(u32, &[u8], &[u8]) -> bool,
    ) -> Result<usize, Deferred> {
        if let Some(message) = self.malformed.take() {
            return Err(self.malformed_error(&message));
        }
        let mut taken = 0;
        let mut stopped = false;
        while taken < limit && !stopped {
            match self.carried.pop_front() {
                Some((cpu, record)) => {
                    taken += 1;
                    stopped = !sink(cpu, &record, &[]);
                }
                None => break,
            }
        }
        let count = self.buffers.len();
        for step in 0..count {
            if taken >= limit || stopped {
                break;
            }
            let buffer = &mut self.buffers[(self.next_buffer + step) % count];
            if !buffer.readable() {
                continue;
            }
            let read = buffer.read_with(limit - taken, &mut sink);
            taken += read.moved;
            stopped = read.stopped;
            if read.malformed.is_some() {
                self.malformed = read.malformed;
            }
        }
        if count > 0 {
            self.next_buffer = (self.next_buffer + 1) % count;
        }
        if taken == 0 {
            if let Some(message) = self.malformed.take() {
                return Err(self.malformed_error(&message));
            }
        }
        Ok(taken)
    }

    fn malformed_error(&self, message: &str) -> Deferred {
        Deferred::Plain(
            Kind::Map,
            format!("perf event array {:?}: {message}", self.name),
        )
    }

    fn lost(&self) -> u64 {
        self.lost_before + self.buffers.iter().map(CpuBuffer::lost).sum::<u64>()
    }

    /// New buffers of `page_count` pages take each CPU's slot, then the old buffers are read to the end (their
    /// records are handed out first by later drains) and closed: nothing is lost in the swap.
    fn reopen(&mut self, page_count: usize) -> Result<(), Deferred> {
        let (buffers, epoll) = open_buffers(&self.name, &self.map, page_count)?;
        let old = std::mem::replace(&mut self.buffers, buffers);
        self.epoll = epoll;
        self.page_count = page_count;
        self.next_buffer = 0;
        let mut records = Vec::new();
        for mut buffer in old {
            // A malformed record cannot be read again anyway: what was read before it is kept.
            let _ = buffer.read_with(usize::MAX, &mut |cpu, first, second| {
                records.push(whole(cpu, first, second));
                true
            });
            self.lost_before += buffer.lost();
        }
        self.carried.extend(records);
        Ok(())
    }
}

fn open_buffers(
    name: &str,
    map: &MapData,
    page_count: usize,
) -> Result<(Vec<CpuBuffer>, sys::Epoll), Deferred> {
    let epoll = sys::Epoll::new()
        .map_err(|err| Deferred::MapIo("creating an epoll fd for perf buffers".into(), err))?;
    let map_fd = map.fd().as_fd();
    let mut buffers = Vec::new();
    for cpu in online_cpus()? {
        let context = || {
            format!("opening the perf buffer of CPU {cpu} ({page_count} pages) for perf event array {name:?}")
        };
        let buffer =
            CpuBuffer::open(cpu, page_count).map_err(|err| Deferred::MapIo(context(), err))?;
        store_event(map_fd, cpu, buffer.fd.as_fd()).map_err(|err| {
            let err = if err.raw_os_error() == Some(libc::E2BIG) {
                io::Error::other(format!("the map has no slot for CPU {cpu}"))
            } else {
                err
            };
            Deferred::MapIo(context(), err)
        })?;
        epoll
            .add(buffer.fd.as_fd(), u64::from(cpu))
            .map_err(|err| Deferred::MapIo(context(), err))?;
        buffers.push(buffer);
    }
    Ok((buffers, epoll))
}

/// Puts `event` in slot `cpu` of the perf event array: `bpf_perf_event_output` on that CPU writes there.
fn store_event(map_fd: BorrowedFd<'_>, cpu: u32, event: BorrowedFd<'_>) -> io::Result<()> {
    let value =
        u32::try_from(event.as_raw_fd()).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    sys::update(map_fd, &cpu.to_ne_bytes(), &value.to_ne_bytes(), 0)
}

/// What a perf event array's handle and its owning `Ebpf` share: the buffers, and the lost count as last read,
/// still reported once the buffers are closed.
#[derive(Clone)]
pub struct PerfShared {
    state: Shared<PerfState>,
    lost: Arc<AtomicU64>,
}

impl PerfShared {
    pub fn new(state: PerfState) -> Self {
        Self {
            state: Arc::new(Mutex::new(Some(state))),
            lost: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The lost count now (and remembered), or the last one read when closed.
    fn lost(&self) -> u64 {
        if let Some(state) = lock(&self.state).as_ref() {
            self.lost.fetch_max(state.lost(), Ordering::Relaxed);
        }
        self.lost.load(Ordering::Relaxed)
    }

    /// Reads the lost count a last time, then closes the buffers.
    pub fn close(&self) {
        let state = lock(&self.state).take();
        if let Some(state) = &state {
            self.lost.fetch_max(state.lost(), Ordering::Relaxed);
        }
        drop(state);
    }
}

/// A perf event array read as a stream of `(cpu, record)` pairs.
#[pyclass(module = "pyaya._native", frozen)]
pub struct PerfEventArray {
    name: String,
    shared: PerfShared,
    owner: Option<Owner>,
    wake_on_logs: bool,
    shape: Shape,
    page_count: AtomicUsize,
    /// `drain_packed`'s batch buffer, kept between calls: a fresh one would fault its pages in every batch.
    scratch: Mutex<Vec<u8>>,
    pub(crate) pinned: Mutex<Option<PathBuf>>,
}

impl PerfEventArray {
    /// The Python handle on buffers already open (`PerfState::open`).
    pub fn new(
        name: &str,
        shared: PerfShared,
        owner: Option<Owner>,
        wake_on_logs: bool,
        shape: Shape,
    ) -> Self {
        let page_count = lock(&shared.state)
            .as_ref()
            .map_or(DEFAULT_PAGE_COUNT, |state| state.page_count);
        Self {
            name: name.to_owned(),
            shared,
            owner,
            wake_on_logs,
            shape,
            page_count: AtomicUsize::new(page_count),
            scratch: Mutex::new(Vec::new()),
            pinned: Mutex::new(None),
        }
    }

    fn closed_error(&self) -> Deferred {
        Deferred::Plain(
            Kind::Closed,
            format!("perf event array {:?} is closed", self.name),
        )
    }

    fn take_available(&self, limit: usize) -> Result<Vec<(u32, Vec<u8>)>, Deferred> {
        let mut guard = lock(&self.shared.state);
        let state = guard.as_mut().ok_or_else(|| self.closed_error())?;
        state.take(limit)
    }

    fn take_packed(
        &self,
        limit: usize,
        stride: usize,
        data: Vec<u8>,
    ) -> Result<Packed<(u32, Vec<u8>)>, Deferred> {
        let mut guard = lock(&self.shared.state);
        let state = guard.as_mut().ok_or_else(|| self.closed_error())?;
        state.take_packed(limit, stride, data)
    }

    /// Waits up to `millis` for a CPU's buffer (or the owner's log wake-up fd) to turn readable.
    fn wait_readable(
        &self,
        wake_fd: Option<BorrowedFd<'_>>,
        millis: i32,
    ) -> Result<bool, Deferred> {
        let guard = lock(&self.shared.state);
        let state = guard.as_ref().ok_or_else(|| self.closed_error())?;
        let mut fds = vec![state.epoll.as_fd()];
        fds.extend(wake_fd);
        sys::wait_readable(&fds, millis).map_err(|err| {
            Deferred::MapIo(format!("waiting on perf event array {:?}", self.name), err)
        })
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

    /// Samples the kernel dropped because a CPU's buffer was full: read from each CPU's event where the kernel
    /// counts them (`PERF_FORMAT_LOST`, 6.0), else added up from its lost-sample records. After `close()`, the
    /// last count read.
    #[getter]
    fn lost(&self, py: Python<'_>) -> u64 {
        py.detach(|| self.shared.lost())
    }

    /// Pages per CPU buffer.
    #[getter]
    fn page_count(&self) -> usize {
        self.page_count.load(Ordering::Relaxed)
    }

    /// The CPUs that have a buffer (the online CPUs when it was opened).
    #[getter]
    fn cpus(&self) -> PyResult<Vec<u32>> {
        let guard = lock(&self.shared.state);
        let state = guard
            .as_ref()
            .ok_or_else(|| closed(&format!("perf event array {:?}", self.name)))?;
        Ok(state.buffers.iter().map(|buffer| buffer.cpu).collect())
    }

    /// Replaces every CPU's buffer with one of `page_count` pages (a power of two). Records still in the old
    /// buffers are kept and returned by the next drains; their lost samples stay counted.
    fn reopen(&self, py: Python<'_>, page_count: usize) -> PyResult<()> {
        if page_count == 0 || !page_count.is_power_of_two() {
            return Err(crate::errors::new_err(
                Kind::InvalidArgument,
                format!("page_count must be a power of two (1, 2, 4, ...), got {page_count}"),
            ));
        }
        py.detach(|| {
            let mut guard = lock(&self.shared.state);
            let state = guard.as_mut().ok_or_else(|| self.closed_error())?;
            state.reopen(page_count)
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
            self.owner.as_ref(),
            self.wake_on_logs,
            timeout,
            |py| {
                py.detach(|| self.take_available(limit))
                    .map_err(PyErr::from)
            },
            |wake_fd, millis| self.wait_readable(wake_fd, millis),
        )?;
        Ok(records
            .iter()
            .map(|(cpu, record)| (*cpu, PyBytes::new(py, record)))
            .collect())
    }

    /// As `drain`, with the records copied into one `bytes` at `stride` bytes each (longer records cut to
    /// `stride`): `(data, count, short)`. A record shorter than `stride` ends the batch and comes back whole as
    /// `short`, a `(cpu, record)` pair (taken from its buffer: the caller hands it on); `None` otherwise.
    #[pyo3(signature = (stride, max_records = None, timeout = None))]
    #[allow(clippy::type_complexity)]
    fn drain_packed<'py>(
        &self,
        py: Python<'py>,
        stride: usize,
        max_records: Option<usize>,
        timeout: Option<f64>,
    ) -> PyResult<(
        Bound<'py, PyBytes>,
        usize,
        Option<(u32, Bound<'py, PyBytes>)>,
    )> {
        check_stride(stride)?;
        let limit = max_records.unwrap_or(usize::MAX);
        let (data, count, short) = drain_packed_waiting(
            py,
            self.owner.as_ref(),
            self.wake_on_logs,
            timeout,
            &self.scratch,
            |py, buffer| {
                py.detach(|| self.take_packed(limit, stride, buffer))
                    .map_err(PyErr::from)
            },
            |wake_fd, millis| self.wait_readable(wake_fd, millis),
        )?;
        Ok((
            data,
            count,
            short.map(|(cpu, record)| (cpu, PyBytes::new(py, &record))),
        ))
    }

    /// An fd that is readable when a CPU's buffer is a quarter full (an epoll fd), for asyncio's `add_reader`;
    /// poll with a timeout (100 ms is what `drain` uses) to see records below that mark. pyaya keeps ownership:
    /// never close it.
    fn fileno(&self) -> PyResult<i32> {
        let guard = lock(&self.shared.state);
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
            let guard = lock(&self.shared.state);
            let state = guard.as_ref().ok_or_else(|| self.closed_error())?;
            crate::pinning::check_pin_place(Kind::Map, &context, &path)?;
            sys::pin_object(state.map.fd().as_fd(), &path)
                .map_err(|err| Deferred::MapIo(context.clone(), err))?;
            crate::pinning::finish_pin(Kind::Map, &context, &path)
        })?;
        *self.pinned.lock().unwrap_or_else(PoisonError::into_inner) = Some(path);
        Ok(())
    }

    /// Removes the pin this handle made.
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

    #[getter]
    fn closed(&self) -> bool {
        lock(&self.shared.state).is_none()
    }

    /// Closes the buffers and this handle on the map.
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.shared.close());
    }
}
