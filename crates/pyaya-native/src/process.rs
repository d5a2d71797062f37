//! Process lifetime: the parent-death signal of a supervised `main.py`, and the guard process that removes a
//! killed process's netlink attachments (see `python/pyaya/attachments.py`).

use std::io;
use std::os::unix::process::CommandExt as _;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, PoisonError};

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

use crate::errors::{new_err, Kind};

/// The highest signal number Linux has (`SIGRTMAX`).
const SIGNAL_MAX: i32 = 64;

fn check_signal(signal: i32) -> PyResult<libc::c_ulong> {
    libc::c_ulong::try_from(signal)
        .ok()
        .filter(|_| signal <= SIGNAL_MAX)
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "{signal} is not a signal number (0 to {SIGNAL_MAX})"
            ))
        })
}

/// Asks the kernel to send `signal` to this process when its parent exits (`prctl(PR_SET_PDEATHSIG)`); 0 clears
/// it. The kernel sends it when the *thread* that forked this process exits, and keeps it across `execve` (except
/// of set-user-ID programs).
#[pyaya_guard::guard(Program)]
#[pyfunction]
pub fn set_parent_death_signal(signal: i32) -> PyResult<()> {
    let signal = check_signal(signal)?;
    // SAFETY: PR_SET_PDEATHSIG takes the signal number by value; the other arguments are unused and zero.
    let result = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal, 0, 0, 0) };
    if result != 0 {
        let error = io::Error::last_os_error();
        return Err(new_err(
            Kind::Unsupported,
            format!("prctl(PR_SET_PDEATHSIG, {signal}) failed: {error}"),
        ));
    }
    Ok(())
}

/// The signal this process gets when its parent exits (`prctl(PR_GET_PDEATHSIG)`), 0 for none.
#[pyaya_guard::guard(Program)]
#[pyfunction]
pub fn parent_death_signal() -> PyResult<i32> {
    let mut signal: libc::c_int = 0;
    // SAFETY: PR_GET_PDEATHSIG writes one int through the pointer, which points at `signal` for the whole call.
    let result = unsafe {
        libc::prctl(
            libc::PR_GET_PDEATHSIG,
            std::ptr::from_mut(&mut signal) as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if result != 0 {
        let error = io::Error::last_os_error();
        return Err(new_err(
            Kind::Unsupported,
            format!("prctl(PR_GET_PDEATHSIG) failed: {error}"),
        ));
    }
    Ok(signal)
}

/// The guard of this process: its pid and the write end of the pipe that is its standard input. The pipe is never
/// written to: the guard waits for end-of-file, which the kernel delivers when this process is gone, however it
/// ended. Rust's pipes are close-on-exec, so programs this process starts do not hold it open.
static GUARD: Mutex<Option<(u32, ChildStdin)>> = Mutex::new(None);

/// Starts `argv` as this process's guard, once: in a process group of its own (a Ctrl-C on the terminal does
/// not reach it), in `/` (it keeps no mount busy), with the write end of its standard input kept here until this
/// process exits. Returns the guard's pid (the same on every call, while it runs).
#[pyaya_guard::guard(Program)]
#[pyfunction]
pub fn start_guard(py: Python<'_>, argv: Vec<String>) -> PyResult<u32> {
    let (program, arguments) = argv
        .split_first()
        .ok_or_else(|| PyValueError::new_err("the guard's command line is empty"))?;
    py.detach(|| {
        let mut guard = GUARD.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((pid, _)) = guard.as_ref() {
            if guard_running(*pid) {
                return Ok(*pid);
            }
        }
        let mut child = Command::new(program)
            .args(arguments)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .current_dir("/")
            .process_group(0)
            .spawn()
            .map_err(|err| format!("starting the guard process {program}: {err}"))?;
        let pid = child.id();
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| "the guard process has no standard input pipe".to_owned())?;
        // The `Child` is dropped without waiting: the guard outlives this process by design, and is reaped by
        // init once it exits after us.
        *guard = Some((pid, stdin));
        Ok(pid)
    })
    .map_err(|message: String| new_err(Kind::Program, message))
}

/// Whether the guard started earlier still runs (it may have been killed): not reaped, since its `Child` was
/// dropped, so a dead guard shows as a zombie child of ours.
fn guard_running(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid with WNOHANG on our own child only reads its state into `status`; reaping a dead guard here
    // is what lets a new one start.
    let reaped = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    reaped == 0
}

/// Moves the calling thread into the namespace `fd` refers to (`setns(2)`); `namespace_type` is a `CLONE_NEW*`
/// flag, or 0 for any. Raises OSError with the kernel's errno.
#[pyaya_guard::guard(Program)]
#[pyfunction]
pub fn join_namespace(fd: i32, namespace_type: i32) -> PyResult<()> {
    // SAFETY: setns reads its two integer arguments only; an fd that is not a namespace fails with EINVAL.
    let result = unsafe { libc::setns(fd, namespace_type) };
    if result != 0 {
        // OSError(errno, strerror), as os.* functions raise it (PyO3's io::Error conversion drops the errno).
        let error = io::Error::last_os_error();
        let errno = error.raw_os_error().unwrap_or(libc::EIO);
        return Err(PyOSError::new_err((errno, format!("setns: {error}"))));
    }
    Ok(())
}
