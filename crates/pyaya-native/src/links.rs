//! `Link`: one attachment of a program, owning aya's link (`take_link`). An attachment lives while anyone holds it:
//! its program (until `unload()` or the object's `close()`) or a `Link` handle. The last holder to let go detaches
//! it (a pinned link stays pinned), as aya does for a link taken out of its program.

use std::fmt::Display;
use std::io;
use std::os::fd::{AsFd as _, BorrowedFd};
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
    /// The attached program's name: a replacement (`Program.attach_to_link`) renames it.
    program: Mutex<String>,
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
            program: Mutex::new(program.to_owned()),
            state,
        }
    }

    fn lock(&self) -> MutexGuard<'_, LinkState> {
        lock_link(&self.state)
    }

    pub fn program_name(&self) -> String {
        self.program
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn state(&self) -> &SharedLink {
        &self.state
    }

    /// Makes this attachment run `program` (`name`, kernel id `program_id`) instead, atomically
    /// (`BPF_LINK_UPDATE`); with `expected`, only while it still runs that program. An attachment this process
    /// made becomes a plain bpf_link on the way (as `pin` makes it); one that is not a bpf_link is refused and
    /// stays as it was.
    pub fn replace_program(
        &self,
        program: BorrowedFd<'_>,
        name: &str,
        program_id: u32,
        expected: Option<BorrowedFd<'_>>,
    ) -> Result<(), Deferred> {
        let context = format!(
            "replacing program {:?} of a link with {name:?}",
            self.program_name()
        );
        let mut guard = self.lock();
        let updated = match &*guard {
            LinkState::Gone => {
                return Err(Deferred::Plain(
                    Kind::Closed,
                    format!("{context}: the link is detached"),
                ))
            }
            LinkState::Pinned(_, path) => {
                let fd = crate::sys::object_from_pin(path).map_err(|err| {
                    Deferred::Plain(
                        Kind::NotFound,
                        format!("{context}: opening its pin {}: {err}", path.display()),
                    )
                })?;
                crate::sys::link_update(fd.as_fd(), program, expected)
            }
            LinkState::Attached(link) => {
                if let Some(reason) = link.never_pinnable() {
                    return Err(Deferred::Plain(
                        Kind::Unsupported,
                        format!(
                            "{context}: only a bpf_link's program can be replaced in place ({reason}); detach it \
                             and attach the new program instead (it stays attached meanwhile)"
                        ),
                    ));
                }
                let LinkState::Attached(link) = std::mem::replace(&mut *guard, LinkState::Gone)
                else {
                    unreachable!("matched Attached above")
                };
                let fd_link = link.into_fd_link().map_err(|reason| {
                    Deferred::Plain(Kind::Unsupported, format!("{context}: {reason}"))
                })?;
                let opened = fd_link
                    .info()
                    .map_err(|err| io::Error::other(crate::errors::chain_message(&err)))
                    .and_then(|info| {
                        crate::sys::link_fd_by_id(info.id()).map(|fd| (fd, info.program_id()))
                    });
                let (result, now) = match opened {
                    Ok((fd, before)) => {
                        let result = crate::sys::link_update(fd.as_fd(), program, expected);
                        let now = if result.is_ok() { program_id } else { before };
                        (result, now)
                    }
                    Err(err) => (Err(err), 0),
                };
                *guard = LinkState::Attached(Box::new(ReplacedLink {
                    link: fd_link,
                    program_id: now,
                }));
                result
            }
        };
        updated.map_err(|err| update_error(&context, &err, expected.is_some()))?;
        drop(guard);
        *self.program.lock().unwrap_or_else(PoisonError::into_inner) = name.to_owned();
        Ok(())
    }
}

/// The kernel's answer to `BPF_LINK_UPDATE`, in words.
fn update_error(context: &str, err: &io::Error, expected: bool) -> Deferred {
    let (kind, why) = match err.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => (
            Kind::Unsupported,
            "the kernel replaces programs only in XDP, cgroup, netns (flow dissector, sk_lookup), tcx and netkit \
             links, and only with a program of the same type and attach type",
        ),
        Some(libc::EPERM) if expected => (
            Kind::Program,
            "the link no longer runs the program given as `replacing` (someone replaced it meanwhile)",
        ),
        Some(libc::EPERM) | Some(libc::EACCES) => (
            Kind::PermissionDenied,
            "replacing a link's program needs root (CAP_SYS_ADMIN or CAP_NET_ADMIN)",
        ),
        _ => (Kind::Program, ""),
    };
    let message = if why.is_empty() {
        format!("{context}: {err}; the link keeps its program")
    } else {
        format!("{context}: {err}: {why}; the link keeps its program")
    };
    Deferred::Plain(kind, message)
}

/// An attachment whose program was replaced: a bpf_link, and the program it runs now.
struct ReplacedLink {
    link: FdLink,
    program_id: u32,
}

impl OwnedLink for ReplacedLink {
    fn detach(self: Box<Self>) -> Result<(), ProgramError> {
        drop(self.link);
        Ok(())
    }

    fn into_fd_link(self: Box<Self>) -> Result<FdLink, String> {
        Ok(self.link)
    }

    fn program_id(&self) -> Option<u32> {
        (self.program_id != 0).then_some(self.program_id)
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

/// Whether an attachment still runs the program with kernel id `program` (`None`: not known), as far as this
/// process knows: false once `attach_to_link` moved it to another program.
pub fn runs_program(link: &SharedLink, program: Option<u32>) -> bool {
    match (&*lock_link(link), program) {
        (LinkState::Attached(link), Some(program)) => {
            link.program_id().is_none_or(|id| id == program)
        }
        _ => true,
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
            program: Mutex::new(program),
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
    fn program(&self) -> String {
        self.program_name()
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
        let context = format!("detaching program {:?}", self.program_name());
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
        let context = format!("pinning the link of program {:?}", self.program_name());
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
        let context = format!("unpinning the link of program {:?}", self.program_name());
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
