//! Read the arguments of a USDT probe (a `<sys/sdt.h>` `DTRACE_PROBE`/`STAP_PROBE` site) from a `#[uprobe]`
//! program that pyaya attached with `UProbe.attach_usdt(target, provider, name)`.
//!
//! A probe's note says where each argument lives at the probe site (`-4@%eax`, `8@-8(%rbp)`, `4@$5`, ...). User
//! space parses those strings once, at attach time, into [`ArgSpec`]s, writes one [`Spec`] per probe location
//! into [`PYAYA_USDT_SPECS`], and attaches each location with the spec's index as its bpf cookie. Here, the
//! program looks its spec up by cookie (`bpf_get_attach_cookie`, kernel 5.15+) and reads each argument from the
//! saved registers (`pt_regs`) or user memory. Nothing here loops over an unknown count: the verifier sees fixed
//! bounds everywhere.
//!
//! ```ignore
//! #[uprobe]
//! pub fn on_entry(ctx: ProbeContext) -> u32 {
//!     let line = pyaya_usdt::usdt_arg(&ctx, 2).unwrap_or(-1);
//!     0
//! }
//! ```
//!
//! The layout of [`ArgSpec`] and [`Spec`] is shared with pyaya's user space (crates/pyaya-native/src/usdt_notes.rs):
//! change both together.
#![no_std]

use aya_ebpf::{
    btf_maps::Array,
    helpers::{bpf_probe_read_kernel, bpf_probe_read_user, generated::bpf_get_attach_cookie},
    macros::btf_map,
    programs::ProbeContext,
    EbpfContext as _,
};

/// Arguments a probe may have: `<sys/sdt.h>` supports up to 12.
pub const MAX_ARGS: usize = 12;

/// Specs the map holds by default (one per attached probe location whose arguments differ; index 0 is never
/// used, so a program attached without a cookie finds no spec). `Ebpf.load(max_entries={"PYAYA_USDT_SPECS": N})`
/// changes it.
pub const MAX_SPECS: u32 = 256;

/// `ArgSpec::kind`: the argument is `ArgSpec::offset` itself (`4@$5`).
pub const KIND_CONSTANT: u8 = 1;
/// `ArgSpec::kind`: the argument is in a register (`-4@%eax`), shifted right by `ArgSpec::shift` (`%ah`).
pub const KIND_REGISTER: u8 = 2;
/// `ArgSpec::kind`: the argument is in user memory at `base + index * scale + offset` (`8@-8(%rbp)`,
/// `8@8(%rax,%rdx,8)`, `-4@counter(%rip)`).
pub const KIND_MEMORY: u8 = 3;
/// `ArgSpec::base` / `ArgSpec::index` when there is no such register.
pub const NO_REGISTER: u16 = u16::MAX;

/// Largest `pt_regs` offset a spec may name (arm64's `pstate`; x86-64's last register, `ss`, is at 160).
const MAX_REGISTER_OFFSET: u16 = 264;

/// Where one argument is, as user space computed it from the probe's note.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ArgSpec {
    /// The constant (`KIND_CONSTANT`) or the memory displacement (`KIND_MEMORY`).
    pub offset: i64,
    /// `KIND_CONSTANT`, `KIND_REGISTER` or `KIND_MEMORY`.
    pub kind: u8,
    /// The argument's width in bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// 1 when the argument is signed (a negative size in the note, `-4@...`): it is sign-extended to 64 bits.
    pub signed: u8,
    /// Right shift applied to a register's value (8 for x86's `%ah`..`%dh`, else 0).
    pub shift: u8,
    /// Offset in `pt_regs` of the register holding the value (`KIND_REGISTER`) or the base address
    /// (`KIND_MEMORY`), or `NO_REGISTER`.
    pub base: u16,
    /// Offset in `pt_regs` of the index register of a `(base,index,scale)` operand, or `NO_REGISTER`.
    pub index: u16,
    /// The index's scale: 1, 2, 4 or 8.
    pub scale: u8,
    pub _reserved: [u8; 7],
}

/// Everything about one probe location: its arguments.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Spec {
    pub args: [ArgSpec; MAX_ARGS],
    /// How many of `args` the probe has.
    pub count: u32,
    /// The process id of the pyaya process that wrote this spec (0: a free slot); user space uses it to find free
    /// slots in a map shared through a pin.
    pub owner: u32,
}

/// The specs, by cookie. Written by pyaya before it attaches; one map per object, shared by its USDT programs.
/// A `#[btf_map]`, so that libbpf-based loaders accept objects that use this crate.
#[btf_map]
pub static PYAYA_USDT_SPECS: Array<Spec, { MAX_SPECS as usize }> = Array::new();

/// Why an argument could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsdtError {
    /// The program was not attached by `attach_usdt` (no cookie, or no spec under it).
    NoSpec,
    /// The probe has fewer arguments than the one asked for.
    NoArgument,
    /// The spec is malformed (not written by a matching pyaya).
    BadSpec,
    /// Reading a register or user memory failed; the helper's error code.
    Read(i64),
}

fn spec(ctx: &ProbeContext) -> Result<&'static Spec, UsdtError> {
    // SAFETY: the helper only reads the cookie of the running program's attachment.
    let cookie = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    if cookie == 0 || cookie > u64::from(u32::MAX) {
        return Err(UsdtError::NoSpec);
    }
    let spec = PYAYA_USDT_SPECS.get(cookie as u32).ok_or(UsdtError::NoSpec)?;
    if spec.count == 0 {
        return Err(UsdtError::NoSpec);
    }
    Ok(spec)
}

/// How many arguments the probe that fired has.
#[inline(always)]
pub fn usdt_arg_count(ctx: &ProbeContext) -> Result<usize, UsdtError> {
    spec(ctx).map(|spec| spec.count as usize)
}

/// One register of the probed thread, saved by the kernel in `pt_regs` at `offset`.
#[inline(always)]
fn register(ctx: &ProbeContext, offset: u16) -> Result<u64, UsdtError> {
    if offset > MAX_REGISTER_OFFSET || offset % 8 != 0 {
        return Err(UsdtError::BadSpec);
    }
    // The context may not be dereferenced at a variable offset; the helper reads it instead.
    let address = (ctx.as_ptr() as usize + offset as usize) as *const u64;
    // SAFETY: the helper checks the address; `offset` is within `pt_regs`, which the context points at.
    unsafe { bpf_probe_read_kernel(address) }.map_err(|err| UsdtError::Read(i64::from(err)))
}

/// Reads `size` bytes of user memory at `address` as a zero-extended integer.
#[inline(always)]
fn user_memory(address: u64, size: u8) -> Result<u64, UsdtError> {
    let read_error = |err: i32| UsdtError::Read(i64::from(err));
    // SAFETY (each arm): the helper checks the user address; an unmapped one is an error, never a fault.
    match size {
        1 => unsafe { bpf_probe_read_user(address as *const u8) }.map(u64::from).map_err(read_error),
        2 => unsafe { bpf_probe_read_user(address as *const u16) }.map(u64::from).map_err(read_error),
        4 => unsafe { bpf_probe_read_user(address as *const u32) }.map(u64::from).map_err(read_error),
        8 => unsafe { bpf_probe_read_user(address as *const u64) }.map_err(read_error),
        _ => Err(UsdtError::BadSpec),
    }
}

/// The low `size` bytes of `raw`, sign- or zero-extended to 64 bits.
#[inline(always)]
fn extend(raw: u64, size: u8, signed: bool) -> i64 {
    match (size, signed) {
        (1, true) => i64::from(raw as i8),
        (1, false) => i64::from(raw as u8),
        (2, true) => i64::from(raw as i16),
        (2, false) => i64::from(raw as u16),
        (4, true) => i64::from(raw as i32),
        (4, false) => i64::from(raw as u32),
        _ => raw as i64,
    }
}

/// The `n`th argument (from 0) of the probe that fired, sign-extended when the probe declares it signed
/// (`-4@...`), zero-extended otherwise: cast an unsigned or pointer argument with `as u64`.
#[inline(always)]
pub fn usdt_arg(ctx: &ProbeContext, n: usize) -> Result<i64, UsdtError> {
    let spec = spec(ctx)?;
    if n >= MAX_ARGS || n >= spec.count as usize {
        return Err(UsdtError::NoArgument);
    }
    let arg = &spec.args[n];
    let raw = match arg.kind {
        KIND_CONSTANT => arg.offset as u64,
        KIND_REGISTER => register(ctx, arg.base)? >> (arg.shift & 63),
        KIND_MEMORY => {
            let mut address = arg.offset as u64;
            if arg.base != NO_REGISTER {
                address = address.wrapping_add(register(ctx, arg.base)?);
            }
            if arg.index != NO_REGISTER {
                let index = register(ctx, arg.index)?;
                address = address.wrapping_add(index.wrapping_mul(u64::from(arg.scale)));
            }
            user_memory(address, arg.size)?
        }
        _ => return Err(UsdtError::BadSpec),
    };
    Ok(extend(raw, arg.size, arg.signed != 0))
}

/// [`usdt_arg`] as an unsigned value (the same bits): for unsigned and pointer arguments.
#[inline(always)]
pub fn usdt_arg_u64(ctx: &ProbeContext, n: usize) -> Result<u64, UsdtError> {
    usdt_arg(ctx, n).map(|value| value as u64)
}
