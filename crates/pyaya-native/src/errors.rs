//! Turns aya's errors into the Python exceptions of `pyaya.errors`, keeping the kernel's words (errno, verifier log).

use std::error::Error as StdError;
use std::io;

use aya::programs::ProgramError;
use aya::EbpfError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// Names of the exception classes defined in `python/pyaya/errors.py`.
#[derive(Clone, Copy)]
pub enum Kind {
    Object,
    Load,
    PermissionDenied,
    Program,
    Verifier,
    Unsupported,
    Map,
    NotFound,
    Closed,
    InvalidArgument,
    InvalidArgumentType,
}

impl Kind {
    const fn class_name(self) -> &'static str {
        match self {
            Self::Object => "ObjectError",
            Self::Load => "LoadError",
            Self::PermissionDenied => "PermissionDeniedError",
            Self::Program => "ProgramError",
            Self::Verifier => "VerifierError",
            Self::Unsupported => "UnsupportedError",
            Self::Map => "MapError",
            Self::NotFound => "NotFoundError",
            Self::Closed => "ClosedError",
            Self::InvalidArgument => "InvalidArgumentError",
            Self::InvalidArgumentType => "InvalidArgumentTypeError",
        }
    }
}

static ERRORS_MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn class<'py>(py: Python<'py>, kind: Kind) -> PyResult<Bound<'py, PyType>> {
    let module =
        ERRORS_MODULE.get_or_try_init(py, || py.import("pyaya.errors").map(Bound::unbind))?;
    Ok(module
        .bind(py)
        .getattr(kind.class_name())?
        .cast_into::<PyType>()?)
}

/// Builds a `pyaya.errors` exception of `kind` with `message`.
pub fn new_err(kind: Kind, message: impl Into<String>) -> PyErr {
    let message = message.into();
    Python::attach(|py| match class(py, kind) {
        Ok(cls) => match kind {
            Kind::Load | Kind::PermissionDenied | Kind::Program | Kind::Map => {
                PyErr::from_type(cls, (message, Option::<i32>::None))
            }
            _ => PyErr::from_type(cls, (message,)),
        },
        Err(err) => err,
    })
}

fn new_err_errno(kind: Kind, message: String, errno: Option<i32>) -> PyErr {
    Python::attach(|py| match class(py, kind) {
        Ok(cls) => PyErr::from_type(cls, (message, errno)),
        Err(err) => err,
    })
}

fn verifier_err(message: String, log: String, errno: Option<i32>) -> PyErr {
    Python::attach(|py| match class(py, Kind::Verifier) {
        Ok(cls) => PyErr::from_type(cls, (message, log, errno)),
        Err(err) => err,
    })
}

/// The first `io::Error` in an error's source chain: the kernel's answer to the failing syscall.
fn io_error_in<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a io::Error> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io);
        }
        current = err.source();
    }
    None
}

/// The whole chain of messages, so the user sees aya's context and the kernel's errno in one line.
pub fn chain_message(error: &(dyn StdError + 'static)) -> String {
    let mut message = error.to_string();
    let mut current = error.source();
    while let Some(err) = current {
        let text = err.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        current = err.source();
    }
    message
}

/// The capabilities an operation needs, as bits (see `Needs::CAPABILITIES`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Needs(u8);

impl Needs {
    /// Creating maps and loading programs: CAP_BPF (or CAP_SYS_ADMIN).
    pub const BPF: Self = Self(1);
    /// Tracing programs (kprobes, tracepoints, perf events, BPF trampolines): CAP_BPF and CAP_PERFMON.
    pub const TRACING: Self = Self(1 | 2);
    /// Networking and cgroup programs: CAP_BPF and CAP_NET_ADMIN.
    pub const NETWORKING: Self = Self(1 | 4);
    /// Global switches such as `BPF_ENABLE_STATS`: CAP_SYS_ADMIN.
    pub const SYS_ADMIN: Self = Self(8);

    /// (bit of `Needs`, capability name, capability number, implied by CAP_SYS_ADMIN)
    const CAPABILITIES: [(u8, &'static str, u32, bool); 4] = [
        (1, "CAP_BPF", 39, true),
        (2, "CAP_PERFMON", 38, true),
        (4, "CAP_NET_ADMIN", 12, false),
        (8, "CAP_SYS_ADMIN", 21, false),
    ];
    const CAP_SYS_ADMIN: u32 = 21;

    /// What loading or attaching a program of `kind` (a pyaya type name) needs.
    pub fn for_program(kind: &str) -> Self {
        match kind {
            "TracePoint" | "RawTracePoint" | "KProbe" | "UProbe" | "KProbeMulti"
            | "UProbeMulti" | "PerfEvent" | "BtfTracePoint" | "FEntry" | "FExit" | "Lsm"
            | "LsmCgroup" | "Iter" | "Extension" => Self::TRACING,
            "Xdp"
            | "SchedClassifier"
            | "SocketFilter"
            | "CgroupSkb"
            | "CgroupSock"
            | "CgroupSockAddr"
            | "CgroupSockopt"
            | "CgroupSysctl"
            | "CgroupDevice"
            | "SockOps"
            | "SkMsg"
            | "SkSkb"
            | "SkLookup"
            | "SkReuseport"
            | "ReusePortSocketFilter"
            | "FlowDissector"
            | "LircMode2" => Self::NETWORKING,
            _ => Self::BPF,
        }
    }

    fn names(self) -> Vec<&'static str> {
        Self::CAPABILITIES
            .iter()
            .filter(|(bit, ..)| self.0 & bit != 0)
            .map(|(_, name, ..)| *name)
            .collect()
    }
}

/// This process's effective capabilities (`CapEff` of /proc/self/status), or None when unreadable.
fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("CapEff:"))?;
    u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
}

/// What to say after "permission denied (EPERM)": the capabilities `needs` that this process lacks (read from
/// its effective set) and how to get them, or that none is missing and the refusal is the kernel's policy.
pub fn privilege_hint(needs: Needs) -> String {
    let wanted = needs.names().join(" and ");
    let Some(effective) = effective_capabilities() else {
        return format!("it needs {wanted} (or root); run with sudo or grant those capabilities");
    };
    let has = |number: u32| effective & (1 << number) != 0;
    let sys_admin = has(Needs::CAP_SYS_ADMIN);
    let missing: Vec<&str> = Needs::CAPABILITIES
        .iter()
        .filter(|(bit, _, number, implied)| {
            needs.0 & bit != 0 && !has(*number) && !(*implied && sys_admin)
        })
        .map(|(_, name, ..)| *name)
        .collect();
    if missing.is_empty() {
        return format!(
            "this process has {wanted}, so no capability is missing: the kernel's policy refused it (a security \
             module such as lockdown, SELinux or AppArmor, kernel.unprivileged_bpf_disabled, or a seccomp filter)"
        );
    }
    let held: Vec<&str> = Needs::CAPABILITIES
        .iter()
        .filter(|(_, _, number, _)| has(*number))
        .map(|(_, name, ..)| *name)
        .collect();
    let held = if held.is_empty() {
        "none of CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN".to_owned()
    } else {
        held.join(", ")
    };
    let setcap: Vec<String> = missing
        .iter()
        .map(|name| name.to_ascii_lowercase())
        .collect();
    format!(
        "this process lacks {} (it has {held}); run as root (sudo), or grant {} to the interpreter: \
         `sudo setcap {}+ep \"$(readlink -f \"$(command -v python3)\")\"`",
        missing.join(" and "),
        if missing.len() == 1 { "it" } else { "them" },
        setcap.join(",")
    )
}

/// Maps a permission failure to `PermissionDeniedError`, or returns `None`.
fn permission_error(what: &str, error: &(dyn StdError + 'static), needs: Needs) -> Option<PyErr> {
    let io = io_error_in(error)?;
    let errno = io.raw_os_error()?;
    (errno == libc::EPERM).then(|| {
        new_err_errno(
            Kind::PermissionDenied,
            format!(
                "{what}: permission denied (EPERM): {}",
                privilege_hint(needs)
            ),
            Some(errno),
        )
    })
}

pub fn errno_of(error: &(dyn StdError + 'static)) -> Option<i32> {
    io_error_in(error).and_then(io::Error::raw_os_error)
}

/// Converts an error from loading an object (`Ebpf::load`: creating its maps).
pub fn from_ebpf_error(error: &EbpfError) -> PyErr {
    if let Some(err) = permission_error("loading the object failed", error, Needs::BPF) {
        return err;
    }
    match error {
        EbpfError::ParseError(_) => new_err(Kind::Object, format!("not a valid BPF object: {}", chain_message(error))),
        EbpfError::ProgramError(program_error) => {
            from_program_error("loading the object failed", program_error, Needs::BPF)
        }
        EbpfError::NoBTF => new_err(
            Kind::Unsupported,
            "the object needs BTF but this kernel exposes none at /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF=y)",
        ),
        _ => new_err_errno(
            Kind::Load,
            format!("loading the object failed: {}", chain_message(error)),
            errno_of(error),
        ),
    }
}

/// Converts an error from loading, attaching or detaching a program that needs `needs`.
pub fn from_program_error(context: &str, error: &ProgramError, needs: Needs) -> PyErr {
    if let ProgramError::LoadError {
        io_error,
        verifier_log,
    } = error
    {
        let errno = io_error.raw_os_error();
        if errno == Some(libc::EPERM) {
            return new_err_errno(
                Kind::PermissionDenied,
                format!(
                    "{context}: permission denied (EPERM): {}",
                    privilege_hint(needs)
                ),
                errno,
            );
        }
        let log = verifier_log.to_string();
        return verifier_err(
            format!("{context}: the verifier rejected the program ({io_error})"),
            log,
            errno,
        );
    }
    if let Some(err) = permission_error(context, error, needs) {
        return err;
    }
    new_err_errno(
        Kind::Program,
        format!("{context}: {}", chain_message(error)),
        errno_of(error),
    )
}

/// Converts an error from a raw map syscall on a map's fd. The fd is what grants access to the map, so EPERM
/// there is not a missing privilege: the map refuses the operation from user space.
pub fn from_map_io(context: &str, error: &io::Error) -> PyErr {
    if error.raw_os_error() == Some(libc::EPERM) {
        return new_err_errno(
            Kind::Map,
            format!(
                "{context}: the map refuses this from user space (EPERM): it is frozen (aya freezes the .rodata \
                 map, the object's read-only globals, once loaded: set those with Ebpf.load(globals=...)) or was \
                 created read-only or write-only for user space (BPF_F_RDONLY, BPF_F_WRONLY); no privilege would \
                 change that"
            ),
            Some(libc::EPERM),
        );
    }
    new_err_errno(
        Kind::Map,
        format!("{context}: {error}"),
        error.raw_os_error(),
    )
}

/// Converts an error from pinning an object (the pin's folder is known to be on bpffs by then).
pub fn from_pin_io(context: &str, error: &io::Error) -> PyErr {
    if error.raw_os_error() == Some(libc::EPERM) {
        return new_err_errno(
            Kind::PermissionDenied,
            format!(
                "{context}: permission denied (EPERM): {}",
                privilege_hint(Needs::BPF)
            ),
            Some(libc::EPERM),
        );
    }
    new_err_errno(
        Kind::Map,
        format!("{context}: {error}"),
        error.raw_os_error(),
    )
}

/// Converts a failed system call that is not a `bpf()` program or map command (netlink, namespaces): EPERM is
/// `PermissionDeniedError`, a missing interface or namespace `NotFoundError`, anything else a `ProgramError`.
pub fn from_io(context: &str, error: &io::Error) -> PyErr {
    match error.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => new_err_errno(
            Kind::PermissionDenied,
            format!("{context}: permission denied: run as root (CAP_NET_ADMIN and CAP_SYS_ADMIN)"),
            error.raw_os_error(),
        ),
        Some(libc::ENODEV | libc::ENOENT) => new_err(Kind::NotFound, format!("{context}: {error}")),
        errno => new_err_errno(Kind::Program, format!("{context}: {error}"), errno),
    }
}

/// Raised when an object was used after `close()`.
pub fn closed(what: &str) -> PyErr {
    new_err(Kind::Closed, format!("{what} is closed"))
}

/// An error met while the GIL is released. Building a Python exception needs the GIL, and taking it while holding
/// one of our locks could deadlock with a thread that holds the GIL and waits for that lock; so the exception is
/// built by `From<Deferred> for PyErr`, after the lock is released and the GIL is back.
pub enum Deferred {
    Plain(Kind, String),
    Program(String, Box<ProgramError>),
    TracePoint {
        context: String,
        category: String,
        name: String,
        error: Box<ProgramError>,
    },
    Ebpf(Box<EbpfError>),
    MapIo(String, io::Error),
    PinIo(String, io::Error),
    /// A panic caught inside an entry point (by `pyaya_core::panic::catch`) where cleanup had to run first.
    Panic(Kind, &'static str, pyaya_core::panic::Panic),
    Py(PyErr),
}

impl From<PyErr> for Deferred {
    fn from(error: PyErr) -> Self {
        Self::Py(error)
    }
}

impl Deferred {
    /// The Python exception, for an operation that needs `needs` (named when the kernel answers EPERM).
    pub fn into_err(self, needs: Needs) -> PyErr {
        match self {
            Self::Plain(kind, message) => new_err(kind, message),
            Self::Program(context, error) => from_program_error(&context, &error, needs),
            Self::TracePoint {
                context,
                category,
                name,
                error,
            } => tracepoint_error(&context, &category, &name, &error, needs),
            Self::Ebpf(error) => from_ebpf_error(&error),
            Self::MapIo(context, error) => from_map_io(&context, &error),
            Self::PinIo(context, error) => from_pin_io(&context, &error),
            Self::Panic(kind, what, panic) => panicked(kind, what, &panic),
            Self::Py(error) => error,
        }
    }
}

impl From<Deferred> for PyErr {
    fn from(deferred: Deferred) -> Self {
        deferred.into_err(Needs::BPF)
    }
}

/// An attach failure on a tracepoint, explained: tracefs missing, or no such tracepoint in this kernel.
fn tracepoint_error(
    context: &str,
    category: &str,
    name: &str,
    error: &ProgramError,
    needs: Needs,
) -> PyErr {
    let events = std::path::Path::new("/sys/kernel/tracing/events");
    let tracefs =
        events.exists() || std::path::Path::new("/sys/kernel/debug/tracing/events").exists();
    if !tracefs {
        return new_err(
            Kind::Program,
            format!("{context}: tracefs is not mounted; mount it with `mount -t tracefs nodev /sys/kernel/tracing`"),
        );
    }
    let missing = events.join(category).join(name);
    if events.exists() && !missing.exists() {
        return new_err(
            Kind::Program,
            format!(
                "{context}: this kernel has no tracepoint {category}/{name} (no {})",
                missing.display()
            ),
        );
    }
    from_program_error(context, error, needs)
}

/// What a caught panic becomes: an exception of the entry point's area naming the entry point, the panic and what
/// to do. Malformed objects are the usual cause of panics in aya-obj's parser and relocator.
fn panicked(kind: Kind, what: &str, panic: &pyaya_core::panic::Panic) -> PyErr {
    let hint = match kind {
        Kind::Object => {
            "the input is malformed in a way aya does not check; rebuild the object with `pyaya build` \
             (if it came from a normal build, please report it with the file)"
        }
        _ => "this is a bug in pyaya or aya: please report it with the steps that led here",
    };
    new_err(
        kind,
        format!("{what} failed: internal error ({panic}); {hint}"),
    )
}

/// The body of a `#[guard]`ed entry point that returns a `Result`: a panic becomes `Err` of `kind`.
pub fn guard_result<T, E: From<PyErr>>(
    kind: Kind,
    what: &str,
    body: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    pyaya_core::panic::catch(body).unwrap_or_else(|panic| Err(panicked(kind, what, &panic).into()))
}

/// The body of a `#[guard]`ed entry point that returns a plain value, which PyO3 then gets as `PyResult`.
pub fn guard_value<T>(kind: Kind, what: &str, body: impl FnOnce() -> T) -> PyResult<T> {
    pyaya_core::panic::catch(body).map_err(|panic| panicked(kind, what, &panic))
}
