//! The few raw `bpf()` map commands aya keeps private, on a map fd that aya owns. Keys and values are byte
//! buffers whose sizes the caller has checked against the map's key and value sizes.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

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

fn map_elem_command(command: libc::c_long, attr: &mut MapElemAttr) -> io::Result<()> {
    // SAFETY: `attr` is a valid, initialised bpf_attr prefix of the size we pass; the pointers it carries point at
    // buffers that outlive the call and have the sizes the map expects.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            std::ptr::from_mut(attr),
            std::mem::size_of::<MapElemAttr>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
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
