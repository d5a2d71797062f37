//! `Link`: one attachment of a program, owning aya's link so that dropping it detaches. The owning `Ebpf` keeps a
//! handle on every link it handed out, so closing the object detaches them all.

use std::fmt::Display;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::ProgramError;
use pyo3::prelude::*;

use crate::errors::{new_err, Deferred, Kind};

/// An attachment aya handed over (`take_link`). Dropping it detaches.
pub trait OwnedLink: Send + 'static {
    /// Detaches now, reporting the kernel's answer.
    fn detach(self: Box<Self>) -> Result<(), ProgramError>;
    /// Converts to a bpf_link fd, which can be pinned. Fails for attachments that are not bpf_links.
    fn into_fd_link(self: Box<Self>) -> Result<FdLink, String>;
}

impl<L> OwnedLink for L
where
    L: aya::programs::Link + Send,
    FdLink: TryFrom<L>,
    <FdLink as TryFrom<L>>::Error: Display,
{
    fn detach(self: Box<Self>) -> Result<(), ProgramError> {
        aya::programs::Link::detach(*self)
    }

    fn into_fd_link(self: Box<Self>) -> Result<FdLink, String> {
        FdLink::try_from(*self).map_err(|err| err.to_string())
    }
}

/// An attachment that is not a bpf_link (e.g. a socket filter set with `setsockopt`): it cannot be pinned.
#[allow(
    dead_code,
    reason = "for socket filters, sk_msg and sk_skb attachments"
)]
pub struct LegacyLink<L>(pub L);

impl<L: aya::programs::Link + Send> OwnedLink for LegacyLink<L> {
    fn detach(self: Box<Self>) -> Result<(), ProgramError> {
        aya::programs::Link::detach(self.0)
    }

    fn into_fd_link(self: Box<Self>) -> Result<FdLink, String> {
        Err("this kind of attachment is not a bpf_link, so it cannot be pinned".into())
    }
}

/// Where a link stands.
pub enum LinkState {
    Attached(Box<dyn OwnedLink>),
    /// Pinned in bpffs: stays attached after this process exits, until unpinned.
    Pinned(PinnedLink, PathBuf),
    /// Detached, or closed with its object.
    Gone,
}

pub type SharedLink = Arc<Mutex<LinkState>>;

pub fn lock_link(link: &SharedLink) -> MutexGuard<'_, LinkState> {
    link.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One attachment of a program. Detaching is idempotent; closing the object, or dropping this handle, detaches it
/// unless it is pinned.
#[pyclass(module = "pyaya._native", frozen)]
pub struct Link {
    program: String,
    state: SharedLink,
}

impl Link {
    pub fn new(program: &str, link: Box<dyn OwnedLink>) -> (Self, SharedLink) {
        let state = Arc::new(Mutex::new(LinkState::Attached(link)));
        (
            Self {
                program: program.to_owned(),
                state: state.clone(),
            },
            state,
        )
    }

    fn lock(&self) -> MutexGuard<'_, LinkState> {
        lock_link(&self.state)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let state = std::mem::replace(&mut *self.lock(), LinkState::Gone);
        drop(state);
    }
}

#[pyaya_guard::guard(Program)]
#[pymethods]
impl Link {
    /// A link pinned at `path` (in bpffs) by this or another process.
    #[staticmethod]
    fn from_pin(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let opened = py.detach(|| {
            PinnedLink::from_pin(&path).map(|link| {
                let program = crate::programs_common::pinned_link_program_name(&path);
                (link, program.unwrap_or_default())
            })
        });
        let (pinned, program) = opened.map_err(|err| {
            new_err(
                Kind::NotFound,
                format!(
                    "no pinned link at {}: {}",
                    path.display(),
                    crate::errors::chain_message(&err)
                ),
            )
        })?;
        Ok(Self {
            program,
            state: Arc::new(Mutex::new(LinkState::Pinned(pinned, path))),
        })
    }

    /// Name of the attached program; for a link opened from a pin, the kernel's name for it (at most 15 bytes).
    #[getter]
    fn program(&self) -> &str {
        &self.program
    }

    /// Whether the link is still attached.
    #[getter]
    fn attached(&self) -> bool {
        !matches!(*self.lock(), LinkState::Gone)
    }

    /// Where the link is pinned, or `None`.
    #[getter]
    fn pinned_path(&self) -> Option<PathBuf> {
        match &*self.lock() {
            LinkState::Pinned(_, path) => Some(path.clone()),
            _ => None,
        }
    }

    /// Detaches the program from this attach point; a pinned link is unpinned first.
    fn detach(&self, py: Python<'_>) -> PyResult<()> {
        let context = format!("detaching program {:?}", self.program);
        py.detach(|| {
            let state = std::mem::replace(&mut *self.lock(), LinkState::Gone);
            match state {
                LinkState::Attached(link) => link
                    .detach()
                    .map_err(|err| Deferred::Program(context, Box::new(err))),
                LinkState::Pinned(pinned, path) => pinned.unpin().map(drop).map_err(|err| {
                    Deferred::Plain(
                        Kind::Program,
                        format!("{context}: removing the pin {}: {err}", path.display()),
                    )
                }),
                LinkState::Gone => Ok(()),
            }
        })?;
        Ok(())
    }

    /// Pins the link at `path` in bpffs, so it stays attached after this process exits.
    fn pin(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let context = format!("pinning the link of program {:?}", self.program);
        py.detach(|| {
            let mut guard = self.lock();
            let state = std::mem::replace(&mut *guard, LinkState::Gone);
            match state {
                LinkState::Attached(link) => {
                    let fd_link = link.into_fd_link().map_err(|reason| {
                        Deferred::Plain(Kind::Unsupported, format!("{context}: {reason}"))
                    })?;
                    match fd_link.pin(&path) {
                        Ok(pinned) => {
                            *guard = LinkState::Pinned(pinned, path);
                            Ok(())
                        }
                        Err(err) => Err(Deferred::Plain(
                            Kind::Program,
                            format!(
                                "{context} at {} failed (is bpffs mounted there? `mount -t bpf bpf /sys/fs/bpf`): {}; \
                                 the link was detached",
                                path.display(),
                                crate::errors::chain_message(&err)
                            ),
                        )),
                    }
                }
                LinkState::Pinned(pinned, old) => {
                    let already = old == path;
                    *guard = LinkState::Pinned(pinned, old);
                    if already {
                        Ok(())
                    } else {
                        Err(Deferred::Plain(
                            Kind::Program,
                            format!("{context}: it is already pinned elsewhere; unpin it first"),
                        ))
                    }
                }
                LinkState::Gone => Err(Deferred::Plain(
                    Kind::Closed,
                    format!("{context}: the link is detached"),
                )),
            }
        })?;
        Ok(())
    }

    /// Removes the pin; the link stays attached while this handle (or its object) lives.
    fn unpin(&self, py: Python<'_>) -> PyResult<()> {
        let context = format!("unpinning the link of program {:?}", self.program);
        py.detach(|| {
            let mut guard = self.lock();
            let state = std::mem::replace(&mut *guard, LinkState::Gone);
            match state {
                LinkState::Pinned(pinned, path) => match pinned.unpin() {
                    Ok(fd_link) => {
                        *guard = LinkState::Attached(Box::new(fd_link));
                        Ok(())
                    }
                    Err(err) => Err(Deferred::Plain(
                        Kind::Program,
                        format!("{context}: removing {}: {err}", path.display()),
                    )),
                },
                other => {
                    *guard = other;
                    Ok(())
                }
            }
        })?;
        Ok(())
    }
}
