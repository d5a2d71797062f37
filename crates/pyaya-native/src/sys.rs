//! The few raw `bpf()` commands aya keeps private: map commands on a map fd that aya owns (keys and values are byte
//! buffers whose sizes the caller has checked against the map's key and value sizes), pinning, object info, and
//! the program load and links of multi-point probes (`multi_load.rs`, `programs_multi.rs`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd as _, OwnedFd};

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;

/// The `bpf_attr` layout used by the map element commands (the union's anonymous struct for them).
#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value_or_next_key: u64,
    flags: u64,
}

/// `bpf(command, attr)`. `attr` is the `#[repr(C)]` bpf_attr prefix (or array of integers) the command reads,
/// fully initialised; every pointer in it was set by the caller from a buffer of the size the command expects that
/// outlives the call. Returns what the kernel returns: an fd for the commands that make one, else 0.
pub(crate) fn bpf<T>(command: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: per this function's contract, `attr` is an initialised bpf_attr prefix of the size passed and any
    // pointer it carries is valid for the call; the kernel reads (and for some commands writes back) `attr` only.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            std::ptr::from_mut(attr),
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn map_elem_command(command: libc::c_long, attr: &mut MapElemAttr) -> io::Result<()> {
    bpf(command, attr).map(drop)
}

/// Looks `key` up; `value` receives the value. `Ok(false)` when the key is absent.
pub fn lookup(fd: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    let mut attr = MapElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value_or_next_key: value.as_mut_ptr() as u64,
        ..MapElemAttr::default()
    };
    match map_elem_command(BPF_MAP_LOOKUP_ELEM, &mut attr) {
        Ok(()) => Ok(true),
        Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Inserts or replaces `key` (`flags`: BPF_ANY, BPF_NOEXIST, BPF_EXIST).
pub fn update(fd: BorrowedFd<'_>, key: &[u8], value: &[u8], flags: u64) -> io::Result<()> {
    let mut attr = MapElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value_or_next_key: value.as_ptr() as u64,
        flags,
        ..MapElemAttr::default()
    };
    map_elem_command(BPF_MAP_UPDATE_ELEM, &mut attr)
}

/// Deletes `key`. `Ok(false)` when the key was absent.
pub fn delete(fd: BorrowedFd<'_>, key: &[u8]) -> io::Result<bool> {
    let mut attr = MapElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        ..MapElemAttr::default()
    };
    match map_elem_command(BPF_MAP_DELETE_ELEM, &mut attr) {
        Ok(()) => Ok(true),
        Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Writes the key after `key` (the first key when `key` is `None`) into `next`. `Ok(false)` at the end.
pub fn next_key(fd: BorrowedFd<'_>, key: Option<&[u8]>, next: &mut [u8]) -> io::Result<bool> {
    let mut attr = MapElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: key.map_or(0, |key| key.as_ptr() as u64),
        value_or_next_key: next.as_mut_ptr() as u64,
        ..MapElemAttr::default()
    };
    match map_elem_command(BPF_MAP_GET_NEXT_KEY, &mut attr) {
        Ok(()) => Ok(true),
        Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Waits until one of `fds` is readable or `timeout_ms` passes (`-1`: no limit). Returns whether one is ready.
pub fn wait_readable(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> io::Result<bool> {
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `pollfds` is a valid array of `pollfds.len()` entries for the duration of the call.
    let ret = unsafe {
        libc::poll(
            pollfds.as_mut_ptr(),
            pollfds.len() as libc::nfds_t,
            timeout_ms,
        )
    };
    if ret < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(err);
    }
    Ok(ret > 0)
}

const BPF_MAP_LOOKUP_AND_DELETE_ELEM: libc::c_long = 21;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_LOOKUP_AND_DELETE_BATCH: libc::c_long = 25;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// `ENOTSUPP`: the kernel-internal "not supported" errno (524) that leaks to user space from some map commands.
pub const ENOTSUPP: i32 = 524;

/// Whether an errno from a map command means "this map type does not do that" rather than a real failure.
pub fn is_unsupported(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EINVAL | libc::EOPNOTSUPP | ENOTSUPP)
    )
}

/// Queue and stack maps take no key: pop (lookup and delete) the head into `value`. `Ok(false)` when empty.
pub fn lookup_and_delete(
    fd: BorrowedFd<'_>,
    key: Option<&[u8]>,
    value: &mut [u8],
) -> io::Result<bool> {
    let mut attr = MapElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: key.map_or(0, |key| key.as_ptr() as u64),
        value_or_next_key: value.as_mut_ptr() as u64,
        ..MapElemAttr::default()
    };
    match map_elem_command(BPF_MAP_LOOKUP_AND_DELETE_ELEM, &mut attr) {
        Ok(()) => Ok(true),
        Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Lookup without a key (queue/stack peek) or with the value as input (bloom filter membership): the kernel
/// reads or writes `value` depending on the map type. `Ok(false)` on ENOENT.
pub fn lookup_keyless(fd: BorrowedFd<'_>, value: &mut [u8]) -> io::Result<bool> {
    let mut attr = MapElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: 0,
        value_or_next_key: value.as_mut_ptr() as u64,
        ..MapElemAttr::default()
    };
    match map_elem_command(BPF_MAP_LOOKUP_ELEM, &mut attr) {
        Ok(()) => Ok(true),
        Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Push without a key (queue, stack, bloom filter).
pub fn update_keyless(fd: BorrowedFd<'_>, value: &[u8], flags: u64) -> io::Result<()> {
    let mut attr = MapElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: 0,
        value_or_next_key: value.as_ptr() as u64,
        flags,
        ..MapElemAttr::default()
    };
    map_elem_command(BPF_MAP_UPDATE_ELEM, &mut attr)
}

/// The `bpf_attr` layout of `BPF_OBJ_PIN`.
#[repr(C)]
#[derive(Default)]
struct ObjPinAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// Pins the object behind `fd` at `path` in bpffs.
/// `statfs(path).f_type`: the magic number of the filesystem `path` is on.
pub fn filesystem_type(path: &std::path::Path) -> io::Result<i64> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `statfs` is plain data, for which all zero bytes is a valid value.
    let mut stats: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string alive for the call and `stats` a valid out-pointer.
    if unsafe { libc::statfs(path.as_ptr(), &mut stats) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(
        clippy::useless_conversion,
        reason = "f_type is i64 on x86_64 but narrower on other architectures"
    )]
    Ok(i64::from(stats.f_type))
}

pub fn pin_object(fd: BorrowedFd<'_>, path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut attr = ObjPinAttr {
        pathname: path.as_ptr() as u64,
        bpf_fd: fd.as_raw_fd() as u32,
        file_flags: 0,
    };
    bpf(BPF_OBJ_PIN, &mut attr).map(drop)
}

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// The `bpf_attr` of `BPF_OBJ_GET`.
#[repr(C)]
#[derive(Default)]
struct ObjGetAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    _pad: u32,
}

/// The `bpf_attr` of `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C)]
#[derive(Default)]
struct InfoByFdAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// A new fd on the BPF object (program, map or link) pinned at `path` in bpffs.
pub fn object_from_pin(path: &std::path::Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut attr = ObjGetAttr {
        pathname: path.as_ptr() as u64,
        ..ObjGetAttr::default()
    };
    let raw = bpf(BPF_OBJ_GET, &mut attr)?;
    // SAFETY: the kernel just returned this new fd, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw as i32) })
}

const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;

/// The `bpf_attr` of `BPF_PROG_GET_FD_BY_ID`.
#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// A new fd on the loaded program with this id (ENOENT once it is freed).
pub fn program_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdByIdAttr {
        id,
        ..GetFdByIdAttr::default()
    };
    let raw = bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?;
    // SAFETY: the kernel just returned this new fd, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw as i32) })
}

const BPF_MAP_CREATE: libc::c_long = 0;

/// The `bpf_attr` of `BPF_MAP_CREATE`, up to `map_extra` (kernel 5.16; older kernels take the shorter prefix as
/// long as the fields they lack are zero).
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
    map_ifindex: u32,
    btf_fd: u32,
    btf_key_type_id: u32,
    btf_value_type_id: u32,
    btf_vmlinux_value_type_id: u32,
    map_extra: u64,
}

/// Creates a map of kernel type `map_type` with these sizes, flags and name (at most 15 bytes kept); its fd.
pub fn create_map(
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    name: &str,
) -> io::Result<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type,
        key_size,
        value_size,
        max_entries,
        map_flags,
        ..MapCreateAttr::default()
    };
    for (slot, byte) in attr.map_name.iter_mut().zip(name.bytes().take(15)) {
        *slot = byte;
    }
    let raw = bpf(BPF_MAP_CREATE, &mut attr)?;
    // SAFETY: the kernel just returned this new fd, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw as i32) })
}

const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;

/// A new fd on the bpf_link with this id (ENOENT once it is freed).
pub fn link_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdByIdAttr {
        id,
        ..GetFdByIdAttr::default()
    };
    let raw = bpf(BPF_LINK_GET_FD_BY_ID, &mut attr)?;
    // SAFETY: the kernel just returned this new fd, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw as i32) })
}

const BPF_LINK_UPDATE: libc::c_long = 29;
/// `BPF_F_REPLACE`: replace only if the link still runs `old_prog_fd`'s program.
const BPF_F_REPLACE: u32 = 1 << 2;

#[repr(C)]
#[derive(Default)]
struct LinkUpdateAttr {
    link_fd: u32,
    new_prog_fd: u32,
    flags: u32,
    old_prog_fd: u32,
}

/// Makes the bpf_link behind `link` run `program` instead of its current program, atomically (no moment without
/// a program). With `expected`, only if the link still runs that program (EPERM otherwise).
pub fn link_update(
    link: BorrowedFd<'_>,
    program: BorrowedFd<'_>,
    expected: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let mut attr = LinkUpdateAttr {
        link_fd: link.as_raw_fd() as u32,
        new_prog_fd: program.as_raw_fd() as u32,
        flags: if expected.is_some() { BPF_F_REPLACE } else { 0 },
        old_prog_fd: expected.map_or(0, |fd| fd.as_raw_fd() as u32),
    };
    bpf(BPF_LINK_UPDATE, &mut attr).map(drop)
}

/// Fills `info` with what `BPF_OBJ_GET_INFO_BY_FD` says about the object behind `fd`. `info` is the kernel's
/// `bpf_*_info` struct for that kind of object, or a prefix of it: plain integers, zeroed by the caller (the
/// kernel writes at most `size_of::<T>()` bytes).
pub fn object_info<T>(fd: BorrowedFd<'_>, info: &mut T) -> io::Result<()> {
    let mut attr = InfoByFdAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<T>() as u32,
        info: std::ptr::from_mut(info) as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map(drop)
}

/// The `bpf_attr` layout of the `BPF_MAP_*_BATCH` commands.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

fn batch_command(command: libc::c_long, attr: &mut BatchAttr) -> io::Result<()> {
    // The callers set every pointer in `attr` from buffers sized for `count` elements (and batch tokens of
    // `token_len` bytes); the kernel writes `count` back into `attr`.
    bpf(command, attr).map(drop)
}

/// What a batch traversal read: `count` keys of `key_size` bytes and values of `value_len` bytes, back to back.
pub struct BatchRead {
    pub keys: Vec<u8>,
    pub values: Vec<u8>,
    pub count: usize,
}

/// What one step of a batch traversal did.
pub enum BatchStep {
    /// This many entries were read; more may follow.
    Read(usize),
    /// This many entries were read, and the map has no more.
    End(usize),
    /// The chunk is too small for one hash bucket: retry with a larger one.
    TooSmall,
}

/// A `BPF_MAP_LOOKUP[_AND_DELETE]_BATCH` traversal, one chunk per `step`. The batch token is opaque: hash maps use
/// a 4-byte bucket index, generic maps a key, so it gets `max(key_size, 8)` bytes.
pub struct BatchCursor {
    command: libc::c_long,
    in_token: Vec<u8>,
    out_token: Vec<u8>,
    first: bool,
    /// Entries read so far.
    pub total: usize,
}

impl BatchCursor {
    pub fn new(key_size: usize, delete: bool) -> Self {
        let token_len = key_size.max(8);
        Self {
            command: if delete {
                BPF_MAP_LOOKUP_AND_DELETE_BATCH
            } else {
                BPF_MAP_LOOKUP_BATCH
            },
            in_token: vec![0u8; token_len],
            out_token: vec![0u8; token_len],
            first: true,
            total: 0,
        }
    }

    /// Reads up to `chunk` entries into `keys` and `values`, which hold room for `chunk` of each.
    pub fn step(
        &mut self,
        fd: BorrowedFd<'_>,
        keys: &mut [u8],
        values: &mut [u8],
        chunk: usize,
    ) -> io::Result<BatchStep> {
        let mut attr = BatchAttr {
            in_batch: if self.first {
                0
            } else {
                self.in_token.as_ptr() as u64
            },
            out_batch: self.out_token.as_mut_ptr() as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: u32::try_from(chunk).unwrap_or(u32::MAX),
            map_fd: fd.as_raw_fd() as u32,
            elem_flags: 0,
            flags: 0,
        };
        let result = batch_command(self.command, &mut attr);
        // The kernel never reports more than it was given room for; clamp anyway so a bad count cannot make us
        // read past the buffers.
        let filled = (attr.count as usize).min(chunk);
        match result {
            Ok(()) => {
                self.total += filled;
                self.in_token.copy_from_slice(&self.out_token);
                self.first = false;
                Ok(BatchStep::Read(filled))
            }
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {
                self.total += filled;
                Ok(BatchStep::End(filled))
            }
            Err(err) if err.raw_os_error() == Some(libc::ENOSPC) && filled == 0 => {
                Ok(BatchStep::TooSmall)
            }
            Err(err) => {
                if self.total > 0 || !self.first {
                    // Part of the map was already read (and maybe deleted): report that, not "unsupported".
                    return Err(io::Error::new(
                        err.kind(),
                        format!("batch traversal failed after {} entries: {err}", self.total),
                    ));
                }
                Err(err)
            }
        }
    }
}

/// Reads (and with `delete`, removes) every entry with `BPF_MAP_LOOKUP[_AND_DELETE]_BATCH`, `chunk` entries per
/// call. A chunk too small for one hash bucket (ENOSPC) is doubled and retried.
pub fn lookup_batch_all(
    fd: BorrowedFd<'_>,
    key_size: usize,
    value_len: usize,
    chunk: usize,
    delete: bool,
) -> io::Result<BatchRead> {
    let mut cursor = BatchCursor::new(key_size, delete);
    let mut chunk = chunk.max(1);
    let mut keys: Vec<u8> = Vec::new();
    let mut values: Vec<u8> = Vec::new();
    loop {
        let key_start = cursor.total * key_size;
        let value_start = cursor.total * value_len;
        keys.resize(key_start + chunk * key_size, 0);
        values.resize(value_start + chunk * value_len, 0);
        match cursor.step(
            fd,
            &mut keys[key_start..],
            &mut values[value_start..],
            chunk,
        )? {
            BatchStep::Read(_) => {}
            BatchStep::End(_) => break,
            BatchStep::TooSmall => chunk = chunk.saturating_mul(2),
        }
    }
    let total = cursor.total;
    keys.truncate(total * key_size);
    values.truncate(total * value_len);
    Ok(BatchRead {
        keys,
        values,
        count: total,
    })
}

/// How many elements a write batch processed. The kernel writes the count back only once it has started; a
/// failure that leaves the caller's count untouched (an unsupported command, a bad argument) processed none.
fn batch_done(reported: u32, asked: usize, failed: bool) -> usize {
    let reported = reported as usize;
    if failed && reported >= asked {
        0
    } else {
        reported.min(asked)
    }
}

/// Writes `count` entries with `BPF_MAP_UPDATE_BATCH`. `keys` and `values` hold `count` elements back to back
/// (the caller checked their lengths). Returns how many were written before an error, with the error.
pub fn update_batch(
    fd: BorrowedFd<'_>,
    keys: &[u8],
    values: &[u8],
    count: usize,
    elem_flags: u64,
) -> (usize, io::Result<()>) {
    let mut attr = BatchAttr {
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count: u32::try_from(count).unwrap_or(u32::MAX),
        map_fd: fd.as_raw_fd() as u32,
        elem_flags,
        ..BatchAttr::default()
    };
    let result = batch_command(BPF_MAP_UPDATE_BATCH, &mut attr);
    (batch_done(attr.count, count, result.is_err()), result)
}

/// Deletes `count` keys with `BPF_MAP_DELETE_BATCH`. Returns how many were deleted before an error, with it.
pub fn delete_batch(fd: BorrowedFd<'_>, keys: &[u8], count: usize) -> (usize, io::Result<()>) {
    let mut attr = BatchAttr {
        keys: keys.as_ptr() as u64,
        count: u32::try_from(count).unwrap_or(u32::MAX),
        map_fd: fd.as_raw_fd() as u32,
        ..BatchAttr::default()
    };
    let result = batch_command(BPF_MAP_DELETE_BATCH, &mut attr);
    (batch_done(attr.count, count, result.is_err()), result)
}

/// An epoll instance over many fds, so one fd (`as_fd`) is readable when any of them is: the per-CPU buffers of a
/// perf event array become one pollable stream (for `poll` and for asyncio's `add_reader`).
pub struct Epoll(std::os::fd::OwnedFd);

impl Epoll {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall with a flag argument; the returned fd is checked and then owned.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by epoll_create1 and nothing else owns it.
        Ok(Self(unsafe {
            <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
        }))
    }

    /// Watches `fd` for readability; `token` comes back in events (unused by `wait_readable`).
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: both fds are open for the call; `event` is a valid epoll_event the kernel only reads.
        let ret = unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut event,
            )
        };
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.0)
    }
}

/// Waits for an RCU grace period (`membarrier(MEMBARRIER_CMD_GLOBAL)`, which is `synchronize_rcu()`): BPF programs
/// run inside RCU read-side sections, so once it returns, no run that started before the call is still going.
/// `Ok(false)` when the kernel lacks the command (no CONFIG_MEMBARRIER, or nohz_full CPUs).
pub fn rcu_grace_period() -> io::Result<bool> {
    const MEMBARRIER_CMD_GLOBAL: libc::c_int = 1;
    // SAFETY: membarrier takes two plain integers (command, flags) and a CPU id it ignores for this command.
    let ret = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) };
    if ret == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ENOSYS | libc::EINVAL) => Ok(false),
        _ => Err(err),
    }
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
/// `BPF_PROG_TYPE_KPROBE`: uprobes and kprobes, single or multi-point.
const BPF_PROG_TYPE_KPROBE: u32 = 2;

/// The prefix of `bpf_attr` that `BPF_PROG_LOAD` reads up to `expected_attach_type` (the kernel zero-extends a
/// shorter attr): no BTF, so no func_info/line_info (see `multi_probe.rs`).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// Loads a kprobe-type program from relocated instructions (8 bytes each) with `expected_attach_type` (what a
/// multi-point link requires) and `flags` (`BPF_F_SLEEPABLE`). On failure, the verifier's log when it wrote one:
/// the load is retried with a log only after a first attempt without fails, as aya and libbpf do.
pub fn load_kprobe_program(
    instructions: &[u64],
    license: &std::ffi::CStr,
    kernel_version: u32,
    name: &str,
    expected_attach_type: u32,
    flags: u32,
) -> Result<OwnedFd, (io::Error, String)> {
    let mut prog_name = [0u8; 16];
    // The kernel keeps 15 bytes of a name, of [A-Za-z0-9_.] only (what aya names a program: its function).
    for (slot, byte) in prog_name.iter_mut().zip(
        name.bytes()
            .filter(|byte| byte.is_ascii_alphanumeric() || *byte == b'_' || *byte == b'.')
            .take(15),
    ) {
        *slot = byte;
    }
    let load = |log: &mut [u8]| {
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_KPROBE,
            insn_cnt: instructions.len() as u32,
            insns: instructions.as_ptr() as u64,
            license: license.as_ptr() as u64,
            kern_version: kernel_version,
            prog_flags: flags,
            prog_name,
            expected_attach_type,
            ..ProgLoadAttr::default()
        };
        if !log.is_empty() {
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
        }
        // `instructions`, `license` and `log` outlive the call.
        bpf(BPF_PROG_LOAD, &mut attr)
    };
    let first = match load(&mut []) {
        // SAFETY: the kernel just returned this new program fd, owned by nothing else.
        Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(err) => err,
    };
    let mut size = 1 << 20;
    loop {
        let mut log = vec![0u8; size];
        match load(&mut log) {
            // A load that worked with a log (it should not): keep it.
            // SAFETY: as above.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
            // ENOSPC: the log did not fit; the verifier's verdict comes at its end.
            Err(err) if err.raw_os_error() == Some(libc::ENOSPC) && size < 1 << 28 => size *= 4,
            Err(err) => {
                let end = log.iter().position(|byte| *byte == 0).unwrap_or(log.len());
                let text = String::from_utf8_lossy(&log[..end]).into_owned();
                return Err((if text.is_empty() { first } else { err }, text));
            }
        }
    }
}

/// `bpf_attr.link_create` with its `uprobe_multi` member (`include/uapi/linux/bpf.h`, 6.6).
#[repr(C)]
#[derive(Default)]
struct UprobeMultiLinkAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    path: u64,
    offsets: u64,
    ref_ctr_offsets: u64,
    cookies: u64,
    cnt: u32,
    multi_flags: u32,
    pid: u32,
    /// Zeroed explicitly: the kernel refuses an attr whose bytes past the fields it knows are not zero.
    _pad: u32,
}

/// `BPF_TRACE_UPROBE_MULTI` (`enum bpf_attach_type`).
pub const BPF_TRACE_UPROBE_MULTI: u32 = 48;
/// `BPF_TRACE_KPROBE_MULTI`.
pub const BPF_TRACE_KPROBE_MULTI: u32 = 42;
/// `BPF_F_UPROBE_MULTI_RETURN` and `BPF_F_KPROBE_MULTI_RETURN`: return probes.
pub const BPF_F_MULTI_RETURN: u32 = 1;
/// `BPF_F_SLEEPABLE` (`prog_flags`).
pub const BPF_F_SLEEPABLE: u32 = 1 << 4;

/// One uprobe_multi link of `program` on the file `path` at `offsets` (file offsets), with a cookie per offset
/// (`cookies` empty: none) and only in process `pid` (0: every process).
pub fn link_uprobe_multi(
    program: BorrowedFd<'_>,
    path: &std::ffi::CStr,
    offsets: &[u64],
    cookies: &[u64],
    pid: u32,
    retprobe: bool,
) -> io::Result<OwnedFd> {
    let mut attr = UprobeMultiLinkAttr {
        prog_fd: program.as_raw_fd() as u32,
        attach_type: BPF_TRACE_UPROBE_MULTI,
        path: path.as_ptr() as u64,
        offsets: offsets.as_ptr() as u64,
        cookies: if cookies.is_empty() {
            0
        } else {
            cookies.as_ptr() as u64
        },
        cnt: offsets.len() as u32,
        multi_flags: if retprobe { BPF_F_MULTI_RETURN } else { 0 },
        pid,
        ..UprobeMultiLinkAttr::default()
    };
    // `path`, `offsets` and `cookies` (as long as `offsets`, or empty) outlive the call.
    let fd = bpf(BPF_LINK_CREATE, &mut attr)?;
    // SAFETY: the kernel just returned this new link fd, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `bpf_attr.link_create` with its `kprobe_multi` member (5.18).
#[repr(C)]
#[derive(Default)]
struct KprobeMultiLinkAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    multi_flags: u32,
    cnt: u32,
    syms: u64,
    addrs: u64,
    cookies: u64,
}

/// One kprobe_multi link of `program` on the kernel functions `symbols` (the kernel looks each up in kallsyms),
/// with a cookie per function (`cookies` empty: none).
pub fn link_kprobe_multi(
    program: BorrowedFd<'_>,
    symbols: &[std::ffi::CString],
    cookies: &[u64],
    retprobe: bool,
) -> io::Result<OwnedFd> {
    let pointers: Vec<u64> = symbols.iter().map(|name| name.as_ptr() as u64).collect();
    let mut attr = KprobeMultiLinkAttr {
        prog_fd: program.as_raw_fd() as u32,
        attach_type: BPF_TRACE_KPROBE_MULTI,
        multi_flags: if retprobe { BPF_F_MULTI_RETURN } else { 0 },
        cnt: pointers.len() as u32,
        syms: pointers.as_ptr() as u64,
        cookies: if cookies.is_empty() {
            0
        } else {
            cookies.as_ptr() as u64
        },
        ..KprobeMultiLinkAttr::default()
    };
    // `symbols` (whose pointers `pointers` holds) and `cookies` outlive the call.
    let fd = bpf(BPF_LINK_CREATE, &mut attr)?;
    // SAFETY: the kernel just returned this new link fd, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Runs `work` on a new thread whose root directory is `root` (`unshare(CLONE_FS)` gives the thread its own root,
/// then `chroot`), so absolute paths it opens resolve under `root`; the rest of the process keeps its root, and the
/// thread's filesystem context goes with the thread. `None` when the thread cannot change its root (no
/// CAP_SYS_CHROOT) or `work` panicked.
pub fn with_private_root<T: Send>(
    root: &std::path::Path,
    work: impl FnOnce() -> T + Send,
) -> Option<T> {
    use std::os::unix::ffi::OsStrExt as _;
    let root = std::ffi::CString::new(root.as_os_str().as_bytes()).ok()?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: unshare and chroot take no pointers but the NUL-terminated path, alive for the call;
                // CLONE_FS alone affects only this thread's root, cwd and umask.
                let private = unsafe {
                    libc::unshare(libc::CLONE_FS) == 0 && libc::chroot(root.as_ptr()) == 0
                };
                private.then(work)
            })
            .join()
            .ok()
            .flatten()
    })
}
