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

const PRIVILEGE_HINT: &str =
    "bpf() needs root or CAP_BPF (plus CAP_PERFMON for tracing programs and \
CAP_NET_ADMIN for networking programs); run with sudo or grant those capabilities";

/// Maps a permission failure to `PermissionDeniedError`, or returns `None`.
fn permission_error(what: &str, error: &(dyn StdError + 'static)) -> Option<PyErr> {
    let io = io_error_in(error)?;
    let errno = io.raw_os_error()?;
    (errno == libc::EPERM).then(|| {
        new_err_errno(
            Kind::PermissionDenied,
            format!("{what}: permission denied (EPERM): {PRIVILEGE_HINT}"),
            Some(errno),
        )
    })
}

pub fn errno_of(error: &(dyn StdError + 'static)) -> Option<i32> {
    io_error_in(error).and_then(io::Error::raw_os_error)
}

/// Converts an error from loading an object (`Ebpf::load`).
pub fn from_ebpf_error(error: &EbpfError) -> PyErr {
    if let Some(err) = permission_error("loading the object failed", error) {
        return err;
    }
    match error {
        EbpfError::ParseError(_) => new_err(Kind::Object, format!("not a valid BPF object: {}", chain_message(error))),
        EbpfError::ProgramError(program_error) => from_program_error("loading the object failed", program_error),
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

/// Converts an error from loading, attaching or detaching a program.
pub fn from_program_error(context: &str, error: &ProgramError) -> PyErr {
    if let ProgramError::LoadError {
        io_error,
        verifier_log,
    } = error
    {
        let errno = io_error.raw_os_error();
        if errno == Some(libc::EPERM) {
            return new_err_errno(
                Kind::PermissionDenied,
                format!("{context}: permission denied (EPERM): {PRIVILEGE_HINT}"),
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
    if let Some(err) = permission_error(context, error) {
        return err;
    }
    new_err_errno(
        Kind::Program,
        format!("{context}: {}", chain_message(error)),
        errno_of(error),
    )
}

/// Converts an error from a raw map syscall.
pub fn from_map_io(context: &str, error: &io::Error) -> PyErr {
    if error.raw_os_error() == Some(libc::EPERM) {
        return new_err_errno(
            Kind::PermissionDenied,
            format!("{context}: permission denied (EPERM): {PRIVILEGE_HINT}"),
            Some(libc::EPERM),
        );
    }
    new_err_errno(
        Kind::Map,
        format!("{context}: {error}"),
        error.raw_os_error(),
    )
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
    /// A panic caught inside an entry point (by `pyaya_core::panic::catch`) where cleanup had to run first.
    Panic(Kind, &'static str, pyaya_core::panic::Panic),
    Py(PyErr),
}

impl From<PyErr> for Deferred {
    fn from(error: PyErr) -> Self {
        Self::Py(error)
    }
}

impl From<Deferred> for PyErr {
    fn from(deferred: Deferred) -> Self {
        match deferred {
            Deferred::Plain(kind, message) => new_err(kind, message),
            Deferred::Program(context, error) => from_program_error(&context, &error),
            Deferred::TracePoint {
                context,
                category,
                name,
                error,
            } => tracepoint_error(&context, &category, &name, &error),
            Deferred::Ebpf(error) => from_ebpf_error(&error),
            Deferred::MapIo(context, error) => from_map_io(&context, &error),
            Deferred::Panic(kind, what, panic) => panicked(kind, what, &panic),
            Deferred::Py(error) => error,
        }
    }
}

/// An attach failure on a tracepoint, explained: tracefs missing, or no such tracepoint in this kernel.
fn tracepoint_error(context: &str, category: &str, name: &str, error: &ProgramError) -> PyErr {
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
    from_program_error(context, error)
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
