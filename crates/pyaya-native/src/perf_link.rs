//! Perf-event attachments made by pyaya itself: a `perf_event_open` and a `BPF_LINK_CREATE` of the program on it
//! with a bpf cookie (kernel 5.15+). aya 0.14 passes a cookie only for uprobes, so tracepoints, kprobes, perf
//! events and USDT probes attached with one come through here. The kernel's perf link holds the perf event, so
//! only the link fd is kept: closing it detaches and closes the event.

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::ProgramError;
use aya::sys::SyscallError;

use crate::errors::{Deferred, Kind};
use crate::links::OwnedLink;
use crate::sys;

const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PERF_EVENT: u32 = 41;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
/// `PERF_ATTR_SIZE_VER1`: up to `config2`, all a probe, tracepoint or sampling event needs.
const PERF_ATTR_SIZE: u32 = 72;
pub const PERF_TYPE_TRACEPOINT: u32 = 2;
/// `perf_event_attr.freq`: `sample_period` is a frequency (the 11th bit of the flag word).
pub const FLAG_FREQ: u64 = 1 << 10;
const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// `struct perf_event_attr` up to `config2` (`PERF_ATTR_SIZE_VER1`).
#[repr(C)]
#[derive(Default)]
pub struct PerfEventAttr {
    pub type_: u32,
    pub size: u32,
    pub config: u64,
    /// `sample_period`, or `sample_freq` with `FLAG_FREQ`.
    pub sample_period: u64,
    pub sample_type: u64,
    pub read_format: u64,
    pub flags: u64,
    pub wakeup_events: u32,
    pub bp_type: u32,
    pub config1: u64,
    pub config2: u64,
}

/// Opens the perf event `attr` for `pid` (-1: every process) on `cpu` (-1: any CPU).
///
/// # Safety
/// `config1` and `config2` must be what the event's PMU expects: for a probe PMU that reads a string there,
/// a pointer to a NUL-terminated string that outlives the call.
pub unsafe fn open(
    mut attr: PerfEventAttr,
    pid: libc::c_int,
    cpu: libc::c_int,
) -> std::io::Result<OwnedFd> {
    attr.size = PERF_ATTR_SIZE;
    // SAFETY: `attr` is a fully initialised perf_event_attr prefix whose `size` says how much the kernel reads;
    // the caller vouches for what `config1`/`config2` point at.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            std::ptr::from_ref(&attr),
            pid,
            cpu,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this new fd, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// A probe PMU event (uprobe or kprobe): `name` (a path or a kernel symbol) goes in `config1`, `offset` in
/// `config2`.
pub fn open_probe(
    pmu_type: u32,
    config: u64,
    name: &[u8],
    offset: u64,
    pid: libc::c_int,
    cpu: libc::c_int,
) -> std::io::Result<OwnedFd> {
    let name = CString::new(name).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let attr = PerfEventAttr {
        type_: pmu_type,
        config,
        config1: name.as_ptr() as u64,
        config2: offset,
        ..PerfEventAttr::default()
    };
    // SAFETY: `config1` points at the NUL-terminated `name`, alive until this function returns.
    unsafe { open(attr, pid, cpu) }
}

/// The `bpf_attr` of `BPF_LINK_CREATE` for a perf event (its `perf_event.bpf_cookie`).
#[repr(C)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    bpf_cookie: u64,
}

/// A bpf_link of `program` on the perf event `perf`, whose runs see `cookie` (kernel 5.15+).
pub fn link(
    program: BorrowedFd<'_>,
    perf: BorrowedFd<'_>,
    cookie: u64,
) -> std::io::Result<OwnedFd> {
    let mut attr = LinkCreateAttr {
        prog_fd: program.as_raw_fd() as u32,
        target_fd: perf.as_raw_fd() as u32,
        attach_type: BPF_PERF_EVENT,
        flags: 0,
        bpf_cookie: cookie,
    };
    let fd = sys::bpf(BPF_LINK_CREATE, &mut attr)?;
    // SAFETY: the kernel just returned this new fd, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

pub fn syscall_error(context: &str, call: &'static str, io_error: std::io::Error) -> Deferred {
    Deferred::Program(
        context.to_owned(),
        Box::new(ProgramError::SyscallError(SyscallError { call, io_error })),
    )
}

/// Links `program` to the perf event `perf` with `cookie`; a kernel without perf bpf_links or cookies (EINVAL)
/// is named as such.
pub fn link_with_cookie(
    program: BorrowedFd<'_>,
    perf: &OwnedFd,
    cookie: u64,
    context: &str,
) -> Result<OwnedFd, Deferred> {
    link(program, perf.as_fd(), cookie).map_err(|err| {
        if err.raw_os_error() == Some(libc::EINVAL) {
            Deferred::Plain(
                Kind::Unsupported,
                format!(
                    "{context}: the kernel refused a bpf_link with a cookie on the perf event ({err}); bpf cookies \
                     need kernel 5.15 or later"
                ),
            )
        } else if err.raw_os_error() == Some(libc::EEXIST) {
            Deferred::Plain(
                Kind::Program,
                format!(
                    "{context}: this program is already attached to this event ({err}); the kernel runs a program                      once per tracepoint, so detach the other link first or attach another program"
                ),
            )
        } else {
            syscall_error(context, "bpf_link_create", err)
        }
    })
}

/// The id of tracepoint `category/name` in tracefs.
pub fn tracepoint_id(category: &str, name: &str, context: &str) -> Result<u64, Deferred> {
    let mut last = None;
    for root in TRACEFS {
        let path = Path::new(root)
            .join("events")
            .join(category)
            .join(name)
            .join("id");
        match fs::read_to_string(&path) {
            Ok(text) => {
                return text.trim().parse::<u64>().map_err(|err| {
                    Deferred::Plain(
                        Kind::Program,
                        format!("{context}: {} is not a number: {err}", path.display()),
                    )
                })
            }
            Err(err) => last = Some((path, err)),
        }
    }
    let (path, err) = last.unwrap_or_else(|| {
        (
            PathBuf::from(TRACEFS[0]),
            std::io::Error::from_raw_os_error(libc::ENOENT),
        )
    });
    Err(Deferred::Plain(
        Kind::NotFound,
        format!(
            "{context}: no tracepoint {category}/{name} ({}: {err}); /sys/kernel/tracing/events lists them (is \
             tracefs mounted? `mount -t tracefs tracefs /sys/kernel/tracing`)",
            path.display()
        ),
    ))
}

/// Reads a sysfs file of the probe PMU `pmu` (`uprobe`, `kprobe`).
pub fn pmu_file(pmu: &str, name: &str, needs: &str) -> Result<String, Deferred> {
    let path = Path::new("/sys/bus/event_source/devices")
        .join(pmu)
        .join(name);
    fs::read_to_string(&path)
        .map(|text| text.trim().to_owned())
        .map_err(|err| {
            Deferred::Plain(
                Kind::Unsupported,
                format!(
                    "this kernel has no {pmu} PMU ({}: {err}); {needs}",
                    path.display()
                ),
            )
        })
}

/// The perf type of probe PMU `pmu`.
pub fn pmu_type(pmu: &str, needs: &str) -> Result<u32, Deferred> {
    pmu_file(pmu, "type", needs)?.parse::<u32>().map_err(|err| {
        Deferred::Plain(
            Kind::Unsupported,
            format!("/sys/bus/event_source/devices/{pmu}/type is not a number: {err}"),
        )
    })
}

/// The bit of `config` a PMU format file (`config:N` or `config:N-M`) names.
pub fn config_bit(pmu: &str, format: &str, needs: &str) -> Result<u32, Deferred> {
    let text = pmu_file(pmu, &format!("format/{format}"), needs)?;
    text.strip_prefix("config:")
        .and_then(|bits| bits.split('-').next())
        .and_then(|first| first.parse::<u32>().ok())
        .filter(|bit| *bit < 64)
        .ok_or_else(|| {
            Deferred::Plain(
                Kind::Unsupported,
                format!("/sys/bus/event_source/devices/{pmu}/format/{format} says {text:?}, not config:N-M"),
            )
        })
}

/// The link of one attach call on one perf event just opened (`perf`): `program` linked to it with `cookie`.
pub fn one_link(
    program: BorrowedFd<'_>,
    perf: std::io::Result<OwnedFd>,
    cookie: u64,
    context: &str,
) -> Result<Box<dyn OwnedLink>, Deferred> {
    let perf = perf.map_err(|err| syscall_error(context, "perf_event_open", err))?;
    let link = link_with_cookie(program, &perf, cookie, context)?;
    Ok(Box::new(PerfLinks(vec![link])))
}

/// The bpf_links of one attach call (one per CPU for a sampling event), detached together when dropped.
pub struct PerfLinks(pub Vec<OwnedFd>);

static TEMPORARY_PINS: AtomicU64 = AtomicU64::new(0);

impl OwnedLink for PerfLinks {
    fn detach(self: Box<Self>) -> Result<(), ProgramError> {
        drop(self);
        Ok(())
    }

    fn never_pinnable(&self) -> Option<String> {
        (self.0.len() != 1).then(|| {
            format!(
                "this link holds {} attachments (one per CPU) and a pin holds one; attach with cpus=[N] (one CPU) or \
                 pid=... to get a link that can be pinned",
                self.0.len()
            )
        })
    }

    fn into_fd_link(self: Box<Self>) -> Result<FdLink, String> {
        let mut links = self.0;
        if links.len() != 1 {
            return Err(format!(
                "this link holds {} attachments and a pin holds one; the link was detached",
                links.len()
            ));
        }
        let fd = links.remove(0);
        // aya makes an `FdLink` only from its own links or from a pin: the link is pinned under a name of this
        // process's own for the moment it takes to open it that way, then the caller pins it where asked.
        let path = PathBuf::from(format!(
            "/sys/fs/bpf/pyaya-link-handover-{}-{}",
            std::process::id(),
            TEMPORARY_PINS.fetch_add(1, Ordering::Relaxed)
        ));
        sys::pin_object(fd.as_fd(), &path).map_err(|err| {
            format!(
                "pinning needs bpffs at /sys/fs/bpf (`mount -t bpf bpf /sys/fs/bpf`), where pyaya briefly pins this \
                 link to hand it to aya ({}: {err}); the link was detached",
                path.display()
            )
        })?;
        let opened = PinnedLink::from_pin(&path);
        let fd_link = match opened {
            Ok(pinned) => pinned.unpin().map_err(|err| {
                format!(
                    "removing the temporary pin {}: {err}; the link was detached",
                    path.display()
                )
            }),
            Err(err) => {
                let _ = fs::remove_file(&path);
                Err(format!(
                    "opening the temporary pin {}: {err}; the link was detached",
                    path.display()
                ))
            }
        };
        drop(fd);
        fd_link
    }
}
