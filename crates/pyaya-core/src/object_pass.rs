//! pyaya's object pass: what aya 0.14 refuses in a libbpf-style C object, fixed in a copy of the object before aya
//! parses it (aya is a dependency pyaya does not patch). Each fix rewrites only what aya must see differently:
//!
//! - **libbpf's classifier sections** (`SEC("tc")`, `tc/ingress`, `tc/egress`, `tcx/ingress`, `tcx/egress`), which
//!   aya-obj refuses as "invalid program section", are renamed `classifier/<name>` (aya's SchedClassifier), in the
//!   section header string table and in the `.BTF.ext` records that name the section (func/line info, CO-RE), so
//!   no line info or relocation is lost. The section indexes stay, so the original names are still read from the
//!   original bytes.
//! - **multi-point probe sections** (`uprobe.multi`, `uretprobe.multi`, `kprobe.multi/tcp_*`, ...), which aya-obj
//!   0.3 does not know either, are renamed to their single-point form (`uprobe`, `kprobe/tcp_*`) the same way;
//!   the loader, which reads the original names, loads those programs with their multi attach type itself.
//! - **`__ksym` externs**: each relocated instruction is resolved as libbpf does (a typed VAR or a kfunc by its
//!   vmlinux BTF id, an untyped VAR by its address, a missing weak one as 0, a missing weak kfunc call as a call the
//!   verifier refuses only where it is reachable), and the `.ksyms` DATASEC, which aya cannot size and the kernel
//!   refuses (extern linkage, FUNC entries), becomes a plain struct of ints. A typed VAR must also be in kallsyms
//!   (the verifier looks its address up there: data symbols need `CONFIG_KALLSYMS_ALL`), checked here so the
//!   refusal names it, and a weak one missing there reads 0.
//! - **`__kconfig` externs**: their values are laid out in a new `.rodata.kconfig` section, which aya creates as a
//!   frozen data map, and the extern symbols are defined there, so aya relocates each access like any `.rodata`
//!   global.
//! - **CO-RE relocations into trailing flexible arrays** (`BPF_CORE_READ(ctx, args[3])` of `struct
//!   syscall_trace_enter { ...; unsigned long args[]; }`), which aya 0.14 refuses ("array index out of bounds"),
//!   are computed here against the target BTF as libbpf computes them, patched into their instructions and
//!   removed from `.BTF.ext`. Every other CO-RE record is checked against the target BTF too, and the ones that
//!   cannot be resolved are returned (`Prepared::core_failures`), so that a program the verifier then refuses
//!   for aya's poisoned instruction is reported naming the type, the field and the program
//!   (`object_pass_core.rs`).
//!
//! The file only grows: rewritten sections and the section header table are appended at the end, so every offset
//! already in the file stays valid.
//!
//! Every offset and size read from the object goes through checked arithmetic (`add`, `mul`, `span`: clippy's
//! `arithmetic_side_effects` is denied here), so a crafted object gets the pass's error, never an overflow panic
//! or a wrapped offset, in debug builds too.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use crate::btf::{Btf, Detail, Kind};
use crate::elf::{Elf, Section, Symbol, SHF_EXECINSTR, STB_WEAK};

pub const SHT_PROGBITS: u32 = 1;
pub const SHT_REL: u32 = 9;
const SHF_ALLOC: u64 = 0x2;
const STT_OBJECT: u8 = 1;
/// The section pyaya gives `__kconfig` externs (aya creates every `.rodata*` section as a frozen array map; the
/// kernel keeps 15 characters of a map name, exactly this one's length).
pub const KCONFIG_SECTION: &str = ".rodata.kconfig";
/// The largest `char NAME[N]` `__kconfig` extern pyaya fills (a config string is a line of text; a crafted
/// object's array of billions of chars would otherwise become an allocation that size).
const MAX_KCONFIG_CHARS: u32 = 1 << 16;
/// The helper id libbpf gives the call to a missing weak kfunc (plus the extern's index): no such helper exists,
/// so the verifier refuses the call only if it can be reached (`bpf_ksym_exists()` guards it).
const POISON_KFUNC_CALL: i32 = 2_002_000_000;
const BPF_PSEUDO_BTF_ID: u8 = 3;
const BPF_PSEUDO_CALL: u8 = 1;
const BPF_PSEUDO_KFUNC_CALL: u8 = 2;
const LD_IMM64: u8 = 0x18;
const CALL: u8 = 0x85;

/// What is wrong, in words for the user (the native module raises it as a pyaya error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<crate::btf::Error> for Error {
    fn from(error: crate::btf::Error) -> Self {
        Self(format!("the object's BTF: {error}"))
    }
}

fn err<T>(message: impl Into<String>) -> Result<T, Error> {
    Err(Error(message.into()))
}

/// `a + b` for offsets and sizes read from the object.
fn add(a: u64, b: u64) -> Result<u64, Error> {
    a.checked_add(b)
        .ok_or_else(|| Error(format!("an offset in the object overflows ({a} + {b})")))
}

/// `a * b` for offsets and sizes read from the object.
fn mul(a: u64, b: u64) -> Result<u64, Error> {
    a.checked_mul(b)
        .ok_or_else(|| Error(format!("a size in the object overflows ({a} * {b})")))
}

/// The byte range `start..start + len`, `None` when it does not fit the address space.
fn span(start: u64, len: u64) -> Option<Range<usize>> {
    let end = start.checked_add(len)?;
    Some(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
}

/// The word at byte `at` of `bytes` in the given byte order.
fn word_at(bytes: &[u8], at: u64, little: bool) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(span(at, 4)?)?.try_into().ok()?;
    Some(if little {
        u32::from_le_bytes(raw)
    } else {
        u32::from_be_bytes(raw)
    })
}

/// aya's name for a section libbpf calls a classifier and aya-obj refuses (`None`: nothing to rename).
pub fn classifier_section(name: &str) -> Option<String> {
    matches!(
        name,
        "tc" | "tc/ingress" | "tc/egress" | "tcx/ingress" | "tcx/egress"
    )
    .then(|| format!("classifier/{name}"))
}

/// A multi-point probe section (`uprobe.multi`, `uretprobe.multi/...`, `kprobe.multi/tcp_*`, their `.s`
/// sleepable forms): one program attached to many places through one `uprobe_multi`/`kprobe_multi` link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultiProbe {
    /// A kprobe.multi (kernel functions), else a uprobe.multi (user-space functions).
    pub kernel: bool,
    /// A return probe (`uretprobe.multi`, `kretprobe.multi`).
    pub retprobe: bool,
    /// `uprobe.multi.s`: loaded with `BPF_F_SLEEPABLE`.
    pub sleepable: bool,
}

/// What a multi-point probe section is, `None` for every other section. aya-obj 0.3 has no such sections; the
/// pass renames them to the single-point form (`multi_section`) and the loader gives them their attach type.
pub fn multi_probe(section: &str) -> Option<MultiProbe> {
    let (kind, _) = section.split_once('/').unwrap_or((section, ""));
    let (kernel, retprobe, sleepable) = match kind {
        "uprobe.multi" => (false, false, false),
        "uprobe.multi.s" => (false, false, true),
        "uretprobe.multi" => (false, true, false),
        "uretprobe.multi.s" => (false, true, true),
        "kprobe.multi" => (true, false, false),
        "kretprobe.multi" => (true, true, false),
        _ => return None,
    };
    Some(MultiProbe {
        kernel,
        retprobe,
        sleepable,
    })
}

/// aya's name for a multi-point probe section: the single-point probe of the same direction (`uprobe.multi/x` ->
/// `uprobe/x`, `uretprobe.multi.s` -> `uretprobe.s`), which aya-obj parses into the program aya then prepares.
pub fn multi_section(name: &str) -> Option<String> {
    multi_probe(name)?;
    let (kind, rest) = match name.split_once('/') {
        Some((kind, rest)) => (kind, Some(rest)),
        None => (name, None),
    };
    let single = kind.replacen(".multi", "", 1);
    Some(match rest {
        Some(rest) => format!("{single}/{rest}"),
        None => single,
    })
}

/// The name aya must see for a section it refuses (a libbpf classifier, a multi-point probe), `None` when aya
/// reads it as it is.
pub fn renamed_section(name: &str) -> Option<String> {
    classifier_section(name).or_else(|| multi_section(name))
}

/// How a `__ksym` extern is declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KsymKind {
    /// `extern const struct rq runqueues __ksym;`: its vmlinux BTF id (`BPF_PSEUDO_BTF_ID`).
    Typed,
    /// `extern const void init_task __ksym;`: its address, from /proc/kallsyms.
    Untyped,
    /// `extern struct task_struct *bpf_task_from_pid(s32) __ksym;`: a kfunc, called by BTF id.
    Func,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ksym {
    pub name: String,
    pub weak: bool,
    pub kind: KsymKind,
    /// The extern's BTF type in the object (its VAR or FUNC).
    pub type_id: u32,
}

/// How a `__kconfig` extern's value is stored, libbpf's kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KconfigShape {
    /// `bool`: y (or m) 1, n 0.
    Bool,
    /// `enum libbpf_tristate`: n 0, y 1, m 2.
    Tristate,
    /// `char`: the letter itself (`'y'`, `'m'`, `'n'`).
    Char,
    /// An integer of 1, 2, 4 or 8 bytes: a decimal or 0x-hexadecimal value.
    Int { size: u32, signed: bool },
    /// `char NAME[N]`: a quoted string value, NUL-terminated, cut at N - 1 bytes.
    Chars(u32),
}

impl KconfigShape {
    pub const fn size(self) -> u32 {
        match self {
            Self::Bool | Self::Char => 1,
            Self::Tristate => 4,
            Self::Int { size, .. } | Self::Chars(size) => size,
        }
    }

    const fn align(self) -> u32 {
        match self {
            Self::Chars(_) => 1,
            other => other.size(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kconfig {
    pub name: String,
    pub weak: bool,
    pub shape: KconfigShape,
    pub type_id: u32,
}

/// The externs an object declares (`.ksyms` and `.kconfig` DATASECs of its BTF).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Externs {
    pub ksyms: Vec<Ksym>,
    pub kconfig: Vec<Kconfig>,
    /// Externs of other sections, which neither libbpf nor pyaya resolve: `(section, name)`.
    pub unsupported: Vec<(String, String)>,
}

impl Externs {
    pub fn is_empty(&self) -> bool {
        self.ksyms.is_empty() && self.kconfig.is_empty() && self.unsupported.is_empty()
    }
}

/// What the running kernel says about externs: answered by the native module (vmlinux BTF, /proc/kallsyms, the
/// kernel config given by Python).
pub trait Kernel {
    /// The BTF CO-RE relocations are made against (the running kernel's, or `Ebpf.load`'s `btf=`); `None`: the
    /// pass leaves CO-RE records to aya.
    fn target_btf(&self) -> Option<&Btf> {
        None
    }
    /// The vmlinux BTF id of the VAR (`func` false) or FUNC called `name`.
    fn btf_id(&self, name: &str, func: bool) -> Option<u32>;
    /// The address of `name` in /proc/kallsyms.
    fn address(&self, name: &str) -> Option<u64>;
    /// The value of a config option (`y`, `m`, `"text"`, `250`), or of `LINUX_KERNEL_VERSION`.
    fn kconfig(&self, name: &str) -> Option<String>;
}

fn kconfig_shape(btf: &Btf, type_id: u32) -> Option<KconfigShape> {
    let resolved = btf.resolve(type_id).ok()?;
    let t = btf.type_by_id(resolved).ok()?;
    match (t.kind, t.detail) {
        (Kind::Int, Detail::Int { encoding, .. }) => {
            if encoding & 4 != 0 {
                Some(KconfigShape::Bool)
            } else if t.size_or_type == 1 && (encoding & 2 != 0 || btf.string(t.name) == "char") {
                Some(KconfigShape::Char)
            } else {
                matches!(t.size_or_type, 1 | 2 | 4 | 8).then_some(KconfigShape::Int {
                    size: t.size_or_type,
                    signed: encoding & 1 != 0,
                })
            }
        }
        (Kind::Enum, _) if btf.string(t.name) == "libbpf_tristate" => Some(KconfigShape::Tristate),
        (Kind::Enum | Kind::Enum64, _) => {
            matches!(t.size_or_type, 1 | 2 | 4 | 8).then_some(KconfigShape::Int {
                size: t.size_or_type,
                signed: t.kind_flag,
            })
        }
        (Kind::Array, Detail::Array { element, count, .. }) => {
            let element = btf.type_by_id(btf.resolve(element).ok()?).ok()?;
            (element.kind == Kind::Int && element.size_or_type == 1)
                .then_some(KconfigShape::Chars(count))
        }
        _ => None,
    }
}

fn symbols_by_name<'a>(elf: &'a Elf<'_>) -> HashMap<&'a str, &'a Symbol> {
    elf.symbols
        .iter()
        .filter(|symbol| symbol.section.is_none() && !symbol.name.is_empty())
        .map(|symbol| (symbol.name.as_str(), symbol))
        .collect()
}

fn object_btf(elf: &Elf<'_>) -> Option<Btf> {
    Btf::parse(elf.section_data(elf.section(".BTF")?)).ok()
}

fn externs_of(elf: &Elf<'_>, btf: &Btf) -> Result<Externs, Error> {
    let symbols = symbols_by_name(elf);
    let mut found = Externs::default();
    for id in 1..btf.len() as u32 {
        let Some(t) = btf.get(id) else { continue };
        if t.kind != Kind::Datasec {
            continue;
        }
        let section = btf.string(t.name).into_owned();
        for var in btf.vars(&t) {
            let Ok(entry) = btf.type_by_id(var.type_id) else {
                continue;
            };
            let name = btf.string(entry.name).into_owned();
            let extern_linkage = match (entry.kind, entry.detail) {
                (Kind::Var, Detail::Linkage(linkage)) => linkage == 2,
                (Kind::Func, _) => entry.vlen == 2,
                _ => false,
            };
            if !extern_linkage {
                continue;
            }
            let weak = symbols
                .get(name.as_str())
                .is_some_and(|symbol| symbol.binding == STB_WEAK);
            match section.as_str() {
                ".ksyms" => {
                    let kind = if entry.kind == Kind::Func {
                        KsymKind::Func
                    } else if btf.resolve(entry.size_or_type).unwrap_or_default() == 0 {
                        KsymKind::Untyped
                    } else {
                        KsymKind::Typed
                    };
                    found.ksyms.push(Ksym {
                        name,
                        weak,
                        kind,
                        type_id: var.type_id,
                    });
                }
                ".kconfig" => {
                    let Some(shape) = kconfig_shape(btf, entry.size_or_type) else {
                        return err(format!(
                            "extern {name:?} __kconfig has type {}, which pyaya cannot fill: declare it bool, \
                             char, an integer, enum libbpf_tristate or a char array",
                            btf.describe(entry.size_or_type)
                        ));
                    };
                    found.kconfig.push(Kconfig {
                        name,
                        weak,
                        shape,
                        type_id: var.type_id,
                    });
                }
                _ => found.unsupported.push((section.clone(), name)),
            }
        }
    }
    Ok(found)
}

/// The externs of an object; empty when it has no BTF (or none pyaya can read: aya then says what is wrong).
pub fn externs(data: &[u8]) -> Result<Externs, Error> {
    if !may_have_externs(data) {
        return Ok(Externs::default());
    }
    let Ok(elf) = Elf::parse(data) else {
        return Ok(Externs::default());
    };
    match object_btf(&elf) {
        Some(btf) => externs_of(&elf, &btf),
        None => Ok(Externs::default()),
    }
}

/// The kconfig bytes of `value` (the text after `CONFIG_X=` in the kernel's config) for `shape`.
pub fn kconfig_value(name: &str, shape: KconfigShape, value: &str) -> Result<Vec<u8>, Error> {
    let bad = |what: &str| {
        err(format!(
            "extern {name:?} __kconfig: the kernel's value {value:?} {what}"
        ))
    };
    match shape {
        KconfigShape::Bool => match value {
            "y" | "m" => Ok(vec![1]),
            "n" => Ok(vec![0]),
            _ => bad("is not y, m or n (a bool extern)"),
        },
        KconfigShape::Tristate => {
            let number: u32 = match value {
                "n" => 0,
                "y" => 1,
                "m" => 2,
                _ => return bad("is not y, m or n (a tristate extern)"),
            };
            Ok(number.to_le_bytes().to_vec())
        }
        KconfigShape::Char => match value.as_bytes() {
            [letter] => Ok(vec![*letter]),
            _ => bad("is not one character (a char extern)"),
        },
        KconfigShape::Chars(length) => {
            if length > MAX_KCONFIG_CHARS {
                return bad(&format!(
                    "cannot fill a char array of {length} bytes (pyaya fills at most {MAX_KCONFIG_CHARS})"
                ));
            }
            let Some(text) = value
                .strip_prefix('"')
                .and_then(|rest| rest.strip_suffix('"'))
            else {
                return bad("is not a quoted string (a char array extern)");
            };
            let mut bytes = vec![0_u8; length as usize];
            let keep = text.len().min((length as usize).saturating_sub(1));
            if let (Some(target), Some(source)) =
                (bytes.get_mut(..keep), text.as_bytes().get(..keep))
            {
                target.copy_from_slice(source);
            }
            Ok(bytes)
        }
        KconfigShape::Int { size, signed } => {
            let parsed = if let Some(hex) = value
                .strip_prefix("0x")
                .or_else(|| value.strip_prefix("0X"))
            {
                i128::from_str_radix(hex, 16).ok()
            } else {
                value.parse::<i128>().ok()
            };
            let Some(number) = parsed else {
                return bad("is not a number (an integer extern)");
            };
            let (low, high): (i128, i128) = match (size, signed) {
                (1, true) => (i8::MIN.into(), i8::MAX.into()),
                (1, false) => (0, u8::MAX.into()),
                (2, true) => (i16::MIN.into(), i16::MAX.into()),
                (2, false) => (0, u16::MAX.into()),
                (4, true) => (i32::MIN.into(), i32::MAX.into()),
                (4, false) => (0, u32::MAX.into()),
                (8, true) => (i64::MIN.into(), i64::MAX.into()),
                (8, false) => (0, u64::MAX.into()),
                _ => return bad(&format!("cannot fill an integer of {size} bytes")),
            };
            if number < low || number > high {
                return bad(&format!("does not fit the extern's {size} bytes"));
            }
            Ok(number
                .to_le_bytes()
                .get(..size as usize)
                .unwrap_or_default()
                .to_vec())
        }
    }
}

/// A copy of the object's bytes under edit; integers in the object's byte order.
struct Editor {
    bytes: Vec<u8>,
    little: bool,
    /// Section headers (`Elf64_Shdr`), written at the end of the file by `finish`.
    headers: Vec<[u8; 64]>,
    /// Section names to (re)write in a new section header string table.
    names: Vec<(usize, String)>,
    shstrndx: usize,
}

impl Editor {
    fn new(data: &[u8], elf: &Elf<'_>) -> Result<Self, Error> {
        let mut editor = Self {
            bytes: data.to_vec(),
            little: elf.header.little_endian,
            headers: Vec::new(),
            names: Vec::new(),
            shstrndx: 0,
        };
        let table = editor.read(40, 8)?;
        let entry_size = editor.read(58, 2)?;
        let count = editor.read(60, 2)?;
        let shstrndx = editor.read(62, 2)?;
        if entry_size != 64
            || count == 0
            || count as usize != elf.sections.len()
            || shstrndx >= 0xff00
        {
            return err(
                "the object's section header table uses extended numbering, which pyaya cannot rewrite",
            );
        }
        editor.shstrndx = shstrndx as usize;
        for index in 0..count {
            let at = add(table, mul(index, 64)?)?;
            let raw: [u8; 64] = span(at, 64)
                .and_then(|range| data.get(range))
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| Error("truncated section header table".into()))?;
            editor.headers.push(raw);
        }
        Ok(editor)
    }

    fn decode(&self, raw: &[u8]) -> u64 {
        let fold = |value: u64, byte: &u8| (value << 8) | u64::from(*byte);
        if self.little {
            raw.iter().rev().fold(0, fold)
        } else {
            raw.iter().fold(0, fold)
        }
    }

    fn encode(&self, value: u64, len: usize) -> Vec<u8> {
        let le = value.to_le_bytes();
        let mut out: Vec<u8> = le.get(..len).unwrap_or_default().to_vec();
        if !self.little {
            out.reverse();
        }
        out
    }

    fn past_end(at: u64) -> Error {
        Error(format!("offset {at} is past the end of the object"))
    }

    /// The integer of `len` bytes at `at + delta`.
    fn read(&self, at: u64, len: usize) -> Result<u64, Error> {
        span(at, len as u64)
            .and_then(|range| self.bytes.get(range))
            .map(|raw| self.decode(raw))
            .ok_or_else(|| Self::past_end(at))
    }

    fn write(&mut self, at: u64, value: u64, len: usize) -> Result<(), Error> {
        let encoded = self.encode(value, len);
        self.patch(at, &encoded)
    }

    fn patch(&mut self, at: u64, data: &[u8]) -> Result<(), Error> {
        span(at, data.len() as u64)
            .and_then(|range| self.bytes.get_mut(range))
            .ok_or_else(|| Self::past_end(at))?
            .copy_from_slice(data);
        Ok(())
    }

    fn set_header(&mut self, index: usize, at: usize, value: u64, len: usize) {
        let encoded = self.encode(value, len);
        if let Some(field) = self
            .headers
            .get_mut(index)
            .and_then(|header| header.get_mut(span(at as u64, len as u64)?))
        {
            field.copy_from_slice(&encoded);
        }
    }

    fn header_field(&self, index: usize, at: usize, len: usize) -> u64 {
        self.headers
            .get(index)
            .and_then(|header| header.get(span(at as u64, len as u64)?))
            .map_or(0, |raw| self.decode(raw))
    }

    fn append(&mut self, data: &[u8]) -> u64 {
        let padded = self.bytes.len().next_multiple_of(8);
        self.bytes.resize(padded, 0);
        let at = self.bytes.len() as u64;
        self.bytes.extend_from_slice(data);
        at
    }

    /// Gives section `index` new contents, at the end of the file.
    fn replace_section(&mut self, index: usize, data: &[u8]) {
        let at = self.append(data);
        self.set_header(index, 24, at, 8);
        self.set_header(index, 32, data.len() as u64, 8);
    }

    fn add_section(&mut self, name: &str, kind: u32, flags: u64, data: &[u8], align: u64) -> usize {
        let at = self.append(data);
        let index = self.headers.len();
        self.headers.push([0; 64]);
        self.set_header(index, 4, u64::from(kind), 4);
        self.set_header(index, 8, flags, 8);
        self.set_header(index, 24, at, 8);
        self.set_header(index, 32, data.len() as u64, 8);
        self.set_header(index, 48, align, 8);
        self.names.push((index, name.to_owned()));
        index
    }

    fn finish(mut self) -> Result<Vec<u8>, Error> {
        if !self.names.is_empty() {
            let offset = self.header_field(self.shstrndx, 24, 8);
            let size = self.header_field(self.shstrndx, 32, 8);
            let mut strings = span(offset, size)
                .and_then(|range| self.bytes.get(range))
                .ok_or_else(|| Error("truncated section name table".into()))?
                .to_vec();
            for (index, name) in std::mem::take(&mut self.names) {
                let at = strings.len() as u64;
                strings.extend_from_slice(name.as_bytes());
                strings.push(0);
                self.set_header(index, 0, at, 4);
            }
            self.replace_section(self.shstrndx, &strings);
        }
        let count = self.headers.len() as u64;
        if count >= 0xff00 {
            return err("too many sections to rewrite the object");
        }
        let headers: Vec<u8> = self.headers.concat();
        let table = self.append(&headers);
        self.write(40, table, 8)?;
        self.write(60, count, 2)?;
        Ok(self.bytes)
    }
}

/// The `.BTF` section under edit: records patched in place, strings appended.
struct BtfEdit {
    bytes: Vec<u8>,
    little: bool,
    types_start: usize,
}

impl BtfEdit {
    fn new(data: &[u8]) -> Result<Self, Error> {
        let little = matches!(data.get(0..2), Some([0x9f, 0xeb]));
        let mut edit = Self {
            bytes: data.to_vec(),
            little,
            types_start: 0,
        };
        let header = edit.word(4)?;
        edit.types_start = usize::try_from(add(u64::from(header), u64::from(edit.word(8)?))?)
            .map_err(|_| Error("the object's BTF header is too large".into()))?;
        Ok(edit)
    }

    fn word(&self, at: usize) -> Result<u32, Error> {
        word_at(&self.bytes, at as u64, self.little).ok_or_else(|| Error("truncated BTF".into()))
    }

    fn set_word(&mut self, at: usize, value: u32) -> Result<(), Error> {
        let raw = if self.little {
            value.to_le_bytes()
        } else {
            value.to_be_bytes()
        };
        span(at as u64, 4)
            .and_then(|range| self.bytes.get_mut(range))
            .ok_or_else(|| Error("truncated BTF".into()))?
            .copy_from_slice(&raw);
        Ok(())
    }

    /// Word `word` of type `id`'s record (0 is `name_off`, 1 `info`, 2 `size`/`type`, then the kind's words).
    fn record(btf: &Btf, id: u32, word: usize) -> Result<u64, Error> {
        let offset = btf
            .record_offset(id)
            .ok_or_else(|| Error(format!("BTF type {id} does not exist")))?;
        add(offset as u64, mul(word as u64, 4)?)
    }

    fn set(&mut self, btf: &Btf, id: u32, word: usize, value: u32) -> Result<(), Error> {
        let at = add(self.types_start as u64, Self::record(btf, id, word)?)?;
        let at = usize::try_from(at).map_err(|_| Error("truncated BTF".into()))?;
        self.set_word(at, value)
    }

    /// Appends `text` to the string section, which must end the blob (as every compiler lays it out).
    fn add_string(&mut self, text: &str) -> Result<u32, Error> {
        let header = u64::from(self.word(4)?);
        let (offset, length) = (u64::from(self.word(16)?), self.word(20)?);
        if add(add(header, offset)?, u64::from(length))? != self.bytes.len() as u64 {
            return err(
                "the object's BTF strings do not end its .BTF section, so pyaya cannot add to them",
            );
        }
        let grown = u32::try_from(text.len())
            .ok()
            .and_then(|added| length.checked_add(added)?.checked_add(1))
            .ok_or_else(|| Error("the object's BTF strings would outgrow 4 GiB".into()))?;
        self.bytes.extend_from_slice(text.as_bytes());
        self.bytes.push(0);
        self.set_word(20, grown)?;
        Ok(length)
    }
}

/// One info area of `.BTF.ext` (func info, line info or CO-RE relocations): its record blocks lie in
/// `first_block..end`, each a section name offset, a record count, then that many records of `record_size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ExtArea {
    /// Which area: 0 func info, 1 line info, 2 CO-RE relocations.
    which: usize,
    /// The area's first byte (its record size word) and its end, in the section.
    start: u64,
    end: u64,
    first_block: u64,
    record_size: u64,
}

/// The non-empty info areas of a `.BTF.ext` section, each checked to lie inside it.
fn ext_areas(ext: &[u8], little: bool) -> Result<Vec<ExtArea>, Error> {
    let truncated = || Error("truncated .BTF.ext".into());
    let word = |at: u64| word_at(ext, at, little).ok_or_else(truncated);
    let header = u64::from(word(4)?);
    // (offset word, length word) of each info area in the header: func info, line info, then CO-RE relocations.
    let mut fields = vec![(8, 12), (16, 20)];
    if header >= 32 {
        fields.push((24, 28));
    }
    let mut areas = Vec::new();
    for (which, (offset_at, length_at)) in fields.into_iter().enumerate() {
        let start = add(header, u64::from(word(offset_at)?))?;
        let end = add(start, u64::from(word(length_at)?))?;
        if end <= start {
            continue;
        }
        if end > ext.len() as u64 {
            return Err(truncated());
        }
        areas.push(ExtArea {
            which,
            start,
            end,
            first_block: add(start, 4)?,
            record_size: u64::from(word(start)?),
        });
    }
    Ok(areas)
}

/// Points every `.BTF.ext` record block (func info, line info, CO-RE relocations) naming a renamed section at its
/// new name: `renamed` gives the new name's string offset for a block's name offset (`None`: unchanged).
fn rename_ext_sections(
    ext: &mut [u8],
    little: bool,
    renamed: &mut dyn FnMut(u32) -> Result<Option<u32>, Error>,
) -> Result<(), Error> {
    let truncated = || Error("truncated .BTF.ext".into());
    for area in ext_areas(ext, little)? {
        let mut at = area.first_block;
        while add(at, 8)? <= area.end {
            let name = word_at(ext, at, little).ok_or_else(truncated)?;
            let count = word_at(ext, add(at, 4)?, little).ok_or_else(truncated)?;
            if let Some(new) = renamed(name)? {
                let raw = if little {
                    new.to_le_bytes()
                } else {
                    new.to_be_bytes()
                };
                span(at, 4)
                    .and_then(|range| ext.get_mut(range))
                    .ok_or_else(truncated)?
                    .copy_from_slice(&raw);
            }
            at = add(add(at, 8)?, mul(u64::from(count), area.record_size)?)?;
        }
    }
    Ok(())
}

/// The first INT of the BTF (`int` preferred): the type libbpf gives extern VARs and the struct `.ksyms` becomes.
fn int_type(btf: &Btf) -> Option<(u32, u32)> {
    let ints: Vec<(u32, u32)> = (1..btf.len() as u32)
        .filter_map(|id| btf.get(id).map(|t| (id, t)))
        .filter(|(_, t)| t.kind == Kind::Int && matches!(t.size_or_type, 1 | 2 | 4 | 8))
        .map(|(id, t)| (id, t.size_or_type))
        .collect();
    ints.iter()
        .copied()
        .find(|&(id, _)| btf.name_of(id) == "int")
        .or_else(|| ints.first().copied())
}

/// A DATASEC of externs rewritten as an anonymous struct of ints, one per extern (same record length): the kernel
/// refuses extern entries in a DATASEC, and aya looks for an ELF section of a DATASEC it has to size.
fn datasec_to_struct(
    edit: &mut BtfEdit,
    btf: &Btf,
    section: u32,
    (int_id, int_size): (u32, u32),
) -> Result<(), Error> {
    let t = btf.type_by_id(section)?;
    let entries: Vec<u32> = btf.vars(&t).map(|var| var.type_id).collect();
    edit.set(btf, section, 0, 0)?;
    edit.set(
        btf,
        section,
        1,
        ((Kind::Struct as u32) << 24) | u32::from(t.vlen),
    )?;
    let overflow = || Error("the object's extern section is too large to describe".into());
    let size = u32::try_from(entries.len().max(1))
        .ok()
        .and_then(|count| count.checked_mul(int_size))
        .ok_or_else(overflow)?;
    edit.set(btf, section, 2, size)?;
    for (index, entry) in entries.iter().enumerate() {
        let name = btf.get(*entry).map_or(0, |t| t.name);
        let base = index
            .checked_mul(3)
            .and_then(|words| words.checked_add(3))
            .ok_or_else(overflow)?;
        let bit_offset = u32::try_from(index)
            .ok()
            .and_then(|index| index.checked_mul(int_size)?.checked_mul(8))
            .ok_or_else(overflow)?;
        edit.set(btf, section, base, name)?;
        edit.set(
            btf,
            section,
            base.checked_add(1).ok_or_else(overflow)?,
            int_id,
        )?;
        edit.set(
            btf,
            section,
            base.checked_add(2).ok_or_else(overflow)?,
            bit_offset,
        )?;
    }
    Ok(())
}

/// An extern's instruction rewrite, decided once per extern.
#[derive(Debug, Clone, Copy)]
enum Resolution {
    /// `BPF_PSEUDO_BTF_ID` (a typed VAR, or a kfunc's address in `bpf_ksym_exists`), or a kfunc call.
    BtfId(u32),
    Address(u64),
    /// A weak extern the kernel lacks: loads read 0; kfunc calls are poisoned with this index.
    Missing(i32),
}

fn set_src_reg(regs: u8, src: u8, little: bool) -> u8 {
    if little {
        (regs & 0x0f) | (src << 4)
    } else {
        (regs & 0xf0) | (src & 0x0f)
    }
}

fn src_reg(regs: u8, little: bool) -> u8 {
    if little {
        regs >> 4
    } else {
        regs & 0x0f
    }
}

/// Rewrites the instruction at `at` (file offset) that refers to the extern `name`.
fn patch_instruction(
    editor: &mut Editor,
    at: u64,
    name: &str,
    resolution: Resolution,
) -> Result<(), Error> {
    let code = editor.read(at, 1)? as u8;
    let regs = editor.read(add(at, 1)?, 1)? as u8;
    let little = editor.little;
    match code {
        LD_IMM64 => {
            let (src, low, high) = match resolution {
                Resolution::BtfId(id) => (BPF_PSEUDO_BTF_ID, u64::from(id), 0),
                Resolution::Address(address) => (0, address & 0xffff_ffff, address >> 32),
                Resolution::Missing(_) => (0, 0, 0),
            };
            editor.write(add(at, 1)?, u64::from(set_src_reg(regs, src, little)), 1)?;
            editor.write(add(at, 4)?, low, 4)?;
            editor.write(add(at, 12)?, high, 4)?;
        }
        CALL if src_reg(regs, little) == BPF_PSEUDO_CALL => match resolution {
            Resolution::BtfId(id) => {
                editor.write(add(at, 1)?, u64::from(set_src_reg(regs, BPF_PSEUDO_KFUNC_CALL, little)), 1)?;
                editor.write(add(at, 2)?, 0, 2)?;
                editor.write(add(at, 4)?, u64::from(id), 4)?;
            }
            Resolution::Missing(index) => {
                let poison = POISON_KFUNC_CALL
                    .checked_add(index)
                    .ok_or_else(|| Error("too many __ksym externs".into()))?;
                editor.write(add(at, 1)?, u64::from(set_src_reg(regs, 0, little)), 1)?;
                editor.write(add(at, 2)?, 0, 2)?;
                editor.write(add(at, 4)?, u64::from(poison as u32), 4)?;
            }
            Resolution::Address(_) => {
                return err(format!(
                    "extern {name:?} __ksym is called but declared as a variable: declare it as a function"
                ))
            }
        },
        _ => {
            return err(format!(
                "extern {name:?} is used by an instruction (opcode {code:#04x}) pyaya cannot relocate"
            ))
        }
    }
    Ok(())
}

/// Each relocation of a program section (`(file offset of the instruction, symbol index)`); entries whose
/// instruction lies outside its section are skipped (aya-obj then refuses the object naming them).
fn program_relocations(elf: &Elf<'_>, little: bool) -> Vec<(u64, usize)> {
    let mut found = Vec::new();
    for section in elf.sections.iter().filter(|s| s.kind == SHT_REL) {
        let Some(target) = elf.sections.get(section.info as usize) else {
            continue;
        };
        if target.flags & SHF_EXECINSTR == 0 {
            continue;
        }
        for entry in elf.section_data(section).chunks_exact(16) {
            let value = |raw: &[u8]| {
                let fold = |v: u64, b: &u8| (v << 8) | u64::from(*b);
                if little {
                    raw.iter().rev().fold(0, fold)
                } else {
                    raw.iter().fold(0, fold)
                }
            };
            let offset = value(entry.get(0..8).unwrap_or_default());
            let info = value(entry.get(8..16).unwrap_or_default());
            // The instruction's 8 bytes must lie in the section (whose bytes the ELF reader checked are in the file).
            if offset.checked_add(8).is_none_or(|end| end > target.size) {
                continue;
            }
            let Some(at) = target.offset.checked_add(offset) else {
                continue;
            };
            found.push((at, (info >> 32) as usize));
        }
    }
    found
}

fn resolve_ksym(ksym: &Ksym, index: i32, kernel: &dyn Kernel) -> Result<Resolution, Error> {
    let found = match ksym.kind {
        // The verifier finds a typed variable's address by name in kallsyms, which lists data symbols only with
        // CONFIG_KALLSYMS_ALL: refused there, it would fail the whole load with "failed to find the address".
        KsymKind::Typed => match kernel.btf_id(&ksym.name, false) {
            Some(_) if kernel.address(&ksym.name).is_none() && ksym.weak => None,
            Some(_) if kernel.address(&ksym.name).is_none() => {
                return err(format!(
                    "extern {:?} __ksym (variable): the kernel's BTF has it but /proc/kallsyms does not (a kernel \
                     without CONFIG_KALLSYMS_ALL lists no data symbols, or this process cannot read the \
                     addresses), and the verifier resolves typed ksyms through kallsyms; declare it __weak to \
                     load without it",
                    ksym.name
                ));
            }
            found => found.map(Resolution::BtfId),
        },
        KsymKind::Func => kernel.btf_id(&ksym.name, true).map(Resolution::BtfId),
        KsymKind::Untyped => kernel.address(&ksym.name).map(Resolution::Address),
    };
    match found {
        Some(resolution) => Ok(resolution),
        None if ksym.weak => Ok(Resolution::Missing(index)),
        None => {
            let (what, place) = match ksym.kind {
                KsymKind::Typed => (
                    "variable",
                    "a VAR in the kernel's BTF (/sys/kernel/btf/vmlinux)",
                ),
                KsymKind::Func => (
                    "kfunc",
                    "a FUNC in the kernel's BTF (/sys/kernel/btf/vmlinux)",
                ),
                KsymKind::Untyped => ("symbol", "an address in /proc/kallsyms"),
            };
            err(format!(
                "extern {:?} __ksym ({what}): this kernel has no such symbol (looked for {place}; symbols of \
                 kernel modules are not resolved by pyaya); declare it __weak to load without it",
                ksym.name
            ))
        }
    }
}

/// Whether the object may have something for `prepare` to rewrite: a libbpf classifier or multi-point probe
/// section, CO-RE records, or a `.ksyms` or `.kconfig` DATASEC name among its `.BTF` strings. A scan of the
/// section header table and one byte search, without parsing the ELF file or its BTF, so that objects with nothing
/// to rewrite (most aya objects) pay next to nothing. Anything it cannot read counts as "maybe": `prepare` then decides, and reports what is wrong.
pub fn needs_pass(data: &[u8]) -> bool {
    scan_sections(data, |name, bytes, little| {
        if renamed_section(std::str::from_utf8(name).ok()?).is_some() {
            return Some(true);
        }
        if name == b".BTF.ext" && has_core_records(bytes?, little)? {
            return Some(true);
        }
        Some(name == b".BTF" && names_extern_sections(bytes?))
    })
    .unwrap_or(true)
}

/// Whether a `.BTF` section's bytes hold the name of an extern DATASEC (`.ksyms`, `.kconfig`).
fn names_extern_sections(btf: &[u8]) -> bool {
    // One pass over the NUL-separated runs (a byte window search per name cost more than parsing small objects).
    btf.split(|&byte| byte == 0)
        .any(|run| run == b".ksyms" || run == b".kconfig")
}

/// Whether the object may declare `__ksym`/`__kconfig` externs (by the same scan): `externs` then reads them.
pub fn may_have_externs(data: &[u8]) -> bool {
    scan_sections(data, |name, bytes, _| {
        Some(name == b".BTF" && names_extern_sections(bytes?))
    })
    .unwrap_or(true)
}

/// Whether the object has CO-RE relocation records (a `.BTF.ext` whose header gives them a length), by the same
/// scan: the loader reads the target BTF only for those.
pub fn has_core_relocations(data: &[u8]) -> bool {
    scan_sections(data, |name, bytes, little| {
        Some(name == b".BTF.ext" && has_core_records(bytes?, little)?)
    })
    .unwrap_or(true)
}

/// Calls `found(name, bytes, little_endian)` for each section of an ELF64 object, reading only the section header
/// table and the name table, until it answers true. `None` when the table cannot be read ("maybe": callers then
/// let the full parse decide); `Some(false)` for files that are not ELF64.
fn scan_sections(
    data: &[u8],
    mut found: impl FnMut(&[u8], Option<&[u8]>, bool) -> Option<bool>,
) -> Option<bool> {
    if data.get(..4)? != b"\x7fELF" || *data.get(4)? != 2 {
        return Some(false);
    }
    let little = *data.get(5)? != 2;
    let read = |at: u64, len: u64| -> Option<u64> {
        let raw = data.get(span(at, len)?)?;
        let fold = |value: u64, byte: &u8| (value << 8) | u64::from(*byte);
        Some(if little {
            raw.iter().rev().fold(0, fold)
        } else {
            raw.iter().fold(0, fold)
        })
    };
    let (table, entry_size, count, names) =
        (read(40, 8)?, read(58, 2)?, read(60, 2)?, read(62, 2)?);
    if entry_size != 64 || count == 0 || names >= 0xff00 {
        return None;
    }
    let header = |index: u64, at: u64, len: u64| {
        read(
            table.checked_add(index.checked_mul(64)?)?.checked_add(at)?,
            len,
        )
    };
    let bytes_of = |index: u64| -> Option<&[u8]> {
        data.get(span(header(index, 24, 8)?, header(index, 32, 8)?)?)
    };
    let names = bytes_of(names)?;
    for index in 0..count {
        let name_at = usize::try_from(header(index, 0, 4)?).ok()?;
        let name = names.get(name_at..)?;
        let name = name.get(..name.iter().position(|&b| b == 0)?)?;
        if found(name, bytes_of(index), little)? {
            return Some(true);
        }
    }
    Some(false)
}

/// Whether a `.BTF.ext` section has CO-RE relocation records (its header's `core_relo_len`).
fn has_core_records(ext: &[u8], little: bool) -> Option<bool> {
    let header = word_at(ext, 4, little)?;
    Some(header >= 32 && word_at(ext, 28, little)? > 0)
}

/// The helper id aya (like libbpf) calls in place of an unresolvable CO-RE relocation's instruction.
pub const CORE_POISON: i32 = core_relo::POISON;

/// A CO-RE relocation the target BTF cannot satisfy: aya poisons its instruction, which the verifier refuses
/// where the instruction is reachable (not behind a `bpf_core_field_exists()` that is false).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreFailure {
    /// The program (or subprogram) the instruction belongs to: the function symbol around it.
    pub function: Option<String>,
    /// Its ELF section, as the object names it.
    pub section: String,
    pub insn_off: u32,
    /// The instruction's index in its function (what the verifier's log counts from, for a program's own code).
    pub insn_index: Option<u64>,
    /// `CO-RE relocation of struct task_struct.comm (access 0:2) failed: ...; guard it with ...`.
    pub message: String,
}

/// What `prepare_for_load` gives: the rewritten object (`None`: unchanged), and the CO-RE relocations the target
/// cannot satisfy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prepared {
    pub data: Option<Vec<u8>>,
    pub core_failures: Vec<CoreFailure>,
}

/// The object with what aya refuses rewritten (see the module's documentation), or `None` when there is nothing to
/// rewrite. Without `kernel` (inspection, no kernel at hand) only the sections are renamed: aya-obj's parser then
/// reads the object, externs and all.
pub fn prepare(data: &[u8], kernel: Option<&dyn Kernel>) -> Result<Option<Vec<u8>>, Error> {
    prepare_for_load(data, kernel).map(|prepared| prepared.data)
}

/// `prepare`, with the CO-RE relocations the kernel's target BTF cannot satisfy.
pub fn prepare_for_load(data: &[u8], kernel: Option<&dyn Kernel>) -> Result<Prepared, Error> {
    if !needs_pass(data) {
        return Ok(Prepared::default());
    }
    let Ok(elf) = Elf::parse(data) else {
        return Ok(Prepared::default());
    };
    if !elf.header.is_64 {
        return Ok(Prepared::default());
    }
    let renames: Vec<(usize, String)> = elf
        .sections
        .iter()
        .filter_map(|s| renamed_section(&s.name).map(|name| (s.index, name)))
        .collect();
    let btf = object_btf(&elf);
    let externs = match (&btf, kernel) {
        (Some(btf), Some(_)) => externs_of(&elf, btf)?,
        _ => Externs::default(),
    };
    let little = elf.header.little_endian;
    let ext_section = elf.section(".BTF.ext");
    let target = kernel.and_then(|kernel| kernel.target_btf());
    let relocations = match (btf.as_ref(), ext_section, target) {
        (Some(btf), Some(ext), Some(target)) => {
            core_relo::plan(&elf, btf, elf.section_data(ext), little, target)?
        }
        _ => core_relo::Plan::default(),
    };
    if renames.is_empty() && externs.is_empty() && relocations.is_empty() {
        return Ok(Prepared {
            data: None,
            core_failures: relocations.failures,
        });
    }
    if let Some((section, name)) = externs.unsupported.first() {
        return err(format!(
            "extern {name:?} is in section {section:?}: pyaya (like libbpf) resolves only __ksym and __kconfig \
             externs; define the symbol in the object"
        ));
    }
    let mut editor = Editor::new(data, &elf)?;
    let btf_section: Option<&Section> = elf.section(".BTF");
    let mut btf_edit = match btf_section {
        Some(section) => Some(BtfEdit::new(elf.section_data(section))?),
        None => None,
    };

    // Classifier and multi-point probe sections: the ELF name, and the .BTF.ext blocks that name them.
    let mut new_names: HashMap<String, String> = HashMap::new();
    for (index, name) in &renames {
        editor.names.push((*index, name.clone()));
        if let Some(old) = elf.sections.get(*index) {
            new_names.insert(old.name.clone(), name.clone());
        }
    }
    let mut ext_bytes = ext_section.map(|ext| elf.section_data(ext).to_vec());
    if let (false, Some(edit), Some(btf), Some(bytes)) = (
        new_names.is_empty(),
        btf_edit.as_mut(),
        btf.as_ref(),
        ext_bytes.as_mut(),
    ) {
        let mut added: HashMap<String, u32> = HashMap::new();
        let mut renamed = |offset: u32| -> Result<Option<u32>, Error> {
            let Some(new) = new_names.get(&*btf.string(offset)) else {
                return Ok(None);
            };
            if let Some(&at) = added.get(new) {
                return Ok(Some(at));
            }
            let at = edit.add_string(new)?;
            added.insert(new.clone(), at);
            Ok(Some(at))
        };
        rename_ext_sections(bytes, little, &mut renamed)?;
    }

    // CO-RE records aya refuses: their instructions patched (or poisoned), the records removed.
    for patch in &relocations.patches {
        core_relo::apply(&mut editor, patch)?;
    }
    if let (false, Some(bytes)) = (relocations.removed.is_empty(), ext_bytes.as_mut()) {
        *bytes = core_relo::remove_records(bytes, little, &relocations.removed)?;
    }
    if let (Some(bytes), Some(ext)) = (ext_bytes, ext_section) {
        if bytes.len() as u64 == ext.size {
            editor.patch(ext.offset, &bytes)?;
        } else {
            editor.replace_section(ext.index, &bytes);
        }
    }

    if let (Some(btf), Some(kernel)) = (btf.as_ref(), kernel) {
        if !externs.ksyms.is_empty() || !externs.kconfig.is_empty() {
            let edit = btf_edit
                .as_mut()
                .ok_or_else(|| Error("the object's externs need its .BTF".into()))?;
            let int = int_type(btf).ok_or_else(|| {
                Error("the object's BTF has no integer type to describe its externs with".into())
            })?;
            rewrite_externs(&mut editor, &elf, btf, edit, &externs, kernel, int)?;
        }
    }

    if let (Some(edit), Some(section)) = (btf_edit, btf_section) {
        if edit.bytes.len() as u64 == section.size {
            editor.patch(section.offset, &edit.bytes)?;
        } else {
            editor.replace_section(section.index, &edit.bytes);
        }
    }
    Ok(Prepared {
        data: Some(editor.finish()?),
        core_failures: relocations.failures,
    })
}

fn rewrite_externs(
    editor: &mut Editor,
    elf: &Elf<'_>,
    btf: &Btf,
    edit: &mut BtfEdit,
    externs: &Externs,
    kernel: &dyn Kernel,
    int: (u32, u32),
) -> Result<(), Error> {
    let little = editor.little;
    // BTF: extern linkage becomes what the kernel takes (libbpf does the same).
    for ksym in &externs.ksyms {
        if ksym.kind == KsymKind::Func {
            let t = btf.type_by_id(ksym.type_id)?;
            edit.set(btf, ksym.type_id, 1, (t.kind as u32) << 24 | 1)?;
        } else {
            edit.set(btf, ksym.type_id, 2, int.0)?;
            edit.set(btf, ksym.type_id, 3, 1)?;
        }
    }
    for kconfig in &externs.kconfig {
        edit.set(btf, kconfig.type_id, 3, 1)?;
    }
    for id in 1..btf.len() as u32 {
        if let Some(t) = btf.get(id) {
            if t.kind == Kind::Datasec && matches!(&*btf.string(t.name), ".ksyms" | ".kconfig") {
                datasec_to_struct(edit, btf, id, int)?;
            }
        }
    }

    // Instructions that refer to a ksym.
    let mut resolutions: HashMap<&str, Resolution> = HashMap::new();
    for (index, ksym) in externs.ksyms.iter().enumerate() {
        let index = i32::try_from(index).map_err(|_| Error("too many __ksym externs".into()))?;
        resolutions.insert(ksym.name.as_str(), resolve_ksym(ksym, index, kernel)?);
    }
    for (at, symbol) in program_relocations(elf, little) {
        let Some(symbol) = elf.symbols.get(symbol) else {
            continue;
        };
        if symbol.section.is_some() {
            continue;
        }
        if let Some(resolution) = resolutions.get(symbol.name.as_str()) {
            patch_instruction(editor, at, &symbol.name, *resolution)?;
        }
    }

    // Kconfig values: a new .rodata.kconfig section, each extern symbol defined in it.
    if !externs.kconfig.is_empty() {
        let mut data: Vec<u8> = Vec::new();
        let mut placed: HashMap<&str, (u64, u32)> = HashMap::new();
        for kconfig in &externs.kconfig {
            let align = kconfig.shape.align().max(1) as usize;
            let padded = data
                .len()
                .checked_next_multiple_of(align)
                .ok_or_else(|| Error("the kconfig section overflows".into()))?;
            data.resize(padded, 0);
            let offset = data.len();
            // Python's config reader gives "n" for "is not set": unset, for the kinds that are not y/m/n.
            let given = kernel.kconfig(&kconfig.name).filter(|text| {
                text != "n"
                    || !matches!(
                        kconfig.shape,
                        KconfigShape::Int { .. } | KconfigShape::Chars(_)
                    )
            });
            let value = match given {
                // kconfig_value's integers are little-endian: a big-endian object reads them the other way.
                Some(text) => {
                    let mut value = kconfig_value(&kconfig.name, kconfig.shape, &text)?;
                    if !little
                        && matches!(
                            kconfig.shape,
                            KconfigShape::Int { .. } | KconfigShape::Tristate
                        )
                    {
                        value.reverse();
                    }
                    value
                }
                None if kconfig.weak => vec![0; kconfig.shape.size() as usize],
                None => {
                    return err(format!(
                        "extern {:?} __kconfig: the kernel's config does not set it (read from /proc/config.gz \
                         or /boot/config-$(uname -r)); declare it __weak to read 0 instead",
                        kconfig.name
                    ))
                }
            };
            data.extend_from_slice(&value);
            placed.insert(kconfig.name.as_str(), (offset as u64, kconfig.shape.size()));
        }
        if data.is_empty() {
            data.push(0);
        }
        let index = editor.add_section(KCONFIG_SECTION, SHT_PROGBITS, SHF_ALLOC, &data, 8);
        let symtab = elf
            .sections
            .iter()
            .find(|s| s.kind == crate::elf::SHT_SYMTAB)
            .ok_or_else(|| Error("the object has no symbol table".into()))?;
        for symbol in &elf.symbols {
            if symbol.section.is_some() {
                continue;
            }
            let Some(&(offset, size)) = placed.get(symbol.name.as_str()) else {
                continue;
            };
            let at = add(symtab.offset, mul(symbol.index as u64, 24)?)?;
            editor.write(
                add(at, 4)?,
                u64::from((symbol.binding << 4) | STT_OBJECT),
                1,
            )?;
            editor.write(add(at, 6)?, index as u64, 2)?;
            editor.write(add(at, 8)?, offset, 8)?;
            editor.write(add(at, 16)?, u64::from(size), 8)?;
        }
    }
    Ok(())
}

#[path = "object_pass_core.rs"]
mod core_relo;

#[cfg(test)]
#[path = "object_pass_tests.rs"]
mod pass_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifier_sections_are_libbpfs() {
        assert_eq!(classifier_section("tc").as_deref(), Some("classifier/tc"));
        assert_eq!(
            classifier_section("tc/egress").as_deref(),
            Some("classifier/tc/egress")
        );
        assert_eq!(classifier_section("classifier"), None);
        assert_eq!(classifier_section("tc/other"), None);
        assert_eq!(classifier_section("tcp"), None);
    }

    #[test]
    fn multi_probe_sections_become_single_probes() {
        assert_eq!(multi_section("uprobe.multi").as_deref(), Some("uprobe"));
        assert_eq!(
            multi_section("uprobe.multi/self/proc/exe:trigger").as_deref(),
            Some("uprobe/self/proc/exe:trigger")
        );
        assert_eq!(
            multi_section("uretprobe.multi.s").as_deref(),
            Some("uretprobe.s")
        );
        assert_eq!(
            multi_section("kretprobe.multi/tcp_*").as_deref(),
            Some("kretprobe/tcp_*")
        );
        assert_eq!(multi_section("uprobe"), None);
        assert_eq!(multi_section("uprobe/multi"), None);
        assert_eq!(multi_section("kprobe.multix"), None);
        let probe = multi_probe("uretprobe.multi.s/x").unwrap();
        assert!(!probe.kernel && probe.retprobe && probe.sleepable);
        let probe = multi_probe("kprobe.multi/tcp_*").unwrap();
        assert!(probe.kernel && !probe.retprobe && !probe.sleepable);
        assert_eq!(renamed_section("tc").as_deref(), Some("classifier/tc"));
    }

    #[test]
    fn kconfig_values_as_libbpf_stores_them() {
        assert_eq!(kconfig_value("X", KconfigShape::Bool, "y").unwrap(), [1]);
        assert_eq!(
            kconfig_value("X", KconfigShape::Tristate, "m").unwrap(),
            [2, 0, 0, 0]
        );
        assert_eq!(kconfig_value("X", KconfigShape::Char, "n").unwrap(), [b'n']);
        assert_eq!(
            kconfig_value(
                "X",
                KconfigShape::Int {
                    size: 4,
                    signed: false
                },
                "0x10"
            )
            .unwrap(),
            [16, 0, 0, 0]
        );
        assert_eq!(
            kconfig_value(
                "X",
                KconfigShape::Int {
                    size: 2,
                    signed: true
                },
                "-2"
            )
            .unwrap(),
            [0xfe, 0xff]
        );
        assert!(kconfig_value(
            "X",
            KconfigShape::Int {
                size: 1,
                signed: false
            },
            "256"
        )
        .is_err());
        assert_eq!(
            kconfig_value("X", KconfigShape::Chars(4), "\"hello\"").unwrap(),
            *b"hel\0"
        );
        let refused = kconfig_value("CONFIG_HZ", KconfigShape::Bool, "250").unwrap_err();
        assert!(refused.0.contains("CONFIG_HZ"), "{refused}");
    }
}
