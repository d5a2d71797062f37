//! What every program type shares beyond load and attach: pinning a program in bpffs, opening a pinned program
//! again, run statistics (`BPF_ENABLE_STATS`).

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use aya::programs::{
    BtfTracePoint, CgroupDevice, CgroupSysctl, Extension, FEntry, FExit, FlowDissector, Iter,
    KProbe, LircMode2, Lsm, LsmCgroup, PerfEvent, ProbeKind, Program as AyaProgram, ProgramError,
    ProgramInfo, RawTracePoint, SchedClassifier, SkLookup, SkMsg, SockOps, SocketFilter,
    TracePoint, UProbe, Xdp,
};
use aya_obj::generated::bpf_prog_type;
use aya_obj::programs::xdp::XdpAttachType;
use pyo3::prelude::*;

use crate::ebpf::{Ebpf, Program};
use crate::errors::{chain_message, new_err, Deferred, Kind};
use crate::names::program_kind;
use crate::program_types::for_every_program;

/// The `(kind, program)` of a program pinned at `path`: the kind comes from the kernel's program info; `hint`
/// (the Python class asked for) settles the types the kernel cannot tell apart (kprobe/uprobe; the tracing
/// subtypes; lsm/lsm_cgroup).
fn open_pinned(
    path: &PathBuf,
    hint: Option<&str>,
    retprobe: bool,
) -> Result<(&'static str, AyaProgram), ProgramError> {
    let info = ProgramInfo::from_pin(path)?;
    let probe_kind = if retprobe {
        ProbeKind::Return
    } else {
        ProbeKind::Entry
    };
    let program = match (info.program_type(), hint) {
        (bpf_prog_type::BPF_PROG_TYPE_KPROBE, Some("UProbe")) => {
            AyaProgram::UProbe(UProbe::from_pin(path, probe_kind)?)
        }
        (bpf_prog_type::BPF_PROG_TYPE_KPROBE, None | Some("KProbe")) => {
            AyaProgram::KProbe(KProbe::from_pin(path, probe_kind)?)
        }
        (bpf_prog_type::BPF_PROG_TYPE_TRACEPOINT, _) => {
            AyaProgram::TracePoint(TracePoint::from_pin(path)?)
        }
        (bpf_prog_type::BPF_PROG_TYPE_RAW_TRACEPOINT, _) => {
            AyaProgram::RawTracePoint(RawTracePoint::from_pin(path)?)
        }
        (bpf_prog_type::BPF_PROG_TYPE_PERF_EVENT, _) => {
            AyaProgram::PerfEvent(PerfEvent::from_pin(path)?)
        }
        (bpf_prog_type::BPF_PROG_TYPE_LSM, Some("LsmCgroup")) => {
            AyaProgram::LsmCgroup(LsmCgroup::from_pin(path)?)
        }
        (bpf_prog_type::BPF_PROG_TYPE_LSM, _) => AyaProgram::Lsm(Lsm::from_pin(path)?),
        (bpf_prog_type::BPF_PROG_TYPE_TRACING, Some("BtfTracePoint")) => {
            AyaProgram::BtfTracePoint(BtfTracePoint::from_pin(path)?)
        }
        (bpf_prog_type::BPF_PROG_TYPE_TRACING, Some("FEntry")) => {
            AyaProgram::FEntry(FEntry::from_pin(path)?)
        }
        (bpf_prog_type::BPF_PROG_TYPE_TRACING, Some("FExit")) => {
            AyaProgram::FExit(FExit::from_pin(path)?)
        }
        (bpf_prog_type::BPF_PROG_TYPE_TRACING, Some("Iter")) => {
            AyaProgram::Iter(Iter::from_pin(path)?)
        }
        (bpf_prog_type::BPF_PROG_TYPE_EXT, _) => AyaProgram::Extension(Extension::from_pin(path)?),
        (bpf_prog_type::BPF_PROG_TYPE_SK_MSG, _) => AyaProgram::SkMsg(SkMsg::from_pin(path)?),
        (bpf_prog_type::BPF_PROG_TYPE_CGROUP_SYSCTL, _) => {
            AyaProgram::CgroupSysctl(CgroupSysctl::from_pin(path)?)
        }
        (bpf_prog_type::BPF_PROG_TYPE_LIRC_MODE2, _) => {
            AyaProgram::LircMode2(LircMode2::from_pin(path)?)
        }
        (bpf_prog_type::BPF_PROG_TYPE_FLOW_DISSECTOR, _) => {
            AyaProgram::FlowDissector(FlowDissector::from_pin(path)?)
        }
        (bpf_prog_type::BPF_PROG_TYPE_SK_LOOKUP, _) => {
            AyaProgram::SkLookup(SkLookup::from_pin(path)?)
        }
        (bpf_prog_type::BPF_PROG_TYPE_SOCK_OPS, _) => AyaProgram::SockOps(SockOps::from_pin(path)?),
        (bpf_prog_type::BPF_PROG_TYPE_CGROUP_DEVICE, _) => {
            AyaProgram::CgroupDevice(CgroupDevice::from_pin(path)?)
        }
        // The kernel does not report the attach type a program was loaded with; an XDP program reopened from a
        // pin attaches to interfaces (the devmap/cpumap kinds are for programs run by those maps).
        (bpf_prog_type::BPF_PROG_TYPE_XDP, _) => {
            AyaProgram::Xdp(Xdp::from_pin(path, XdpAttachType::Interface)?)
        }
        (bpf_prog_type::BPF_PROG_TYPE_SCHED_CLS, _) => {
            AyaProgram::SchedClassifier(SchedClassifier::from_pin(path)?)
        }
        (bpf_prog_type::BPF_PROG_TYPE_SOCKET_FILTER, _) => {
            AyaProgram::SocketFilter(SocketFilter::from_pin(path)?)
        }
        _ => return Err(ProgramError::UnexpectedProgramType),
    };
    let kind = program_kind(&program);
    Ok((kind, program))
}

fn pinned_error(path: &std::path::Path, hint: Option<&str>, error: &ProgramError) -> Deferred {
    if let ProgramError::UnexpectedProgramType = error {
        let what = match hint {
            Some("KProbe" | "UProbe") | None => String::new(),
            Some(kind) => format!(" as a {kind}"),
        };
        let message = match hint {
            None => format!(
                "the program pinned at {} cannot be reopened: the kernel does not say which attach type it was \
                 loaded for, which CgroupSkb, CgroupSock, CgroupSockAddr, CgroupSockopt, SkSkb and SkReuseport \
                 programs need; for a tracing program, call the class it was loaded as (e.g. FExit.from_pin)",
                path.display()
            ),
            Some(_) => format!(
                "the program pinned at {} cannot be opened{what}: the kernel reports another program type",
                path.display()
            ),
        };
        return Deferred::Plain(Kind::Program, message);
    }
    let not_found = matches!(error, ProgramError::SyscallError(e) if e.io_error.raw_os_error() == Some(libc::ENOENT));
    if not_found {
        return Deferred::Plain(
            Kind::NotFound,
            format!(
                "no pinned program at {} (nothing pinned there, or bpffs is not mounted)",
                path.display()
            ),
        );
    }
    Deferred::Plain(
        Kind::Program,
        format!(
            "opening the program pinned at {}: {}",
            path.display(),
            chain_message(error)
        ),
    )
}

#[pyaya_guard::guard(Program)]
#[pymethods]
impl Program {
    /// Pins the loaded program at `path` in bpffs: it stays loaded after this process exits, until unpinned.
    fn pin(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let name = self.name_str().to_owned();
        let context = format!("pinning program {name:?} at {}", path.display());
        py.detach(|| {
            crate::pinning::check_pin_place(Kind::Program, &context, &path)?;
            self.with_program(|program| {
                program.pin(&path).map_err(|err| {
                    let hint = if program.fd().is_err() {
                        "; load() it first"
                    } else {
                        " (is bpffs mounted there? `mount -t bpf bpf /sys/fs/bpf`; does the folder exist?)"
                    };
                    Deferred::Plain(
                        Kind::Program,
                        format!("{context} failed: {}{hint}", chain_message(&err)),
                    )
                })
            })?;
            crate::pinning::finish_pin(Kind::Program, &context, &path)
        })?;
        Ok(())
    }

    /// Removes the program's pin (set by `pin()` or `from_pin()`); the program stays loaded while this process
    /// holds it.
    fn unpin(&self, py: Python<'_>) -> PyResult<()> {
        let name = self.name_str().to_owned();
        py.detach(|| {
            self.with_program(|program| {
                for_every_program!(program, p => p.unpin()).map_err(|err| {
                    Deferred::Plain(Kind::Program, format!("unpinning program {name:?}: {err}"))
                })
            })
        })?;
        Ok(())
    }

    /// Opens the program pinned at `path`. `kind` (a pyaya class name) settles types the kernel's program info
    /// cannot tell apart; `retprobe` says a kprobe/uprobe is a return probe.
    #[staticmethod]
    #[pyo3(signature = (path, kind = None, retprobe = false))]
    fn from_pin(
        py: Python<'_>,
        path: PathBuf,
        kind: Option<&str>,
        retprobe: bool,
    ) -> PyResult<Self> {
        let (found, program, name) = py.detach(|| {
            let (found, program) = open_pinned(&path, kind, retprobe)
                .map_err(|err| pinned_error(&path, kind, &err))?;
            let name = program
                .info()
                .ok()
                .and_then(|info| info.name_as_str().map(str::to_owned))
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| {
                    path.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                });
            Ok::<_, Deferred>((found, program, name))
        })?;
        if let Some(expected) = kind {
            if expected != found {
                return Err(new_err(
                    Kind::Program,
                    format!(
                        "the program pinned at {} is a {found} program, not a {expected}",
                        path.display()
                    ),
                ));
            }
        }
        let owner = Ebpf::for_pinned_program(&name, program)?;
        Ok(Self::new(Py::new(py, owner)?, &name, found))
    }
}

/// Run-time statistics switched on for every BPF program (`BPF_ENABLE_STATS`): while this handle is open the
/// kernel counts each program's runs and run time (`info()['run_count']`, `run_time_ns`).
#[pyclass(module = "pyaya._native", frozen)]
pub struct RunStats {
    fd: Mutex<Option<OwnedFd>>,
}

#[pyaya_guard::guard(Program)]
#[pymethods]
impl RunStats {
    /// Whether statistics are still being collected through this handle.
    #[getter]
    fn active(&self) -> bool {
        self.fd
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Stops collecting (other open handles keep it on). Safe to call twice.
    fn close(&self) {
        drop(
            self.fd
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }
}

/// Switches on run-time statistics for all BPF programs until the returned handle is closed (kernel 5.8+).
#[pyaya_guard::guard(Program)]
#[pyfunction]
pub fn enable_stats(py: Python<'_>) -> PyResult<RunStats> {
    let fd = py
        .detach(|| aya::sys::enable_stats(aya::sys::Stats::RunTime))
        .map_err(|err| {
            let errno = err.io_error.raw_os_error();
            let (kind, hint) = match errno {
                Some(libc::EPERM) => (
                    Kind::PermissionDenied,
                    format!(
                        "; {}",
                        crate::errors::privilege_hint(crate::errors::Needs::SYS_ADMIN)
                    ),
                ),
                Some(libc::EINVAL) => (
                    Kind::Unsupported,
                    "; BPF_ENABLE_STATS needs kernel 5.8 or later".to_owned(),
                ),
                _ => (Kind::Program, String::new()),
            };
            new_err(
                kind,
                format!(
                    "enabling BPF run statistics failed: {}{hint}",
                    chain_message(&err)
                ),
            )
        })?;
    Ok(RunStats {
        fd: Mutex::new(Some(fd)),
    })
}

/// Fills `info`, a kernel `bpf_*_info` struct (plain integers, zeroed by the caller), with what the kernel says
/// about the object pinned at `path`.
fn pinned_object_info<T>(path: &std::path::Path, info: &mut T) -> std::io::Result<()> {
    use std::os::fd::AsFd as _;
    let fd = crate::sys::object_from_pin(path)?;
    crate::sys::object_info(fd.as_fd(), info)
}

/// `(is a tracing program, attach_btf_id)` of the program pinned at `path` (`BPF_PROG_TYPE_TRACING`, aya-obj's
/// enum, so that Python holds no program type number): what the kernel's program info says about its target,
/// for telling tracing programs apart (a `btf_trace_*` typedef, a `bpf_iter_*` function, ...).
#[pyaya_guard::guard(Program)]
#[pyfunction]
pub fn pinned_program_target(py: Python<'_>, path: PathBuf) -> PyResult<(bool, u32)> {
    let result = py.detach(|| {
        // SAFETY: bpf_prog_info is a plain C struct of integers, for which all zero bytes is a valid value.
        let mut info: aya_obj::generated::bpf_prog_info = unsafe { std::mem::zeroed() };
        pinned_object_info(&path, &mut info)?;
        let tracing = info.type_ == bpf_prog_type::BPF_PROG_TYPE_TRACING as u32;
        Ok::<_, std::io::Error>((tracing, info.attach_btf_id))
    });
    result.map_err(|err| {
        let kind = if err.raw_os_error() == Some(libc::ENOENT) {
            Kind::NotFound
        } else {
            Kind::Program
        };
        new_err(
            kind,
            format!("no pinned program at {} ({err})", path.display()),
        )
    })
}

/// Pins the loaded program (`kind` "program") or bpf_link (`kind` "link") with kernel id `id` at `path` in bpffs.
/// aya opens programs and links only from pins (its typed programs have no constructor from an fd or id), so
/// `Program.from_id` and `Link.from_id` pin the object for a moment, open the pin, and remove it.
#[pyaya_guard::guard(Program)]
#[pyfunction]
pub fn pin_by_id(py: Python<'_>, kind: &str, id: u32, path: PathBuf) -> PyResult<()> {
    use std::os::fd::AsFd as _;
    let what = match kind {
        "program" => "program",
        "link" => "link",
        other => {
            return Err(new_err(
                Kind::InvalidArgument,
                format!("kind must be \"program\" or \"link\", not {other:?}"),
            ))
        }
    };
    py.detach(|| {
        let fd = if what == "program" {
            crate::sys::program_fd_by_id(id)
        } else {
            crate::sys::link_fd_by_id(id)
        }
        .map_err(|err| {
            let kind = match err.raw_os_error() {
                Some(libc::ENOENT) => Kind::NotFound,
                Some(libc::EPERM) => Kind::PermissionDenied,
                _ => Kind::Program,
            };
            Deferred::Plain(
                kind,
                format!(
                    "no {what} with id {id} ({err}); `pyaya.loaded_programs()` and `pyaya.loaded_links()` list \
                     the ids there are (root or CAP_SYS_ADMIN needed)"
                ),
            )
        })?;
        crate::sys::pin_object(fd.as_fd(), &path).map_err(|err| {
            Deferred::Plain(
                Kind::Program,
                format!(
                    "opening {what} {id}: pinning it at {} for aya to open it failed: {err}",
                    path.display()
                ),
            )
        })
    })?;
    Ok(())
}

/// The kernel's name (at most 15 bytes) of the program attached by the link pinned at `path`, if it can be told.
pub fn pinned_link_program_name(path: &std::path::Path) -> Option<String> {
    // SAFETY: bpf_link_info is a plain C struct of integers and unions of them: all zero bytes is a valid value.
    let mut info: aya_obj::generated::bpf_link_info = unsafe { std::mem::zeroed() };
    pinned_object_info(path, &mut info).ok()?;
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|program| program.id() == info.prog_id)
        .and_then(|program| program.name_as_str().map(str::to_owned))
}
