//! `Link`: one attachment of a program, owning aya's link (`take_link`). An attachment lives while anyone holds it:
//! its program (until `unload()` or the object's `close()`) or a `Link` handle. The last holder to let go detaches
//! it (a pinned link stays pinned), as aya does for a link taken out of its program.

use std::fmt::Display;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::ProgramError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{new_err, Deferred, Kind};

/// An attachment aya handed over (`take_link`). Dropping it detaches.
pub trait OwnedLink: Send + 'static {
    /// Detaches now, reporting the kernel's answer.
    fn detach(self: Box<Self>) -> Result<(), ProgramError>;
    /// Converts to a bpf_link fd, which can be pinned. Fails for attachments that are not bpf_links.
    fn into_fd_link(self: Box<Self>) -> Result<FdLink, String>;
    /// What a netlink attachment is (one that stays if the process is killed); `None` for fd-based ones.
    fn netlink(&self) -> Option<NetlinkAttachment> {
        None
    }
    /// Why this kind of attachment can never be pinned, known without consuming it (so a refused `pin()` leaves
    /// it as it was); `None` when `into_fd_link` may work.
    fn never_pinnable(&self) -> Option<String> {
        None
    }
    /// Whether something replaced this attachment at its attach point since (a socket's filter set again): it is
    /// then no longer attached, and detaching it leaves the replacement alone.
    fn superseded(&self) -> bool {
        false
    }
    /// The id of the attached program, where the attachment knows it (tcx links: others are ordered by it).
    fn program_id(&self) -> Option<u32> {
        None
    }
    /// Remembers pyaya's records of this attachment, removed once it is detached. False if it keeps none.
    fn keep_records(&mut self, _records: Records) -> bool {
        false
    }
}

/// A netlink attachment, as pyaya records it (see `python/pyaya/attachments.py`).
pub enum NetlinkAttachment {
    /// A TC filter on the `clsact` qdisc; `created_clsact` when this attach added the qdisc.
    Tc {
        ifindex: u32,
        direction: &'static str,
        priority: u16,
        handle: u32,
        /// `TCA_BPF_CLASSID` as pyaya set it (0: none).
        classid: u32,
        created_clsact: bool,
    },
    /// An XDP program set through netlink; `mode` is its `XDP_FLAGS_*_MODE` flag (0: the kernel's choice).
    Xdp { ifindex: u32, mode: u32 },
}

/// The files recording a netlink attachment: its own, and the record saying pyaya added the interface's `clsact`
/// qdisc (whoever removes the qdisc's last filter removes the qdisc and that record).
pub struct Records {
    pub record: PathBuf,
    pub clsact: Option<PathBuf>,
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
        FdLink::try_from(*self).map_err(not_a_bpf_link)
    }
}

/// Why an attachment cannot be pinned: aya's only words for it are "Invalid link".
pub fn not_a_bpf_link(error: impl Display) -> String {
    format!(
        "{error}: the kernel made this attachment without a bpf_link (kprobe, uprobe, tracepoint and perf event \
         attachments are bpf_links from kernel 5.15 on; before, they are perf event fds), so it cannot be pinned; \
         the link was detached"
    )
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

    fn never_pinnable(&self) -> Option<String> {
        Some("this kind of attachment is not a bpf_link, so it cannot be pinned".into())
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

/// One attachment of a program. Detaching is idempotent. The attachment is shared by every handle on it and by
/// its program: it detaches when the last of them goes (the state's `Drop`), or at once with `detach()`.
#[pyclass(module = "pyaya._native", frozen)]
pub struct Link {
    program: String,
    state: SharedLink,
}

impl Link {
    pub fn new(program: &str, link: Box<dyn OwnedLink>) -> (Self, SharedLink) {
        let state = Arc::new(Mutex::new(LinkState::Attached(link)));
        (Self::shared(program, state.clone()), state)
    }

    /// Another handle on an attachment a program keeps.
    pub fn shared(program: &str, state: SharedLink) -> Self {
        Self {
            program: program.to_owned(),
            state,
        }
    }

    fn lock(&self) -> MutexGuard<'_, LinkState> {
        lock_link(&self.state)
    }
}

/// Whether an attachment is still there (not detached), as its program's list of links shows it.
pub fn is_attached(link: &SharedLink) -> bool {
    match &*lock_link(link) {
        LinkState::Attached(link) => !link.superseded(),
        LinkState::Pinned(..) => true,
        LinkState::Gone => false,
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

    /// An opaque token, equal for handles on the same attachment (`Program.links` hands out new handles).
    #[getter]
    fn identity(&self) -> usize {
        Arc::as_ptr(&self.state).addr()
    }

    /// Name of the attached program; for a link opened from a pin, the kernel's name for it (at most 15 bytes).
    #[getter]
    fn program(&self) -> &str {
        &self.program
    }

    /// The id of the attached program for a tcx link made by this process (what `before=`/`after=` order
    /// by); `None` for other links and once detached.
    #[getter]
    fn program_id(&self) -> Option<u32> {
        match &*self.lock() {
            LinkState::Attached(link) => link.program_id(),
            _ => None,
        }
    }

    /// Whether the link is still attached (not detached, nor replaced at its attach point).
    #[getter]
    fn attached(&self) -> bool {
        match &*self.lock() {
            LinkState::Attached(link) => !link.superseded(),
            LinkState::Pinned(..) => true,
            LinkState::Gone => false,
        }
    }

    /// For a netlink attachment (which stays if the process is killed): what pyaya records of it, as a dict
    /// (`kind` "tc": `ifindex`, `direction`, `priority`, `handle`, `classid`, `created_clsact`; `kind` "xdp": `ifindex`,
    /// `mode`). `None` for fd-based links, and once detached.
    #[getter]
    fn netlink<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let attachment = match &*self.lock() {
            LinkState::Attached(link) => link.netlink(),
            _ => None,
        };
        let Some(attachment) = attachment else {
            return Ok(None);
        };
        let dict = PyDict::new(py);
        match attachment {
            NetlinkAttachment::Tc {
                ifindex,
                direction,
                priority,
                handle,
                classid,
                created_clsact,
            } => {
                dict.set_item("kind", "tc")?;
                dict.set_item("ifindex", ifindex)?;
                dict.set_item("direction", direction)?;
                dict.set_item("priority", priority)?;
                dict.set_item("handle", handle)?;
                dict.set_item("classid", classid)?;
                dict.set_item("created_clsact", created_clsact)?;
            }
            NetlinkAttachment::Xdp { ifindex, mode } => {
                dict.set_item("kind", "xdp")?;
                dict.set_item("ifindex", ifindex)?;
                dict.set_item("mode", mode)?;
            }
        }
        Ok(Some(dict))
    }

    /// Hands over the files recording this netlink attachment: `record`, and `clsact` (the interface's qdisc
    /// record); they are removed once the attachment is detached. Returns False (and keeps nothing) for an
    /// attachment that is fd-based or already detached.
    #[pyo3(signature = (record, clsact = None))]
    fn keep_records(&self, record: PathBuf, clsact: Option<PathBuf>) -> bool {
        match &mut *self.lock() {
            LinkState::Attached(link) => link.keep_records(Records { record, clsact }),
            _ => false,
        }
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
            crate::pinning::check_pin_place(
                Kind::Program,
                &format!("{context} at {}", path.display()),
                &path,
            )?;
            let mut guard = self.lock();
            if let LinkState::Attached(link) = &*guard {
                if let Some(reason) = link.never_pinnable() {
                    return Err(Deferred::Plain(
                        Kind::Unsupported,
                        format!("{context}: {reason}; it stays attached"),
                    ));
                }
            }
            let state = std::mem::replace(&mut *guard, LinkState::Gone);
            match state {
                LinkState::Attached(link) => {
                    let fd_link = link.into_fd_link().map_err(|reason| {
                        Deferred::Plain(Kind::Unsupported, format!("{context}: {reason}"))
                    })?;
                    match fd_link.pin(&path) {
                        Ok(pinned) => {
                            let finished = crate::pinning::finish_pin(
                                Kind::Program,
                                &format!("{context} at {}", path.display()),
                                &path,
                            );
                            *guard = LinkState::Pinned(pinned, path);
                            finished
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

    /// Removes the pin; the link stays attached while this handle (or its program) holds it.
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
