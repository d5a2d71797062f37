//! Read kernel struct fields from Rust eBPF programs on every kernel, without CO-RE.
//!
//! rustc emits no CO-RE field relocations, so a Rust program cannot ask the loader to fix `task->real_parent`'s
//! offset for the kernel it runs on. Instead, a program declares each field it reads once, by its path in the
//! kernel's types:
//!
//! ```ignore
//! use pyaya_fields::kernel_field;
//!
//! kernel_field!(PARENT_TGID: i32 = "task_struct.real_parent->tgid");
//! kernel_field!(optional TASK_STATE: u32 = "task_struct.__state|state");
//!
//! let task = bpf_get_current_task() as *const u8;
//! let ppid = unsafe { PARENT_TGID.read(task) }.unwrap_or(0);
//! if TASK_STATE.exists() { /* ... */ }
//! ```
//!
//! The declaration is a read-only global holding its path; pyaya's loader finds every such global in the object,
//! resolves each path in the running kernel's BTF (`/sys/kernel/btf/vmlinux`) and writes the offsets, the field's
//! size and whether it exists into the global before the kernel sees the program. A required field the kernel
//! lacks fails the load with an error naming it; an optional one loads with [`KernelField::exists`] false.
//!
//! Paths: a struct (or union) name, then members: `.member` for a member of the same struct (nested and anonymous
//! members included: `sk_buff.sk->__sk_common.skc_family`), `->member` to follow a pointer member first, and
//! `a|b` for a member renamed between kernels (the first the kernel has wins). Bitfields cannot be declared.
//!
//! The layout of [`KernelField`] is shared with pyaya's user space (python/pyaya/kernel_fields.py): change both
//! together.
#![no_std]

use core::{marker::PhantomData, mem::size_of, ptr::read_volatile};

use aya_ebpf::{cty::c_void, helpers::generated::bpf_probe_read_kernel};

/// The first bytes of every declaration: how the loader tells a kernel field from other read-only globals.
pub const MAGIC: [u8; 8] = *b"PYAYAKF1";
/// Longest path, in bytes (the path text is kept in the declaration, NUL-padded).
pub const MAX_PATH: usize = 119;
/// Most pointers a path may follow, plus one: `a.b->c->d->e` has four hops.
pub const MAX_HOPS: usize = 4;

/// `-ENOENT`: the field does not exist on this kernel (an optional field) or was never filled.
const ENOENT: i64 = -2;

/// One kernel field, declared with [`kernel_field!`] and filled by pyaya's loader before load.
///
/// `T` is the type the program reads the field as: a plain-data type (an integer, a raw pointer, an array of
/// them, a `#[repr(C)]` struct of them). When the kernel's field is smaller than `T`, the rest of the value is
/// zero (so a 4-byte field read as `u64` is zero-extended); when it is larger, its first `size_of::<T>()` bytes
/// are read (on little-endian targets, the low bits of an integer).
#[repr(C)]
pub struct KernelField<T> {
    magic: [u8; 8],
    path: [u8; MAX_PATH + 1],
    /// 1: the load fails when the kernel lacks the field.
    required: u32,
    /// `size_of::<T>()`, for the loader's messages.
    type_size: u32,
    // Filled by the loader:
    exists: u32,
    /// Number of offsets in `offsets`: one per pointer followed, plus the last.
    hops: u32,
    /// The size of the kernel's field, in bytes.
    size: u32,
    reserved: u32,
    /// Offsets from the start of each struct on the path: all but the last lead to a pointer that is followed.
    offsets: [u32; MAX_HOPS],
    // `fn() -> T` keeps the declaration `Sync` whatever `T` is (raw pointers included): nothing of type `T` is stored.
    value: PhantomData<fn() -> T>,
}

impl<T> KernelField<T> {
    /// A declaration of the field at `path`; [`kernel_field!`] is the way to make one (it also names the global,
    /// so the loader can name it in errors).
    pub const fn new(path: &str, required: bool) -> Self {
        let bytes = path.as_bytes();
        assert!(
            !bytes.is_empty() && bytes.len() <= MAX_PATH,
            "a kernel field's path must be 1 to 119 bytes"
        );
        let mut text = [0u8; MAX_PATH + 1];
        let mut index = 0;
        while index < bytes.len() {
            assert!(bytes[index] != 0, "a kernel field's path cannot hold a NUL byte");
            text[index] = bytes[index];
            index += 1;
        }
        Self {
            magic: MAGIC,
            path: text,
            required: required as u32,
            type_size: size_of::<T>() as u32,
            exists: 0,
            hops: 0,
            size: 0,
            reserved: 0,
            offsets: [0; MAX_HOPS],
            value: PhantomData,
        }
    }

    // The loader writes the fields below after compilation: volatile reads keep the compiler from folding them to
    // the zeros it saw (the kernel still knows them as constants, since the global is in a frozen map).
    fn filled(&self, value: &u32) -> u32 {
        // SAFETY: `value` is a field of `self`, a live static.
        unsafe { read_volatile(value) }
    }

    /// Whether the running kernel has the field (as libbpf's `bpf_core_field_exists`): always true for a
    /// required field of an object that loaded.
    #[inline(always)]
    pub fn exists(&self) -> bool {
        self.filled(&self.exists) != 0
    }

    /// The size of the kernel's field in bytes (as `bpf_core_field_size`), 0 when it does not exist.
    #[inline(always)]
    pub fn size(&self) -> u32 {
        self.filled(&self.size)
    }

    /// The field's byte offset in its struct (as `bpf_core_field_offset`) when the path follows no pointer and
    /// the field exists.
    #[inline(always)]
    pub fn offset(&self) -> Option<u32> {
        if self.filled(&self.exists) == 0 || self.filled(&self.hops) != 1 {
            return None;
        }
        // SAFETY: `offsets[0]` is a field of `self`, a live static.
        Some(unsafe { read_volatile(&self.offsets[0]) })
    }

    /// Reads the field of the struct at `base` (a kernel address of the path's first struct, such as
    /// `bpf_get_current_task()`), following each pointer of the path with `bpf_probe_read_kernel`.
    ///
    /// Errors: `-ENOENT` when the kernel has no such field; the helper's error when a read fails (such as a
    /// null pointer on the way).
    ///
    /// # Safety
    /// `T` must be valid for any bit pattern (integers, raw pointers, arrays and `#[repr(C)]` structs of them):
    /// the value is made of the kernel's bytes, zeros where the field is smaller.
    #[inline(always)]
    pub unsafe fn read(&self, base: *const u8) -> Result<T, i64> {
        let hops = self.filled(&self.hops) as usize;
        if self.filled(&self.exists) == 0 || hops == 0 || hops > MAX_HOPS {
            return Err(ENOENT);
        }
        let mut address = base as u64;
        let mut hop = 0;
        // A fixed bound the verifier sees; the loader keeps `hops` within it.
        while hop < MAX_HOPS - 1 {
            if hop + 1 >= hops {
                break;
            }
            let at = address + u64::from(read_volatile(&self.offsets[hop]));
            let mut next: u64 = 0;
            let status = bpf_probe_read_kernel(
                (&mut next as *mut u64).cast::<c_void>(),
                size_of::<u64>() as u32,
                at as *const c_void,
            );
            if status < 0 {
                return Err(status);
            }
            address = next;
            hop += 1;
        }
        let at = address + u64::from(read_volatile(&self.offsets[hop]));
        let mut length = self.filled(&self.size);
        if length > size_of::<T>() as u32 {
            length = size_of::<T>() as u32;
        }
        let mut value = core::mem::MaybeUninit::<T>::zeroed();
        let status = bpf_probe_read_kernel(value.as_mut_ptr().cast::<c_void>(), length, at as *const c_void);
        if status < 0 {
            return Err(status);
        }
        Ok(value.assume_init())
    }
}

/// Declares a kernel field the program reads, by its path in the kernel's types; pyaya's loader fills it from the
/// running kernel's BTF before load.
///
/// ```ignore
/// kernel_field!(PARENT_TGID: i32 = "task_struct.real_parent->tgid");        // required: no load without it
/// kernel_field!(optional TASK_STATE: u32 = "task_struct.__state|state");    // optional: check .exists()
/// kernel_field!(pub SKB_FAMILY: u16 = "sk_buff.sk->__sk_common.skc_family");
/// ```
///
/// The name becomes the global's symbol (`#[no_mangle]`), so it must be unique in the object.
#[macro_export]
macro_rules! kernel_field {
    ($(#[$meta:meta])* $vis:vis optional $name:ident : $ty:ty = $path:literal) => {
        $(#[$meta])*
        #[no_mangle]
        $vis static $name: $crate::KernelField<$ty> = $crate::KernelField::new($path, false);
    };
    ($(#[$meta:meta])* $vis:vis $name:ident : $ty:ty = $path:literal) => {
        $(#[$meta])*
        #[no_mangle]
        $vis static $name: $crate::KernelField<$ty> = $crate::KernelField::new($path, true);
    };
}
