//! Attach calls of the networking and cgroup program types: XDP, TC classifiers, socket filters, the cgroup hooks,
//! sock_ops, sk_msg / sk_skb on socket maps, sk_lookup and flow dissectors.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use aya::maps::{Map as AyaMap, MapData, SockHash, SockMap};
use aya::programs::cgroup_skb::CgroupSkbAttachType;
use aya::programs::links::{CgroupAttachMode, FdLink, LinkOrder};
use aya::programs::tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcError};
use aya::programs::xdp::XdpLink;
use aya::programs::{
    Program as AyaProgram, ProgramError, ProgramId, SkReuseport, SocketFilter, TcAttachType,
    XdpMode,
};
use aya::util::KernelVersion;
use pyo3::prelude::*;

use crate::ebpf::{wrong_kind, Program};
use crate::errors::{self, Deferred, Kind};
use crate::links::{LegacyLink, Link, NetlinkAttachment, OwnedLink, Records};
use crate::maps::Map;
use crate::names::program_kind;
use crate::netlink;
use crate::programs_tracing::owned;

/// `statfs.f_type` of a cgroup v2 mount.
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
/// Kernel `enum bpf_map_type` values of the maps sk_msg and sk_skb programs attach to.
const MAP_TYPE_SOCKMAP: u32 = 15;
const MAP_TYPE_SOCKHASH: u32 = 18;

/// A network interface given by name or index.
#[derive(FromPyObject)]
pub enum Interface {
    Index(u32),
    Name(String),
}

impl Interface {
    /// `(name, index)`, both resolved, or `NotFoundError` naming the interface.
    fn resolve(&self) -> Result<(String, u32), Deferred> {
        let missing = |what: String| {
            Deferred::Plain(
                Kind::NotFound,
                format!(
                    "no network interface {what} in this network namespace (see `ip link show`)"
                ),
            )
        };
        match self {
            Self::Name(name) => {
                let c_name = std::ffi::CString::new(name.as_str())
                    .map_err(|_| missing(format!("{name:?}")))?;
                // SAFETY: `c_name` is a valid NUL-terminated string for the duration of the call.
                let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
                if index == 0 {
                    return Err(missing(format!("{name:?}")));
                }
                Ok((name.clone(), index))
            }
            Self::Index(index) => {
                let mut buffer = [0 as libc::c_char; libc::IF_NAMESIZE];
                // SAFETY: `buffer` has the IF_NAMESIZE bytes `if_indextoname` may write.
                let found = unsafe { libc::if_indextoname(*index, buffer.as_mut_ptr()) };
                if found.is_null() {
                    return Err(missing(format!("with index {index}")));
                }
                // SAFETY: on success `buffer` holds a NUL-terminated name.
                let name = unsafe { std::ffi::CStr::from_ptr(buffer.as_ptr()) };
                Ok((name.to_string_lossy().into_owned(), *index))
            }
        }
    }
}

fn xdp_mode(mode: Option<&str>) -> PyResult<XdpMode> {
    match mode {
        None => Ok(XdpMode::Default),
        Some("skb") => Ok(XdpMode::Skb),
        Some("drv") => Ok(XdpMode::Driver),
        Some("hw") => Ok(XdpMode::Hardware),
        Some(other) => Err(crate::errors::new_err(
            Kind::InvalidArgument,
            format!(
                "XDP mode must be \"skb\" (generic), \"drv\" (native driver), \"hw\" (offload) or None (let \
                 the kernel choose), not {other:?}"
            ),
        )),
    }
}

fn tc_attach_type(direction: &str) -> PyResult<TcAttachType> {
    match direction {
        "ingress" => Ok(TcAttachType::Ingress),
        "egress" => Ok(TcAttachType::Egress),
        other => Err(crate::errors::new_err(
            Kind::InvalidArgument,
            format!("direction must be \"ingress\" or \"egress\", not {other:?}"),
        )),
    }
}

/// Opens a folder for its fd (a cgroup or a network namespace file), explaining what is wrong with `path`.
fn open_target(path: &Path, what: &str, directory: bool) -> Result<File, Deferred> {
    let mut options = OpenOptions::new();
    options.read(true);
    if directory {
        options.custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC);
    } else {
        options.custom_flags(libc::O_CLOEXEC);
    }
    options.open(path).map_err(|err| {
        let kind = match err.kind() {
            std::io::ErrorKind::NotFound => Kind::NotFound,
            std::io::ErrorKind::PermissionDenied => Kind::PermissionDenied,
            _ => Kind::Program,
        };
        Deferred::Plain(kind, format!("opening {what} {}: {err}", path.display()))
    })
}

/// Opens a cgroup v2 directory, refusing anything that is not on a cgroup2 mount (cgroup v1 hierarchies cannot
/// take BPF programs).
fn open_cgroup(path: &Path) -> Result<File, Deferred> {
    let file = open_target(path, "cgroup", true)?;
    // SAFETY: `statfs` is plain data; `fstatfs` fills it from an fd this function owns.
    let mut stats: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the fd is open for the whole call and `stats` is a valid out-pointer.
    let result = unsafe { libc::fstatfs(file.as_raw_fd(), &mut stats) };
    #[allow(
        clippy::useless_conversion,
        reason = "f_type is i64 on x86_64 but narrower on other architectures"
    )]
    let filesystem = i64::from(stats.f_type);
    if result == 0 && filesystem != CGROUP2_SUPER_MAGIC {
        return Err(Deferred::Plain(
            Kind::Program,
            format!(
                "{} is not a cgroup v2 directory; BPF programs attach to cgroup v2 (see `mount -t cgroup2`, \
                 e.g. /sys/fs/cgroup or /sys/fs/cgroup/unified)",
                path.display()
            ),
        ));
    }
    Ok(file)
}

fn open_netns(path: &Path) -> Result<File, Deferred> {
    open_target(path, "network namespace", false)
}

/// How a program set on a socket with `setsockopt` comes off again: `SO_DETACH_FILTER` for a socket filter,
/// `SO_DETACH_REUSEPORT_BPF` for a reuseport group's selector.
type SocketDetach = fn(BorrowedFd<'_>) -> Result<(), ProgramError>;

/// A program set on a socket with `setsockopt` (`SO_ATTACH_BPF`, `SO_ATTACH_REUSEPORT_EBPF`). The kernel keeps it
/// with the socket (or its reuseport group), not with an fd of ours, and pyaya must not keep the caller's socket
/// open; so this remembers the fd number and the socket's inode, and detaches only if that fd still names the same
/// socket (a closed socket took its program with it) and no later attach of this process replaced the program
/// there (the socket has one filter slot and one reuseport slot: detaching clears whatever is in it).
struct SocketAttachment {
    fd: RawFd,
    slot: SocketSlot,
    /// Which attach of this process to `slot` this is (see `SOCKET_SLOTS`).
    generation: u64,
    attached: bool,
    /// Whether letting go of the attachment (unload, close, the last handle dropped) detaches it. A reuseport
    /// program stays with its socket group until `detach()`, as in aya: the group, not this process, owns it.
    detach_on_drop: bool,
    detach: SocketDetach,
}

/// One program slot of one socket: its filter, or its reuseport group's selector.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct SocketSlot {
    device: u64,
    inode: u64,
    reuseport: bool,
}

/// The latest attach of this process to each socket slot, by generation: a replaced attachment must not detach its
/// replacement. The kernel cannot say which eBPF program a socket runs (`SO_GET_FILTER` refuses eBPF filters), so
/// only replacements made through pyaya in this process are seen.
static SOCKET_SLOTS: std::sync::Mutex<Option<std::collections::HashMap<SocketSlot, u64>>> =
    std::sync::Mutex::new(None);
static SOCKET_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn socket_slots(
) -> std::sync::MutexGuard<'static, Option<std::collections::HashMap<SocketSlot, u64>>> {
    SOCKET_SLOTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SocketAttachment {
    /// Records the attach about to be made on `socket`; `reuseport` for a reuseport group's selector.
    fn new(socket: BorrowedFd<'_>, reuseport: bool, detach: SocketDetach) -> std::io::Result<Self> {
        let metadata = File::from(socket.try_clone_to_owned()?).metadata()?;
        let slot = SocketSlot {
            device: metadata.dev(),
            inode: metadata.ino(),
            reuseport,
        };
        Ok(Self {
            fd: socket.as_raw_fd(),
            slot,
            generation: 0,
            attached: false,
            detach_on_drop: !reuseport,
            detach,
        })
    }

    /// Marks the attach as made: it now owns the slot, and an earlier attachment there is replaced.
    fn attached(mut self) -> Self {
        self.generation = SOCKET_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        socket_slots()
            .get_or_insert_with(Default::default)
            .insert(self.slot, self.generation);
        self.attached = true;
        self
    }

    /// Whether a later attach of this process replaced this program on its socket.
    fn replaced(&self) -> bool {
        socket_slots()
            .as_ref()
            .and_then(|slots| slots.get(&self.slot))
            .is_none_or(|latest| *latest != self.generation)
    }

    fn detach_now(&mut self) -> Result<(), ProgramError> {
        if !std::mem::replace(&mut self.attached, false) {
            return Ok(());
        }
        {
            let mut slots = socket_slots();
            let Some(slots) = slots.as_mut() else {
                return Ok(());
            };
            if slots.get(&self.slot) != Some(&self.generation) {
                return Ok(());
            }
            slots.remove(&self.slot);
        }
        // SAFETY: `fstat` on an fd number that may have been closed just fails with EBADF.
        let mut stats: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `stats` is a valid out-pointer for the call.
        if unsafe { libc::fstat(self.fd, &mut stats) } != 0 {
            return Ok(());
        }
        if stats.st_dev != self.slot.device || stats.st_ino != self.slot.inode {
            return Ok(());
        }
        // SAFETY: the fd number was just checked to be open and to name the socket the filter was attached to; it
        // is borrowed only for the `setsockopt` below.
        let socket = unsafe { BorrowedFd::borrow_raw(self.fd) };
        (self.detach)(socket)
    }
}

impl Drop for SocketAttachment {
    fn drop(&mut self) {
        if self.detach_on_drop {
            let _ignored: Result<(), ProgramError> = self.detach_now();
        } else if self.attached && !self.replaced() {
            // Left with the group: forget the slot, so a later attach there is not mistaken for a replacement.
            if let Some(slots) = socket_slots().as_mut() {
                slots.remove(&self.slot);
            }
        }
    }
}

impl OwnedLink for SocketAttachment {
    fn detach(mut self: Box<Self>) -> Result<(), ProgramError> {
        self.detach_now()
    }

    fn superseded(&self) -> bool {
        self.attached && self.replaced()
    }

    fn into_fd_link(self: Box<Self>) -> Result<FdLink, String> {
        Err(self.never_pinnable().unwrap_or_default())
    }

    fn never_pinnable(&self) -> Option<String> {
        Some(
            "a program set on a socket lives with the socket, not in a bpf_link, so it cannot be pinned"
                .into(),
        )
    }
}

/// A `SockMap`/`SockHash` fd for sk_msg / sk_skb attachment, from a map pyaya handed out. The map stays usable.
fn sock_map_fd(map: &Map) -> Result<aya::maps::sock::SockMapFd, Deferred> {
    map.with_map_data(|data| {
        let map_type = data
            .info()
            .ok()
            .and_then(|info| info.map_type().ok())
            .map(|t| t as u32);
        let io_error = |err: std::io::Error| {
            Deferred::Plain(
                Kind::Map,
                format!("duplicating the fd of a socket map: {err}"),
            )
        };
        let duplicate: OwnedFd = data.fd().as_fd().try_clone_to_owned().map_err(io_error)?;
        let copy = MapData::from_fd(duplicate)
            .map_err(|err| Deferred::Plain(Kind::Map, format!("reopening a socket map: {err}")))?;
        let map_error = |err: aya::maps::MapError| {
            Deferred::Plain(Kind::Map, format!("opening a socket map: {err}"))
        };
        match map_type {
            Some(MAP_TYPE_SOCKMAP) => {
                let sock_map = SockMap::try_from(AyaMap::SockMap(copy)).map_err(map_error)?;
                sock_map.fd().try_clone().map_err(io_error)
            }
            Some(MAP_TYPE_SOCKHASH) => sock_hash_fd(copy).map_err(map_error),
            _ => Err(Deferred::Plain(
                Kind::Program,
                "sk_msg and sk_skb programs attach to a SockMap or SockHash map, not to this map"
                    .into(),
            )),
        }
    })
}

/// aya types a SockHash by its key; any key size a map can have is spelled out here.
fn sock_hash_fd(data: MapData) -> Result<aya::maps::sock::SockMapFd, aya::maps::MapError> {
    macro_rules! by_key_size {
        ($($size:literal)*) => {
            match data.info().map(|info| info.key_size())? {
                $($size => SockHash::<MapData, [u8; $size]>::try_from(AyaMap::SockHash(data))?
                    .fd()
                    .try_clone()
                    .map_err(aya::maps::MapError::from),)*
                other => Err(aya::maps::MapError::InvalidKeySize { size: other as usize, expected: 64 }),
            }
        };
    }
    by_key_size!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32
        33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64)
}

/// A tcx attachment is a bpf_link; a netlink filter is not: it becomes a `TcFilter`, which says what it is (for
/// pyaya's records), refuses pins and still removes the filter on drop (converting it to an `FdLink` would drop
/// it without removing the filter).
fn tc_link(
    context: &str,
    link: Result<SchedClassifierLink, ProgramError>,
    ifindex: u32,
    direction: &'static str,
    created_clsact: bool,
    classid: Option<(i32, &str, u32)>,
) -> Result<Box<dyn OwnedLink>, Deferred> {
    let link = link.map_err(|err| Deferred::Program(context.to_owned(), Box::new(err)))?;
    if <&FdLink>::try_from(&link).is_ok() {
        return owned(context, Ok(link));
    }
    let program_error = |err: ProgramError| Deferred::Program(context.to_owned(), Box::new(err));
    let priority = link.priority().map_err(program_error)?;
    let handle = u32::from(link.handle().map_err(program_error)?);
    let mut filter = TcFilter {
        link: Some(link),
        ifindex,
        direction,
        priority,
        handle,
        classid: 0,
        created_clsact,
        records: None,
    };
    if let Some((program_fd, name, classid)) = classid {
        let parent = if direction == "egress" {
            netlink::TC_PARENT_EGRESS
        } else {
            netlink::TC_PARENT_INGRESS
        };
        // On failure `filter` is dropped, which removes the filter aya made: nothing half-made is left.
        netlink::tc_filter_set_classid(
            ifindex, parent, priority, handle, program_fd, name, classid,
        )
        .map_err(|err| {
            Deferred::Program(
                format!("{context}: setting classid {classid:#x}"),
                Box::new(ProgramError::from(err)),
            )
        })?;
        filter.classid = classid;
    }
    Ok(Box::new(filter))
}

/// Whether a detach failed only because the attachment is gone already (its interface removed, say).
fn already_gone(error: &ProgramError) -> bool {
    matches!(errors::errno_of(error), Some(libc::ENOENT | libc::ENODEV))
}

/// Removes pyaya's record files of a detached netlink attachment; and the interface's `clsact` qdisc when pyaya
/// added it (this attach did, or its record says so) and no filter is left on it (then its record goes too).
fn forget(records: Option<Records>, clsact_of: Option<(u32, bool)>) {
    let (record, clsact_record) = match records {
        Some(Records { record, clsact }) => (Some(record), clsact),
        None => (None, None),
    };
    if let Some(record) = record {
        let _ignored = std::fs::remove_file(record);
    }
    let Some((ifindex, created)) = clsact_of else {
        return;
    };
    let recorded = clsact_record.as_ref().is_some_and(|path| path.exists());
    if !created && !recorded {
        return;
    }
    let unused = match netlink::clsact_remove_if_unused(ifindex) {
        Ok(netlink::Clsact::Removed | netlink::Clsact::Absent) => true,
        Ok(netlink::Clsact::InUse) | Err(_) => false,
    };
    if unused {
        if let Some(path) = clsact_record {
            let _ignored = std::fs::remove_file(path);
        }
    }
}

/// A netlink TC filter pyaya attached. It stays on the interface if the process is killed, so pyaya records it
/// (`keep_records`) and removes the record once the filter is gone.
struct TcFilter {
    link: Option<SchedClassifierLink>,
    ifindex: u32,
    direction: &'static str,
    priority: u16,
    handle: u32,
    classid: u32,
    created_clsact: bool,
    records: Option<Records>,
}

impl TcFilter {
    fn detach_now(&mut self) -> Result<(), ProgramError> {
        let Some(link) = self.link.take() else {
            return Ok(());
        };
        let result = aya::programs::Link::detach(link);
        if result.as_ref().map_or_else(already_gone, |()| true) {
            forget(
                self.records.take(),
                Some((self.ifindex, self.created_clsact)),
            );
        }
        result
    }
}

impl Drop for TcFilter {
    fn drop(&mut self) {
        let _ignored: Result<(), ProgramError> = self.detach_now();
    }
}

impl OwnedLink for TcFilter {
    fn detach(mut self: Box<Self>) -> Result<(), ProgramError> {
        self.detach_now()
    }

    fn into_fd_link(self: Box<Self>) -> Result<FdLink, String> {
        Err(self.never_pinnable().unwrap_or_default())
    }

    fn never_pinnable(&self) -> Option<String> {
        Some("a netlink TC filter is not a bpf_link, so it cannot be pinned (tcx links can: kernel 6.6+, \
             priority 0)"
            .into())
    }

    fn netlink(&self) -> Option<NetlinkAttachment> {
        Some(NetlinkAttachment::Tc {
            ifindex: self.ifindex,
            direction: self.direction,
            priority: self.priority,
            handle: self.handle,
            classid: self.classid,
            created_clsact: self.created_clsact,
        })
    }

    fn keep_records(&mut self, records: Records) -> bool {
        self.records = Some(records);
        true
    }
}

/// An XDP program set through netlink (aya's fallback where the kernel refuses an XDP bpf_link: before 5.9). It
/// stays on the interface if the process is killed, so pyaya records it like a netlink TC filter.
struct XdpNetlink {
    link: Option<XdpLink>,
    ifindex: u32,
    mode: u32,
    records: Option<Records>,
}

impl XdpNetlink {
    fn detach_now(&mut self) -> Result<(), ProgramError> {
        let Some(link) = self.link.take() else {
            return Ok(());
        };
        let result = aya::programs::Link::detach(link);
        if result.as_ref().map_or_else(already_gone, |()| true) {
            forget(self.records.take(), None);
        }
        result
    }
}

impl Drop for XdpNetlink {
    fn drop(&mut self) {
        let _ignored: Result<(), ProgramError> = self.detach_now();
    }
}

impl OwnedLink for XdpNetlink {
    fn detach(mut self: Box<Self>) -> Result<(), ProgramError> {
        self.detach_now()
    }

    fn into_fd_link(self: Box<Self>) -> Result<FdLink, String> {
        Err(self.never_pinnable().unwrap_or_default())
    }

    fn never_pinnable(&self) -> Option<String> {
        Some("this XDP program was attached through netlink (no XDP bpf_link on this kernel), so it cannot be \
             pinned"
            .into())
    }

    fn netlink(&self) -> Option<NetlinkAttachment> {
        Some(NetlinkAttachment::Xdp {
            ifindex: self.ifindex,
            mode: self.mode,
        })
    }

    fn keep_records(&mut self, records: Records) -> bool {
        self.records = Some(records);
        true
    }
}

const fn xdp_mode_flag(mode: XdpMode) -> u32 {
    match mode {
        XdpMode::Skb => netlink::XDP_FLAGS_SKB_MODE,
        XdpMode::Driver => netlink::XDP_FLAGS_DRV_MODE,
        XdpMode::Hardware => netlink::XDP_FLAGS_HW_MODE,
        XdpMode::Default => 0,
    }
}

/// Whether the kernel holds an XDP bpf_link of program `program_id`: aya makes one where it can and silently falls
/// back to netlink (on EINVAL) where it cannot, and its link does not say which it did.
fn xdp_link_exists(program_id: u32) -> bool {
    let mut found = false;
    for info in aya::programs::loaded_links() {
        match info {
            Ok(info) => {
                if info.program_id() == program_id
                    && matches!(info.link_type(), Ok(aya::programs::links::LinkType::Xdp))
                {
                    found = true;
                    break;
                }
            }
            // Links freed while listing are skipped; a kernel that cannot list links (before 5.8) has no XDP
            // links either.
            Err(err) if errors::errno_of(&err) == Some(libc::ENOENT) => {}
            Err(_) => {
                return KernelVersion::current()
                    .is_ok_and(|version| version >= KernelVersion::new(5, 9, 0))
            }
        }
    }
    found
}

/// aya's order of a tcx attachment from `(place, program id)` (see `attach_sched_classifier`).
fn link_order(place: &str, program_id: u32) -> PyResult<LinkOrder> {
    match place {
        "first" => Ok(LinkOrder::first()),
        "last" => Ok(LinkOrder::last()),
        // SAFETY (both): aya calls `ProgramId::new` unsafe because it does not check the id; the kernel does, and
        // refuses an id that is not in the chain (ENOENT), which becomes a ProgramError.
        "before" => Ok(LinkOrder::before_program_id(unsafe {
            ProgramId::new(program_id)
        })),
        "after" => Ok(LinkOrder::after_program_id(unsafe {
            ProgramId::new(program_id)
        })),
        other => Err(crate::errors::new_err(
            Kind::InvalidArgument,
            format!("order must be \"first\", \"last\", \"before\" or \"after\", not {other:?}"),
        )),
    }
}

/// A tcx attachment (a bpf_link), which remembers its program's id: another attachment can be ordered before or
/// after it (a program is at most once in one tcx chain, so its id names its place there).
struct TcxLink {
    link: SchedClassifierLink,
    program_id: u32,
}

impl OwnedLink for TcxLink {
    fn detach(self: Box<Self>) -> Result<(), ProgramError> {
        aya::programs::Link::detach(self.link)
    }

    fn into_fd_link(self: Box<Self>) -> Result<FdLink, String> {
        FdLink::try_from(self.link).map_err(crate::links::not_a_bpf_link)
    }

    fn program_id(&self) -> Option<u32> {
        Some(self.program_id)
    }
}

/// `(revision, [(program id, name), ...])` of the tcx chain of `interface` in `direction`, in the order its
/// programs run (`BPF_PROG_QUERY`; kernel 6.6+).
#[pyaya_guard::guard(Program)]
#[pyfunction]
pub fn tcx_programs(
    py: Python<'_>,
    interface: Interface,
    direction: &str,
) -> PyResult<(u64, Vec<(u32, String)>)> {
    let attach_type = tc_attach_type(direction)?;
    let (name, _) = interface.resolve()?;
    let context = format!("querying the tcx {direction} chain of {name}");
    py.detach(|| {
        let (revision, programs) = aya::programs::SchedClassifier::query_tcx(&name, attach_type)
            .map_err(|err| Deferred::Program(context, Box::new(err)))?;
        let programs = programs
            .iter()
            .map(|info| {
                let name = info.name_as_str().unwrap_or_default().to_owned();
                (info.id(), name)
            })
            .collect();
        Ok::<_, Deferred>((revision, programs))
    })
    .map_err(PyErr::from)
}

/// Whether the error is the kernel saying the clsact qdisc is already there.
fn already_exists(error: &TcError) -> bool {
    match error {
        TcError::NetlinkError(err) => err.raw_os_error() == Some(libc::EEXIST),
        TcError::AlreadyAttached => true,
        _ => false,
    }
}

/// Whether a tcx attach failed because this kernel has no tcx hook (so netlink is the way).
fn tcx_unavailable(error: &ProgramError) -> bool {
    match error {
        ProgramError::SyscallError(err) => matches!(
            err.io_error.raw_os_error(),
            Some(libc::EINVAL | libc::EOPNOTSUPP)
        ),
        _ => false,
    }
}

#[pyaya_guard::guard(Program)]
#[pymethods]
impl Program {
    /// Attaches an Xdp program to `interface` (name or index) in `mode` ("skb", "drv", "hw" or None).
    #[pyo3(signature = (interface, mode = None))]
    fn attach_xdp(
        &self,
        py: Python<'_>,
        interface: Interface,
        mode: Option<&str>,
    ) -> PyResult<Link> {
        let mode = xdp_mode(mode)?;
        let (name, index) = interface.resolve()?;
        let context = format!("attaching {:?} to XDP of {name}", self.name_str());
        self.attach_with(py, |program| match program {
            AyaProgram::Xdp(p) => {
                let program_error =
                    |err: ProgramError| Deferred::Program(context.clone(), Box::new(err));
                let program_id = p.info().map_err(program_error)?.id();
                let id = p.attach_to_if_index(index, mode).map_err(program_error)?;
                let link = p.take_link(id).map_err(program_error)?;
                if xdp_link_exists(program_id) {
                    return owned(&context, Ok(link));
                }
                Ok(Box::new(XdpNetlink {
                    link: Some(link),
                    ifindex: index,
                    mode: xdp_mode_flag(mode),
                    records: None,
                }) as Box<dyn OwnedLink>)
            }
            other => Err(wrong_kind(self.name_str(), program_kind(other), "Xdp")),
        })
    }

    /// Attaches a SchedClassifier program to `interface` in `direction`: through tcx where the kernel has it
    /// (6.6+) and `priority` is 0, otherwise through netlink on a clsact qdisc, added if missing.
    ///
    /// `order` places a tcx attachment in the interface's chain: `("first" | "last", 0)`, or
    /// `("before" | "after", program id)`; None appends it. `handle` is the netlink filter's handle (0: the
    /// kernel picks one); `classid` (not 0) sets the filter's `TCA_BPF_CLASSID`, which makes it a netlink filter.
    #[pyo3(signature = (interface, direction = "ingress", priority = 0, handle = 0, order = None, classid = 0))]
    #[allow(clippy::too_many_arguments, reason = "the Python signature")]
    fn attach_sched_classifier(
        &self,
        py: Python<'_>,
        interface: Interface,
        direction: &str,
        priority: u16,
        handle: u32,
        order: Option<(String, u32)>,
        classid: u32,
    ) -> PyResult<Link> {
        let attach_type = tc_attach_type(direction)?;
        let link_order = order
            .as_ref()
            .map(|(place, id)| link_order(place, *id))
            .transpose()?;
        if link_order.is_some() && (priority != 0 || handle != 0 || classid != 0) {
            return Err(crate::errors::new_err(
                Kind::InvalidArgument,
                "before=/after=/first=/last= order tcx attachments; priority=, handle= and classid= are for \
                 netlink filters: give one kind or the other",
            ));
        }
        let direction: &'static str = match attach_type {
            TcAttachType::Egress => "egress",
            _ => "ingress",
        };
        let (name, ifindex) = interface.resolve()?;
        let context = format!(
            "attaching {:?} to TC {direction} of {name}",
            self.name_str()
        );
        let tcx_kernel =
            KernelVersion::current().is_ok_and(|version| version >= KernelVersion::new(6, 6, 0));
        self.attach_with(py, |program| match program {
            AyaProgram::SchedClassifier(p) => {
                let ordered = link_order.is_some();
                if (tcx_kernel || ordered) && priority == 0 && handle == 0 && classid == 0 {
                    let program_id = p
                        .info()
                        .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?
                        .id();
                    match p.attach_with_options(
                        &name,
                        attach_type,
                        TcAttachOptions::TcxOrder(link_order.unwrap_or_default()),
                    ) {
                        Ok(id) => {
                            let link = p
                                .take_link(id)
                                .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?;
                            return Ok(Box::new(TcxLink { link, program_id }) as Box<dyn OwnedLink>);
                        }
                        Err(err) if tcx_unavailable(&err) && !ordered => {}
                        Err(err) if tcx_unavailable(&err) => {
                            return Err(Deferred::Plain(
                                Kind::Unsupported,
                                format!(
                                    "{context}: ordering (before=/after=/first=/last=) needs tcx (kernel \
                                     6.6+), which this kernel refused: {err}"
                                ),
                            ))
                        }
                        Err(err) => return Err(Deferred::Program(context, Box::new(err))),
                    }
                }
                let created_clsact = match tc::qdisc_add_clsact(&name) {
                    Ok(()) => true,
                    Err(err) if already_exists(&err) => false,
                    Err(err) => {
                        return Err(Deferred::Program(
                            format!("{context}: adding the clsact qdisc"),
                            Box::new(ProgramError::from(err)),
                        ))
                    }
                };
                let options = NlOptions {
                    priority,
                    handle: tc::TcHandle::from(handle),
                    ..NlOptions::default()
                };
                let attached =
                    p.attach_with_options(&name, attach_type, TcAttachOptions::Netlink(options));
                let id = match attached {
                    Ok(id) => id,
                    Err(err) => {
                        // Nothing half-made is left: a qdisc this call added goes again.
                        if created_clsact {
                            let _ignored = netlink::clsact_remove_if_unused(ifindex);
                        }
                        return Err(Deferred::Program(context.clone(), Box::new(err)));
                    }
                };
                let program_fd = p
                    .fd()
                    .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?
                    .as_fd()
                    .as_raw_fd();
                tc_link(
                    &context,
                    p.take_link(id),
                    ifindex,
                    direction,
                    created_clsact,
                    (classid != 0).then_some((program_fd, self.name_str(), classid)),
                )
            }
            other => Err(wrong_kind(
                self.name_str(),
                program_kind(other),
                "SchedClassifier",
            )),
        })
    }

    /// Attaches a SocketFilter program to the socket whose fd is `fd` (borrowed for this call only), or an
    /// SkReuseport program to the `SO_REUSEPORT` group of that socket.
    fn attach_socket_filter(&self, py: Python<'_>, fd: RawFd) -> PyResult<Link> {
        if fd < 0 {
            return Err(crate::errors::new_err(
                Kind::InvalidArgument,
                "the socket is closed (fileno() is -1): pass an open socket",
            ));
        }
        let context = format!("attaching {:?} to socket fd {fd}", self.name_str());
        self.attach_with(py, |program| {
            // SAFETY: the caller's socket object keeps `fd` open for the duration of this call, which is the only
            // time it is borrowed.
            let socket = unsafe { BorrowedFd::borrow_raw(fd) };
            let attachment = |reuseport: bool, detach: SocketDetach| {
                SocketAttachment::new(socket, reuseport, detach)
                    .map_err(|err| Deferred::Plain(Kind::Program, format!("{context}: {err}")))
            };
            let program_error =
                |err: ProgramError| Deferred::Program(context.clone(), Box::new(err));
            let attached = match program {
                AyaProgram::SocketFilter(p) => {
                    let attached = attachment(false, |s| SocketFilter::detach(s))?;
                    p.attach(socket).map_err(program_error)?;
                    attached.attached()
                }
                AyaProgram::SkReuseport(p) => {
                    let attached = attachment(true, |s| SkReuseport::detach(s))?;
                    p.attach(socket).map_err(program_error)?;
                    attached.attached()
                }
                other => {
                    return Err(wrong_kind(
                        self.name_str(),
                        program_kind(other),
                        "SocketFilter",
                    ))
                }
            };
            Ok(Box::new(attached) as Box<dyn OwnedLink>)
        })
    }

    /// Sets a SocketFilter program as the selector of the `SO_REUSEPORT` group of the socket whose fd is `fd`
    /// (`SO_ATTACH_REUSEPORT_EBPF`): its return value is the index of the group's socket that gets the packet.
    /// Like an SkReuseport program, it stays with the group until detached.
    fn attach_reuseport_filter(&self, py: Python<'_>, fd: RawFd) -> PyResult<Link> {
        if fd < 0 {
            return Err(crate::errors::new_err(
                Kind::InvalidArgument,
                "the socket is closed (fileno() is -1): pass an open socket",
            ));
        }
        let context = format!(
            "attaching {:?} as the reuseport selector of socket fd {fd}",
            self.name_str()
        );
        self.attach_with(py, |program| {
            // SAFETY: the caller's socket object keeps `fd` open for the duration of this call, which is the only
            // time it is borrowed.
            let socket = unsafe { BorrowedFd::borrow_raw(fd) };
            let AyaProgram::SocketFilter(p) = program else {
                return Err(wrong_kind(
                    self.name_str(),
                    program_kind(program),
                    "SocketFilter",
                ));
            };
            let program_fd = p
                .fd()
                .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?
                .as_fd()
                .as_raw_fd();
            let attached = SocketAttachment::new(socket, true, |s| SkReuseport::detach(s))
                .map_err(|err| Deferred::Plain(Kind::Program, format!("{context}: {err}")))?;
            // SAFETY: `program_fd` is a valid c_int for the length given, and the socket fd is open (above).
            let result = unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_ATTACH_REUSEPORT_EBPF,
                    std::ptr::from_ref(&program_fd).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if result != 0 {
                let err = std::io::Error::last_os_error();
                let kind = match err.raw_os_error() {
                    Some(libc::EPERM | libc::EACCES) => Kind::PermissionDenied,
                    _ => Kind::Program,
                };
                return Err(Deferred::Plain(
                    kind,
                    format!(
                        "{context}: setsockopt(SO_ATTACH_REUSEPORT_EBPF): {err} (the socket must be bound, with \
                         SO_REUSEPORT set before bind)"
                    ),
                ));
            }
            Ok(Box::new(attached.attached()) as Box<dyn OwnedLink>)
        })
    }

    /// Attaches a cgroup program (CgroupSkb, CgroupSock, CgroupSockAddr, CgroupSockopt, CgroupSysctl,
    /// CgroupDevice, SockOps) to the cgroup v2 directory `cgroup`. `direction` is for CgroupSkb only: "ingress",
    /// "egress", or None for the direction of the program's ELF section.
    #[pyo3(signature = (cgroup, direction = None))]
    fn attach_cgroup(
        &self,
        py: Python<'_>,
        cgroup: PathBuf,
        direction: Option<&str>,
    ) -> PyResult<Link> {
        let skb_direction = match direction {
            None => None,
            Some("ingress") => Some(CgroupSkbAttachType::Ingress),
            Some("egress") => Some(CgroupSkbAttachType::Egress),
            Some(other) => {
                return Err(crate::errors::new_err(
                    Kind::InvalidArgument,
                    format!("direction must be \"ingress\", \"egress\" or None, not {other:?}"),
                ))
            }
        };
        let context = format!(
            "attaching {:?} to cgroup {}",
            self.name_str(),
            cgroup.display()
        );
        let file = py.detach(|| open_cgroup(&cgroup))?;
        // Cgroup bpf_links take no flags: the kernel always lets them share the hook with other programs.
        let mode = CgroupAttachMode::Single;
        let program_error = |err: ProgramError| Deferred::Program(context.clone(), Box::new(err));
        self.attach_with(py, |program| match program {
            AyaProgram::CgroupSkb(p) => {
                let attach_type = skb_direction
                    .or(*p.expected_attach_type())
                    .ok_or_else(|| {
                        Deferred::Plain(
                            Kind::Program,
                            format!(
                                "{context}: say direction=\"ingress\" or \"egress\"; the program's section \
                                 (cgroup/skb) does not"
                            ),
                        )
                    })?;
                let id = p
                    .attach(&file, attach_type, mode)
                    .map_err(program_error)?;
                owned(&context, p.take_link(id))
            }
            _ if direction.is_some() => Err(Deferred::Plain(
                Kind::Program,
                format!(
                    "{context}: only CgroupSkb programs take a direction; this is a {}",
                    program_kind(program)
                ),
            )),
            AyaProgram::CgroupSock(p) => {
                let id = p.attach(&file, mode).map_err(program_error)?;
                owned(&context, p.take_link(id))
            }
            AyaProgram::CgroupSockAddr(p) => {
                let id = p.attach(&file, mode).map_err(program_error)?;
                owned(&context, p.take_link(id))
            }
            AyaProgram::SockOps(p) => {
                let id = p.attach(&file, mode).map_err(program_error)?;
                owned(&context, p.take_link(id))
            }
            AyaProgram::CgroupSockopt(p) => {
                let id = p.attach(&file, mode).map_err(program_error)?;
                let link = p.take_link(id).map_err(program_error)?;
                Ok(Box::new(LegacyLink(link)) as Box<dyn OwnedLink>)
            }
            AyaProgram::CgroupSysctl(p) => {
                let id = p.attach(&file, mode).map_err(program_error)?;
                let link = p.take_link(id).map_err(program_error)?;
                Ok(Box::new(LegacyLink(link)) as Box<dyn OwnedLink>)
            }
            AyaProgram::CgroupDevice(p) => {
                let id = p.attach(&file, mode).map_err(program_error)?;
                let link = p.take_link(id).map_err(program_error)?;
                Ok(Box::new(LegacyLink(link)) as Box<dyn OwnedLink>)
            }
            other => Err(wrong_kind(
                self.name_str(),
                program_kind(other),
                "cgroup program (CgroupSkb, CgroupSock, CgroupSockAddr, CgroupSockopt, CgroupSysctl, \
                 CgroupDevice or SockOps)",
            )),
        })
    }

    /// Attaches an SkMsg or SkSkb program to a SockMap or SockHash `map`.
    fn attach_sock_map(&self, py: Python<'_>, map: &Bound<'_, Map>) -> PyResult<Link> {
        let map_name: String = map.getattr("name")?.extract()?;
        let map = map.get();
        let context = format!("attaching {:?} to socket map {map_name:?}", self.name_str());
        let map_fd = py.detach(|| sock_map_fd(map))?;
        self.attach_with(py, |program| match program {
            AyaProgram::SkMsg(p) => {
                let id = p
                    .attach(&map_fd)
                    .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?;
                let link = p
                    .take_link(id)
                    .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?;
                Ok(Box::new(LegacyLink(link)) as Box<dyn OwnedLink>)
            }
            AyaProgram::SkSkb(p) => {
                let id = p
                    .attach(&map_fd)
                    .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?;
                let link = p
                    .take_link(id)
                    .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?;
                Ok(Box::new(LegacyLink(link)) as Box<dyn OwnedLink>)
            }
            other => Err(wrong_kind(
                self.name_str(),
                program_kind(other),
                "SkMsg or SkSkb",
            )),
        })
    }

    /// Attaches an SkLookup or FlowDissector program to the network namespace file `netns` (e.g.
    /// /var/run/netns/NAME or /proc/self/ns/net).
    fn attach_netns(&self, py: Python<'_>, netns: PathBuf) -> PyResult<Link> {
        let context = format!(
            "attaching {:?} to network namespace {}",
            self.name_str(),
            netns.display()
        );
        let file = py.detach(|| open_netns(&netns))?;
        self.attach_with(py, |program| match program {
            AyaProgram::SkLookup(p) => {
                let id = p
                    .attach(&file)
                    .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?;
                owned(&context, p.take_link(id))
            }
            AyaProgram::FlowDissector(p) => {
                let id = p
                    .attach(&file)
                    .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?;
                owned(&context, p.take_link(id))
            }
            other => Err(wrong_kind(
                self.name_str(),
                program_kind(other),
                "SkLookup or FlowDissector",
            )),
        })
    }
}
