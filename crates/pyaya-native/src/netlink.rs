//! The rtnetlink requests aya 0.14 keeps private or lacks, for attachments that outlive their process: a TC
//! hook's filters with their program ids, the `clsact` qdisc (present? delete), an interface's XDP programs and
//! their removal; each can run in another network namespace (on a thread that joins it).
//!
//! Messages are built and parsed as plain bytes (native byte order, as netlink is), so the only unsafe code is
//! the socket calls themselves.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::path::{Path, PathBuf};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::from_io;

// linux/rtnetlink.h, linux/netlink.h
const NETLINK_ROUTE: libc::c_int = 0;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const RTM_NEWQDISC: u16 = 36;
const RTM_DELQDISC: u16 = 37;
const RTM_GETQDISC: u16 = 38;
const RTM_NEWTFILTER: u16 = 44;
const RTM_DELTFILTER: u16 = 45;
const RTM_GETTFILTER: u16 = 46;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
const HEADER_LEN: usize = 16;

// linux/pkt_sched.h, linux/pkt_cls.h
const TC_H_CLSACT: u32 = 0xffff_fff1;
const CLSACT_HANDLE: u32 = 0xffff_0000;
pub const TC_PARENT_INGRESS: u32 = 0xffff_fff2;
pub const TC_PARENT_EGRESS: u32 = 0xffff_fff3;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_BPF_CLASSID: u16 = 3;
const TCA_BPF_FD: u16 = 6;
const TCA_BPF_NAME: u16 = 7;
const TCA_BPF_FLAGS: u16 = 8;
const TCA_BPF_FLAG_ACT_DIRECT: u32 = 1;
const TCA_BPF_ID: u16 = 11;
const ETH_P_ALL: u16 = 0x0003;

// linux/if_link.h
const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
const IFLA_XDP_HW_PROG_ID: u16 = 7;
const IFLA_XDP_EXPECTED_FD: u16 = 8;
const XDP_ATTACHED_DRV: u8 = 1;
const XDP_ATTACHED_SKB: u8 = 2;
const XDP_ATTACHED_HW: u8 = 3;
const XDP_ATTACHED_MULTI: u8 = 4;
pub const XDP_FLAGS_SKB_MODE: u32 = 2;
pub const XDP_FLAGS_DRV_MODE: u32 = 4;
pub const XDP_FLAGS_HW_MODE: u32 = 8;
const XDP_FLAGS_REPLACE: u32 = 16;

/// One filter of a TC hook. `program_id` is set for `bpf` filters; a priority's own entry (handle 0, no options)
/// is listed too, since it keeps the hook in use.
pub struct Filter {
    pub priority: u16,
    pub handle: u32,
    pub kind: String,
    pub name: String,
    pub program_id: Option<u32>,
}

/// A netlink request being built: header, fixed part, attributes.
struct Message(Vec<u8>);

impl Message {
    fn new(kind: u16, flags: u16, fixed: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(256);
        bytes.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `finish`
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        bytes.extend_from_slice(&1u32.to_ne_bytes()); // sequence number
        bytes.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        bytes.extend_from_slice(fixed);
        Self(bytes)
    }

    fn attribute(&mut self, kind: u16, data: &[u8]) {
        let length = u16::try_from(4 + data.len()).unwrap_or(u16::MAX);
        self.0.extend_from_slice(&length.to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(data);
        self.pad();
    }

    fn nested(&mut self, kind: u16, fill: impl FnOnce(&mut Self)) {
        let start = self.0.len();
        self.attribute(kind | NLA_F_NESTED, &[]);
        fill(self);
        let length = u16::try_from(self.0.len() - start).unwrap_or(u16::MAX);
        self.0[start..start + 2].copy_from_slice(&length.to_ne_bytes());
    }

    fn pad(&mut self) {
        while self.0.len() % 4 != 0 {
            self.0.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        let length = u32::try_from(self.0.len()).unwrap_or(u32::MAX);
        self.0[..4].copy_from_slice(&length.to_ne_bytes());
        self.0
    }
}

/// `struct tcmsg`: family, padding, ifindex, handle, parent, info.
fn tcmsg(ifindex: u32, handle: u32, parent: u32, info: u32) -> [u8; 20] {
    let mut bytes = [0u8; 20];
    bytes[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    bytes[8..12].copy_from_slice(&handle.to_ne_bytes());
    bytes[12..16].copy_from_slice(&parent.to_ne_bytes());
    bytes[16..20].copy_from_slice(&info.to_ne_bytes());
    bytes
}

/// `struct ifinfomsg` for one interface.
fn ifinfomsg(ifindex: u32) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    bytes
}

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    let field = bytes.get(offset..offset + 4)?;
    Some(u32::from_ne_bytes(field.try_into().ok()?))
}

fn u16_at(bytes: &[u8], offset: usize) -> Option<u16> {
    let field = bytes.get(offset..offset + 2)?;
    Some(u16::from_ne_bytes(field.try_into().ok()?))
}

/// The attributes in `bytes`, as `(type, payload)`; stops at the first malformed one.
fn attributes(bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let length = usize::from(u16_at(rest, 0)?);
        let kind = u16_at(rest, 2)? & NLA_TYPE_MASK;
        let payload = rest.get(4..length)?;
        let padded = (length + 3) & !3;
        rest = rest.get(padded..).unwrap_or(&[]);
        Some((kind, payload))
    })
}

fn string(payload: &[u8]) -> String {
    let end = payload
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

/// A `NETLINK_ROUTE` socket.
struct Socket(OwnedFd);

impl Socket {
    fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2); the result is checked before it is wrapped.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by socket(2) and is owned by nothing else.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Sends `request` and reads the answer to its end (`NLMSG_DONE`, or the acknowledgement): the payload of
    /// every message of type `reply`, or the kernel's error.
    fn exchange(&self, request: &[u8], reply: u16) -> io::Result<Vec<Vec<u8>>> {
        // SAFETY: `request` is a valid buffer of that length for the whole call.
        let sent = unsafe {
            libc::send(
                self.0.as_raw_fd(),
                request.as_ptr().cast(),
                request.len(),
                0,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut payloads = Vec::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: `buffer` is valid for writes of its length for the whole call.
            let received = unsafe {
                libc::recv(
                    self.0.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    0,
                )
            };
            let received = usize::try_from(received).map_err(|_| io::Error::last_os_error())?;
            if received == 0 {
                return Ok(payloads);
            }
            let mut rest = &buffer[..received];
            while rest.len() >= HEADER_LEN {
                let length = u32_at(rest, 0).map_or(0, |l| l as usize);
                let kind = u16_at(rest, 4).unwrap_or(0);
                if length < HEADER_LEN || length > rest.len() {
                    return Err(io::Error::other("malformed netlink message"));
                }
                let payload = &rest[HEADER_LEN..length];
                match kind {
                    NLMSG_DONE => return Ok(payloads),
                    NLMSG_ERROR => {
                        let errno = u32_at(payload, 0).map_or(0, |e| e as i32);
                        if errno == 0 {
                            return Ok(payloads); // the acknowledgement
                        }
                        return Err(io::Error::from_raw_os_error(-errno));
                    }
                    kind if kind == reply => payloads.push(payload.to_vec()),
                    _ => {}
                }
                rest = rest.get((length + 3) & !3..).unwrap_or(&[]);
            }
        }
    }
}

/// The filters on `parent` (`TC_PARENT_INGRESS` or `TC_PARENT_EGRESS`) of interface `ifindex`.
pub fn tc_filters(ifindex: u32, parent: u32) -> io::Result<Vec<Filter>> {
    let request = Message::new(RTM_GETTFILTER, NLM_F_DUMP, &tcmsg(ifindex, 0, parent, 0));
    let replies = Socket::open()?.exchange(&request.finish(), RTM_NEWTFILTER)?;
    let mut filters = Vec::new();
    for reply in replies {
        let (Some(handle), Some(info)) = (u32_at(&reply, 8), u32_at(&reply, 16)) else {
            continue;
        };
        let mut filter = Filter {
            priority: (info >> 16) as u16,
            handle,
            kind: String::new(),
            name: String::new(),
            program_id: None,
        };
        for (kind, payload) in attributes(reply.get(20..).unwrap_or(&[])) {
            match kind {
                TCA_KIND => filter.kind = string(payload),
                TCA_OPTIONS => {
                    for (option, value) in attributes(payload) {
                        match option {
                            TCA_BPF_ID => filter.program_id = u32_at(value, 0),
                            TCA_BPF_NAME => filter.name = string(value),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        filters.push(filter);
    }
    Ok(filters)
}

/// Sets the class id (`TCA_BPF_CLASSID`) of the existing direct-action `bpf` filter `priority`/`handle` on
/// `parent` of `ifindex`, which runs the program of `program_fd` as `name`. aya 0.14's netlink options have no
/// class id, so the filter aya made is changed in place: `RTM_NEWTFILTER` without `NLM_F_CREATE`/`NLM_F_EXCL`
/// on an existing handle is cls_bpf's change, which keeps the filter (priority, handle, position) as it is.
pub fn tc_filter_set_classid(
    ifindex: u32,
    parent: u32,
    priority: u16,
    handle: u32,
    program_fd: i32,
    name: &str,
    classid: u32,
) -> io::Result<()> {
    let info = (u32::from(priority) << 16) | u32::from(ETH_P_ALL.to_be());
    let mut request = Message::new(
        RTM_NEWTFILTER,
        NLM_F_ACK,
        &tcmsg(ifindex, handle, parent, info),
    );
    request.attribute(TCA_KIND, b"bpf\0");
    let mut name = name.as_bytes().to_vec();
    name.push(0);
    request.nested(TCA_OPTIONS, |options| {
        options.attribute(TCA_BPF_FD, &program_fd.to_ne_bytes());
        options.attribute(TCA_BPF_NAME, &name);
        options.attribute(TCA_BPF_FLAGS, &TCA_BPF_FLAG_ACT_DIRECT.to_ne_bytes());
        options.attribute(TCA_BPF_CLASSID, &classid.to_ne_bytes());
    });
    Socket::open()?.exchange(&request.finish(), RTM_NEWTFILTER)?;
    Ok(())
}

/// Deletes the filter `priority`/`handle` on `parent` of `ifindex`.
pub fn tc_filter_delete(ifindex: u32, parent: u32, priority: u16, handle: u32) -> io::Result<()> {
    let info = (u32::from(priority) << 16) | u32::from(ETH_P_ALL.to_be());
    let request = Message::new(
        RTM_DELTFILTER,
        NLM_F_ACK,
        &tcmsg(ifindex, handle, parent, info),
    );
    Socket::open()?.exchange(&request.finish(), RTM_NEWTFILTER)?;
    Ok(())
}

/// Whether interface `ifindex` has a `clsact` qdisc.
pub fn clsact_present(ifindex: u32) -> io::Result<bool> {
    let request = Message::new(RTM_GETQDISC, NLM_F_DUMP, &tcmsg(ifindex, 0, 0, 0));
    let replies = Socket::open()?.exchange(&request.finish(), RTM_NEWQDISC)?;
    Ok(replies.iter().any(|reply| {
        u32_at(reply, 4) == Some(ifindex)
            && attributes(reply.get(20..).unwrap_or(&[]))
                .any(|(kind, payload)| kind == TCA_KIND && string(payload) == "clsact")
    }))
}

/// What [`clsact_remove_if_unused`] found.
pub enum Clsact {
    Removed,
    Absent,
    /// Filters are left on it (on either side).
    InUse,
}

/// Removes the `clsact` qdisc of `ifindex` if it is there and holds no filter, on either side. (Another process
/// could add a filter between the check and the removal; the window is one netlink round trip.)
pub fn clsact_remove_if_unused(ifindex: u32) -> io::Result<Clsact> {
    if !clsact_present(ifindex)? {
        return Ok(Clsact::Absent);
    }
    for parent in [TC_PARENT_INGRESS, TC_PARENT_EGRESS] {
        if !tc_filters(ifindex, parent)?.is_empty() {
            return Ok(Clsact::InUse);
        }
    }
    let mut request = Message::new(
        RTM_DELQDISC,
        NLM_F_ACK,
        &tcmsg(ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0),
    );
    request.attribute(TCA_KIND, b"clsact\0");
    match Socket::open()?.exchange(&request.finish(), RTM_NEWQDISC) {
        Ok(_) => Ok(Clsact::Removed),
        // Removed by someone else meanwhile.
        Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::EINVAL)) => {
            Ok(Clsact::Absent)
        }
        Err(err) => Err(err),
    }
}

/// The XDP programs of interface `ifindex`, as `(mode flag, program id)`.
pub fn xdp_programs(ifindex: u32) -> io::Result<Vec<(u32, u32)>> {
    let request = Message::new(RTM_GETLINK, NLM_F_ACK, &ifinfomsg(ifindex));
    let replies = Socket::open()?.exchange(&request.finish(), RTM_NEWLINK)?;
    let mut programs = Vec::new();
    for reply in &replies {
        for (kind, payload) in attributes(reply.get(16..).unwrap_or(&[])) {
            if kind != IFLA_XDP {
                continue;
            }
            let mut attached = 0u8;
            let mut single = None;
            for (field, value) in attributes(payload) {
                let id = u32_at(value, 0);
                match field {
                    IFLA_XDP_ATTACHED => attached = value.first().copied().unwrap_or(0),
                    IFLA_XDP_PROG_ID => single = id,
                    IFLA_XDP_SKB_PROG_ID => programs.extend(id.map(|id| (XDP_FLAGS_SKB_MODE, id))),
                    IFLA_XDP_DRV_PROG_ID => programs.extend(id.map(|id| (XDP_FLAGS_DRV_MODE, id))),
                    IFLA_XDP_HW_PROG_ID => programs.extend(id.map(|id| (XDP_FLAGS_HW_MODE, id))),
                    _ => {}
                }
            }
            let mode = match attached {
                XDP_ATTACHED_SKB => Some(XDP_FLAGS_SKB_MODE),
                XDP_ATTACHED_DRV => Some(XDP_FLAGS_DRV_MODE),
                XDP_ATTACHED_HW => Some(XDP_FLAGS_HW_MODE),
                _ => None,
            };
            if attached != XDP_ATTACHED_MULTI {
                if let (Some(mode), Some(id)) = (mode, single) {
                    if !programs.iter().any(|&(m, _)| m == mode) {
                        programs.push((mode, id));
                    }
                }
            }
        }
    }
    Ok(programs)
}

/// Removes the XDP program of `ifindex` in `mode` if it is still the program `expected` (an fd of it):
/// `XDP_FLAGS_REPLACE` makes the kernel compare, so nothing else is ever removed. A bpf_link attachment refuses
/// (EBUSY).
pub fn xdp_detach(ifindex: u32, mode: u32, expected: &OwnedFd) -> io::Result<()> {
    let mut request = Message::new(RTM_SETLINK, NLM_F_ACK, &ifinfomsg(ifindex));
    request.nested(IFLA_XDP, |attrs| {
        attrs.attribute(IFLA_XDP_FD, &(-1i32).to_ne_bytes());
        attrs.attribute(IFLA_XDP_FLAGS, &(mode | XDP_FLAGS_REPLACE).to_ne_bytes());
        attrs.attribute(IFLA_XDP_EXPECTED_FD, &expected.as_raw_fd().to_ne_bytes());
    });
    Socket::open()?.exchange(&request.finish(), RTM_NEWLINK)?;
    Ok(())
}

/// Runs `operation` in the network namespace of the nsfs file `netns` (e.g. `/proc/PID/ns/net`,
/// `/run/netns/NAME`), on a thread of its own that joins it and ends with it; `None` runs it here.
pub fn in_netns<T: Send>(
    netns: Option<&Path>,
    operation: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    let Some(path) = netns else {
        return operation();
    };
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let file = File::open(path)?;
                // SAFETY: setns(2) on an fd this thread holds open; it changes this thread's network namespace
                // only, and the thread ends right after `operation`.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                operation()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the network namespace thread panicked")))
    })
}

// --- the Python face: what `pyaya cleanup` and the guard process call (python/pyaya/attachments.py) ---

fn parent_of(direction: &str) -> PyResult<u32> {
    match direction {
        "ingress" => Ok(TC_PARENT_INGRESS),
        "egress" => Ok(TC_PARENT_EGRESS),
        other => Err(PyValueError::new_err(format!(
            "direction must be \"ingress\" or \"egress\", not {other:?}"
        ))),
    }
}

fn where_(ifindex: u32, netns: Option<&PathBuf>) -> String {
    match netns {
        Some(path) => format!(
            "interface {ifindex} of network namespace {}",
            path.display()
        ),
        None => format!("interface {ifindex}"),
    }
}

/// A filter as Python gets it: `(priority, handle, kind, name, program id or 0)`.
type FilterRow = (u16, u32, String, String, u32);

/// `(priority, handle, kind, name, program id or 0)` of every filter on the `direction` hook of interface
/// `ifindex`, in the network namespace of the nsfs file `netns` (default: this one).
#[pyaya_guard::guard(Program)]
#[pyfunction]
#[pyo3(name = "tc_filters", signature = (ifindex, direction, netns = None))]
pub fn py_tc_filters(
    py: Python<'_>,
    ifindex: u32,
    direction: &str,
    netns: Option<PathBuf>,
) -> PyResult<Vec<FilterRow>> {
    let parent = parent_of(direction)?;
    let filters = py
        .detach(|| in_netns(netns.as_deref(), || tc_filters(ifindex, parent)))
        .map_err(|err| {
            from_io(
                &format!(
                    "listing the TC {direction} filters of {}",
                    where_(ifindex, netns.as_ref())
                ),
                &err,
            )
        })?;
    Ok(filters
        .into_iter()
        .map(|f| {
            (
                f.priority,
                f.handle,
                f.kind,
                f.name,
                f.program_id.unwrap_or(0),
            )
        })
        .collect())
}

/// Deletes the filter `priority`/`handle` on the `direction` hook of `ifindex` if it still runs program
/// `program_id`. Returns whether it did (False: no such filter, or another program's).
#[pyaya_guard::guard(Program)]
#[pyfunction]
#[pyo3(name = "tc_filter_delete", signature = (ifindex, direction, priority, handle, program_id, netns = None))]
pub fn py_tc_filter_delete(
    py: Python<'_>,
    ifindex: u32,
    direction: &str,
    priority: u16,
    handle: u32,
    program_id: u32,
    netns: Option<PathBuf>,
) -> PyResult<bool> {
    let parent = parent_of(direction)?;
    py.detach(|| {
        in_netns(netns.as_deref(), || {
            let ours = tc_filters(ifindex, parent)?.iter().any(|f| {
                f.priority == priority && f.handle == handle && f.program_id == Some(program_id)
            });
            if !ours {
                return Ok(false);
            }
            match tc_filter_delete(ifindex, parent, priority, handle) {
                Ok(()) => Ok(true),
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Ok(false),
                Err(err) => Err(err),
            }
        })
    })
    .map_err(|err| {
        from_io(
            &format!(
                "deleting TC {direction} filter {priority}:{handle:#x} of {}",
                where_(ifindex, netns.as_ref())
            ),
            &err,
        )
    })
}

/// Whether interface `ifindex` has a `clsact` qdisc.
#[pyaya_guard::guard(Program)]
#[pyfunction]
#[pyo3(name = "clsact_present", signature = (ifindex, netns = None))]
pub fn py_clsact_present(py: Python<'_>, ifindex: u32, netns: Option<PathBuf>) -> PyResult<bool> {
    py.detach(|| in_netns(netns.as_deref(), || clsact_present(ifindex)))
        .map_err(|err| {
            from_io(
                &format!("listing the qdiscs of {}", where_(ifindex, netns.as_ref())),
                &err,
            )
        })
}

/// Removes the `clsact` qdisc of `ifindex` if no filter is left on it: "removed", "absent" or "in use".
#[pyaya_guard::guard(Program)]
#[pyfunction]
#[pyo3(name = "clsact_remove_if_unused", signature = (ifindex, netns = None))]
pub fn py_clsact_remove_if_unused(
    py: Python<'_>,
    ifindex: u32,
    netns: Option<PathBuf>,
) -> PyResult<&'static str> {
    let outcome = py
        .detach(|| in_netns(netns.as_deref(), || clsact_remove_if_unused(ifindex)))
        .map_err(|err| {
            from_io(
                &format!(
                    "removing the clsact qdisc of {}",
                    where_(ifindex, netns.as_ref())
                ),
                &err,
            )
        })?;
    Ok(match outcome {
        Clsact::Removed => "removed",
        Clsact::Absent => "absent",
        Clsact::InUse => "in use",
    })
}

/// `(mode flag, program id)` of every XDP program on interface `ifindex` (`XDP_FLAGS_SKB_MODE` 2, `DRV` 4,
/// `HW` 8).
#[pyaya_guard::guard(Program)]
#[pyfunction]
#[pyo3(name = "xdp_programs", signature = (ifindex, netns = None))]
pub fn py_xdp_programs(
    py: Python<'_>,
    ifindex: u32,
    netns: Option<PathBuf>,
) -> PyResult<Vec<(u32, u32)>> {
    py.detach(|| in_netns(netns.as_deref(), || xdp_programs(ifindex)))
        .map_err(|err| {
            from_io(
                &format!(
                    "reading the XDP programs of {}",
                    where_(ifindex, netns.as_ref())
                ),
                &err,
            )
        })
}

/// Removes the XDP program `program_id` from interface `ifindex` in `mode` (a flag, as `xdp_programs` gives),
/// through netlink and only if it is still that program there. Returns whether it did.
#[pyaya_guard::guard(Program)]
#[pyfunction]
#[pyo3(name = "xdp_detach", signature = (ifindex, mode, program_id, netns = None))]
pub fn py_xdp_detach(
    py: Python<'_>,
    ifindex: u32,
    mode: u32,
    program_id: u32,
    netns: Option<PathBuf>,
) -> PyResult<bool> {
    py.detach(|| {
        let expected = match crate::sys::program_fd_by_id(program_id) {
            Ok(fd) => fd,
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => return Ok(false),
            Err(err) => return Err(err),
        };
        in_netns(netns.as_deref(), || {
            if !xdp_programs(ifindex)?.contains(&(mode, program_id)) {
                return Ok(false);
            }
            match xdp_detach(ifindex, mode, &expected) {
                Ok(()) => Ok(true),
                // Replaced meanwhile (EEXIST: "Active program does not match expected").
                Err(err) if err.raw_os_error() == Some(libc::EEXIST) => Ok(false),
                Err(err) => Err(err),
            }
        })
    })
    .map_err(|err| {
        from_io(
            &format!(
                "removing XDP program {program_id} from {}",
                where_(ifindex, netns.as_ref())
            ),
            &err,
        )
    })
}
