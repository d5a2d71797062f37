//! Tracing attachments with a bpf cookie that aya 0.14 cannot make (it passes cookies only for uprobes): raw
//! tracepoints through `BPF_RAW_TRACEPOINT_OPEN` with its cookie (kernel 6.10), and fentry, fexit, LSM and tp_btf
//! programs through a tracing `BPF_LINK_CREATE` with its cookie (6.0 for fentry/fexit/LSM, 6.10 for tp_btf). The
//! links are bpf_link fds, kept as `PerfLinks` (closing one detaches it; pinning works as for perf links).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd};

use crate::errors::{Deferred, Kind};
use crate::links::OwnedLink;
use crate::perf_link::PerfLinks;
use crate::sys;

const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_LINK_CREATE: libc::c_long = 28;

/// `bpf_attr.raw_tracepoint` with the cookie 6.10 added.
#[repr(C)]
#[derive(Default)]
struct RawTracepointOpenAttr {
    name: u64,
    prog_fd: u32,
    _pad: u32,
    cookie: u64,
}

/// `bpf_attr.link_create` with its `tracing` member.
#[repr(C)]
#[derive(Default)]
struct TracingLinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    target_btf_id: u32,
    _pad: u32,
    cookie: u64,
}

/// The attach types of the BPF programs attached through a tracing link (`enum bpf_attach_type`).
#[derive(Clone, Copy)]
pub enum TracingAttach {
    /// tp_btf programs (`BPF_TRACE_RAW_TP`).
    RawTp = 23,
    FEntry = 24,
    FExit = 25,
    Lsm = 27,
}

impl TracingAttach {
    const fn since(self) -> &'static str {
        match self {
            Self::RawTp => "6.10",
            Self::FEntry | Self::FExit | Self::Lsm => "6.0",
        }
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|release| release.trim().to_owned())
        .unwrap_or_else(|_| "an unknown kernel".to_owned())
}

fn refused(context: &str, call: &str, since: &str, err: &io::Error) -> Deferred {
    match err.raw_os_error() {
        // An older kernel refuses the attr's cookie field (E2BIG: bytes past what it knows are set; EINVAL).
        Some(libc::E2BIG) | Some(libc::EINVAL) => Deferred::Plain(
            Kind::Unsupported,
            format!(
                "{context}: {call} refused the bpf cookie ({err}): cookies on this kind of attachment need kernel \
                 {since} or newer (this is {}); attach without cookie=",
                kernel_release()
            ),
        ),
        Some(libc::EPERM) | Some(libc::EACCES) => Deferred::Plain(
            Kind::PermissionDenied,
            format!("{context}: {call}: {err} (needs root, or CAP_BPF and CAP_PERFMON)"),
        ),
        _ => Deferred::Plain(Kind::Program, format!("{context}: {call}: {err}")),
    }
}

/// A raw tracepoint attachment of `program` to `name` whose runs read `cookie` with `bpf_get_attach_cookie`.
pub fn raw_tracepoint(
    program: BorrowedFd<'_>,
    name: &str,
    cookie: u64,
    context: &str,
) -> Result<Box<dyn OwnedLink>, Deferred> {
    let name = CString::new(name).map_err(|_| {
        Deferred::Plain(
            Kind::InvalidArgument,
            format!("{context}: the tracepoint name holds a NUL byte"),
        )
    })?;
    let mut attr = RawTracepointOpenAttr {
        name: name.as_ptr() as u64,
        prog_fd: program.as_raw_fd() as u32,
        cookie,
        ..RawTracepointOpenAttr::default()
    };
    // `name` outlives the call.
    let fd = sys::bpf(BPF_RAW_TRACEPOINT_OPEN, &mut attr)
        .map_err(|err| refused(context, "BPF_RAW_TRACEPOINT_OPEN", "6.10", &err))?;
    // SAFETY: the kernel just returned this new fd, owned by nothing else.
    let link = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    Ok(Box::new(PerfLinks(vec![link])))
}

/// A tracing link of the loaded `program` (its target was fixed at load) whose runs read `cookie`.
pub fn tracing(
    program: BorrowedFd<'_>,
    attach: TracingAttach,
    cookie: u64,
    context: &str,
) -> Result<Box<dyn OwnedLink>, Deferred> {
    let mut attr = TracingLinkCreateAttr {
        prog_fd: program.as_raw_fd() as u32,
        attach_type: attach as u32,
        cookie,
        ..TracingLinkCreateAttr::default()
    };
    let fd = sys::bpf(BPF_LINK_CREATE, &mut attr)
        .map_err(|err| refused(context, "BPF_LINK_CREATE", attach.since(), &err))?;
    // SAFETY: the kernel just returned this new fd, owned by nothing else.
    let link = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    Ok(Box::new(PerfLinks(vec![link])))
}
