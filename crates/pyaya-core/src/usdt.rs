//! USDT probes of an ELF file, without Python: the `.note.stapsdt` reader, the address adjustments from a note's
//! link-time addresses to the file offsets uprobes attach at, the argument-string parser (`-4@%eax`,
//! `8@-8(%rbp)`, `4@$5`, `-8@8(%rax,%rdx,8)`, `-4@counter(%rip)`, arm64's `-4@[x29, -12]`), and the encoding
//! of each location's argument specs in the layout of the kernel-side crate (crates/pyaya-usdt).
//!
//! A note holds three addresses as the static linker saw them: the probe's `pc`, the address `base` it recorded
//! for the `.stapsdt.base` section, and the semaphore's. If the file was prelinked, `.stapsdt.base` moved: the
//! difference is added to `pc` and to the semaphore. Uprobes (and the kernel's semaphore reference counter) take
//! offsets in the file, so each address is turned into one through the `PT_LOAD` segment that holds it. Those file
//! offsets are the same for executables, PIE executables and shared libraries, wherever they are mapped.

use std::fmt;

use object::{
    Object as _, ObjectSection as _, ObjectSegment as _, ObjectSymbol as _, SegmentFlags,
};

/// The arguments `<sys/sdt.h>` supports per probe; the kernel-side spec has room for this many.
pub const MAX_ARGS: usize = 12;
/// `ArgSpec.kind` values of crates/pyaya-usdt.
const KIND_CONSTANT: u8 = 1;
const KIND_REGISTER: u8 = 2;
const KIND_MEMORY: u8 = 3;
const NO_REGISTER: u16 = u16::MAX;
/// Bytes of one `ArgSpec` and of one `Spec` in crates/pyaya-usdt.
pub const ARG_SPEC_SIZE: usize = 24;
pub const SPEC_SIZE: usize = ARG_SPEC_SIZE * MAX_ARGS + 8;

const NT_STAPSDT: u32 = 3;
const PF_X: u32 = 1;

/// The machines whose argument strings and `pt_regs` layout this module knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The name `uname -m` gives.
    pub const fn name(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Aarch64 => "aarch64",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "x86_64" | "x86-64" | "amd64" => Some(Self::X86_64),
            "aarch64" | "arm64" => Some(Self::Aarch64),
            _ => None,
        }
    }

    /// The `pt_regs` offset of the instruction pointer, which is the probe's address when a uprobe fires.
    const fn ip_offset(self) -> u16 {
        match self {
            Self::X86_64 => 128,
            Self::Aarch64 => 256,
        }
    }
}

/// A register an argument names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Register {
    /// As the note spells it, without `%` (`eax`, `r8d`, `ah`, `x1`, `w0`, `sp`).
    pub name: String,
    /// Offset of the whole register in the kernel's `pt_regs` (x86-64) or `user_pt_regs` (arm64).
    pub offset: u16,
    /// Bytes of the register the name selects (`eax`: 4, `ax`: 2, `al` and `ah`: 1).
    pub width: u8,
    /// Bit position of the selected part (8 for `ah`, `bh`, `ch`, `dh`; else 0).
    pub shift: u8,
}

/// Where an argument's value is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// The value itself (`$5`, or `5` on arm64).
    Constant(i64),
    /// A register's value (`%eax`, `x1`).
    Register(Register),
    /// User memory at `base + index * scale + displacement`, or at the address of `symbol` plus
    /// `displacement` (`counter(%rip)`, `counter+8`): the note names the symbol, the ELF's symbol table its
    /// address.
    Memory {
        base: Option<Register>,
        index: Option<(Register, u8)>,
        displacement: i64,
        symbol: Option<String>,
    },
}

/// One parsed argument of a probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Argument {
    /// The argument's text in the note (`-4@%eax`).
    pub text: String,
    /// Bytes of the value: 1, 2, 4 or 8 (8 when the note gives no size).
    pub size: u8,
    /// A negative size in the note: the value is sign-extended.
    pub signed: bool,
    pub location: Location,
}

/// An argument string pyaya cannot read, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgError {
    pub text: String,
    pub reason: String,
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.text, self.reason)
    }
}

fn arg_error(text: &str, reason: impl Into<String>) -> ArgError {
    ArgError {
        text: text.to_owned(),
        reason: reason.into(),
    }
}

/// The x86-64 `pt_regs` offset of each general-purpose register (`struct pt_regs` in arch/x86/include/asm/ptrace.h).
const X86_REGISTERS: [(&str, u16); 17] = [
    ("r15", 0),
    ("r14", 8),
    ("r13", 16),
    ("r12", 24),
    ("bp", 32),
    ("bx", 40),
    ("r11", 48),
    ("r10", 56),
    ("r9", 64),
    ("r8", 72),
    ("ax", 80),
    ("cx", 88),
    ("dx", 96),
    ("si", 104),
    ("di", 112),
    ("ip", 128),
    ("sp", 152),
];

fn x86_offset(stem: &str) -> Option<u16> {
    X86_REGISTERS
        .iter()
        .find(|(name, _)| *name == stem)
        .map(|(_, offset)| *offset)
}

/// An x86-64 register by its AT&T name without `%`: every width of the 16 general-purpose registers, and `rip`.
fn x86_register(name: &str) -> Option<Register> {
    let make = |stem: &str, width: u8, shift: u8| {
        x86_offset(stem).map(|offset| Register {
            name: name.to_owned(),
            offset,
            width,
            shift,
        })
    };
    // r8..r15 with their b/w/d suffixes.
    if let Some(rest) = name.strip_prefix('r') {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            let stem = format!("r{digits}");
            return match &rest[digits.len()..] {
                "" => make(&stem, 8, 0),
                "d" => make(&stem, 4, 0),
                "w" => make(&stem, 2, 0),
                "b" | "l" => make(&stem, 1, 0),
                _ => None,
            };
        }
    }
    match name {
        "rip" => make("ip", 8, 0),
        "rax" | "rbx" | "rcx" | "rdx" | "rsi" | "rdi" | "rbp" | "rsp" => make(&name[1..], 8, 0),
        "eax" | "ebx" | "ecx" | "edx" | "esi" | "edi" | "ebp" | "esp" => make(&name[1..], 4, 0),
        "ax" | "bx" | "cx" | "dx" | "si" | "di" | "bp" | "sp" => make(name, 2, 0),
        "al" | "bl" | "cl" | "dl" => make(&format!("{}x", &name[..1]), 1, 0),
        "ah" | "bh" | "ch" | "dh" => make(&format!("{}x", &name[..1]), 1, 8),
        "sil" | "dil" | "bpl" | "spl" => make(&name[..2], 1, 0),
        _ => None,
    }
}

/// An arm64 register: `x0`..`x30`, `w0`..`w30`, `sp`, `wsp` (offsets in `struct user_pt_regs`).
fn arm64_register(name: &str) -> Option<Register> {
    let make = |offset: u16, width: u8| {
        Some(Register {
            name: name.to_owned(),
            offset,
            width,
            shift: 0,
        })
    };
    match name {
        "sp" => return make(248, 8),
        "wsp" => return make(248, 4),
        _ => {}
    }
    let (width, digits) = if let Some(digits) = name.strip_prefix('x') {
        (8, digits)
    } else if let Some(digits) = name.strip_prefix('w') {
        (4, digits)
    } else {
        return None;
    };
    if digits.is_empty() || digits.len() > 2 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let number: u16 = digits.parse().ok()?;
    (number <= 30).then_some(())?;
    make(number * 8, width)
}

/// A decimal or `0x` hexadecimal integer with an optional sign, as assemblers print displacements and constants.
fn parse_integer(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty() {
        return None;
    }
    let magnitude = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        u64::from_str_radix(hex, 16).ok()?
    } else {
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        digits.parse::<u64>().ok()?
    };
    // Constants are bit patterns: 18446744073709551615 is -1 as the probe's 8 bytes.
    Some(if negative {
        (magnitude as i64).wrapping_neg()
    } else {
        magnitude as i64
    })
}

fn is_symbol_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '.'
}

fn is_symbol_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$'
}

/// A displacement: an integer, or a symbol with an optional `+N`/`-N` (`counter`, `table+16`, `buf.0-8`).
fn parse_displacement(text: &str, whole: &str) -> Result<(Option<String>, i64), ArgError> {
    if text.is_empty() {
        return Ok((None, 0));
    }
    if let Some(value) = parse_integer(text) {
        return Ok((None, value));
    }
    if !text.starts_with(is_symbol_start) {
        return Err(arg_error(
            whole,
            format!("{text:?} is neither a number nor a symbol"),
        ));
    }
    let end = text
        .find(|c: char| !is_symbol_char(c))
        .unwrap_or(text.len());
    let (symbol, rest) = text.split_at(end);
    if rest.starts_with('@') {
        return Err(arg_error(
            whole,
            format!("relocation operators ({rest}) are not supported"),
        ));
    }
    let offset = if rest.is_empty() {
        0
    } else if rest.starts_with('+') || rest.starts_with('-') {
        parse_integer(rest).ok_or_else(|| {
            arg_error(
                whole,
                format!("{rest:?} after symbol {symbol} is not a number"),
            )
        })?
    } else {
        return Err(arg_error(
            whole,
            format!("unexpected {rest:?} after symbol {symbol}"),
        ));
    };
    Ok((Some(symbol.to_owned()), offset))
}

/// Splits `[-]N@operand` into (size, signed, operand); a note without a size (old `<sys/sdt.h>`) means 8 bytes.
fn split_size(text: &str) -> Result<(u8, bool, &str), ArgError> {
    let Some((size_text, operand)) = text.split_once('@') else {
        return Ok((8, false, text));
    };
    // `foo@GOTPCREL(%rip)` has an `@` too, but no size before it.
    let (signed, digits) = match size_text.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, size_text),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Ok((8, false, text));
    }
    let size = match digits {
        "1" => 1,
        "2" => 2,
        "4" => 4,
        "8" => 8,
        other => {
            return Err(arg_error(
                text,
                format!("argument size {other} is not 1, 2, 4 or 8 bytes"),
            ))
        }
    };
    if operand.is_empty() {
        return Err(arg_error(text, "nothing after the size"));
    }
    Ok((size, signed, operand))
}

/// Parses one argument string of a probe's note for `arch`.
pub fn parse_argument(text: &str, arch: Arch) -> Result<Argument, ArgError> {
    let (size, signed, operand) = split_size(text)?;
    let location = match arch {
        Arch::X86_64 => parse_x86_operand(operand, text)?,
        Arch::Aarch64 => parse_arm64_operand(operand, text)?,
    };
    Ok(Argument {
        text: text.to_owned(),
        size,
        signed,
        location,
    })
}

fn x86_named_register(name: &str, whole: &str) -> Result<Register, ArgError> {
    let bare = name.strip_prefix('%').ok_or_else(|| {
        arg_error(
            whole,
            format!("{name:?} is not a register (AT&T registers start with %)"),
        )
    })?;
    x86_register(bare).ok_or_else(|| {
        let hint = if ["xmm", "ymm", "zmm", "st"]
            .iter()
            .any(|p| bare.starts_with(p))
        {
            " (floating-point and vector registers are not supported)"
        } else {
            ""
        };
        arg_error(whole, format!("unknown x86-64 register %{bare}{hint}"))
    })
}

/// A register usable in an address: the 64-bit ones (and `%rip` as a base).
fn x86_address_register(name: &str, whole: &str, what: &str) -> Result<Register, ArgError> {
    let register = x86_named_register(name, whole)?;
    if register.width != 8 {
        return Err(arg_error(
            whole,
            format!(
                "{what} register {name} is not a 64-bit register (32-bit addressing is not supported)"
            ),
        ));
    }
    Ok(register)
}

fn parse_x86_operand(operand: &str, whole: &str) -> Result<Location, ArgError> {
    if let Some(constant) = operand.strip_prefix('$') {
        return parse_integer(constant).map(Location::Constant).ok_or_else(|| {
            arg_error(
                whole,
                format!(
                    "the constant {constant:?} is not a number (symbol address constants are not supported)"
                ),
            )
        });
    }
    if operand.starts_with('%') {
        if let Some((segment, _)) = operand.split_once(':') {
            return Err(arg_error(
                whole,
                format!("segment-relative operands ({segment}:...) are not supported"),
            ));
        }
        return x86_named_register(operand, whole).map(Location::Register);
    }
    // disp(base,index,scale), disp(base), (base), (,index,scale), or a bare symbol/number: memory.
    let (displacement_text, registers) = match operand.find('(') {
        Some(open) => {
            let Some(inner) = operand[open + 1..].strip_suffix(')') else {
                return Err(arg_error(whole, "unbalanced parentheses"));
            };
            (&operand[..open], Some(inner))
        }
        None => (operand, None),
    };
    let (symbol, displacement) = parse_displacement(displacement_text, whole)?;
    let Some(registers) = registers else {
        if symbol.is_none() {
            return Err(arg_error(
                whole,
                "absolute numeric addresses are not supported",
            ));
        }
        // A bare symbol (`counter`): the variable's address, as non-PIC code names it.
        return Ok(Location::Memory {
            base: None,
            index: None,
            displacement,
            symbol,
        });
    };
    let parts: Vec<&str> = registers.split(',').map(str::trim).collect();
    let base = match parts.first().copied() {
        None | Some("") => None,
        Some(name) => Some(x86_address_register(name, whole, "base")?),
    };
    let index = match parts.get(1).copied() {
        None | Some("") => None,
        Some(name) => {
            let register = x86_address_register(name, whole, "index")?;
            if register.name == "rsp" || register.name == "rip" {
                return Err(arg_error(
                    whole,
                    format!("%{} cannot be an index register", register.name),
                ));
            }
            let scale = match parts.get(2).copied() {
                None | Some("") => 1,
                Some("1") => 1,
                Some("2") => 2,
                Some("4") => 4,
                Some("8") => 8,
                Some(other) => {
                    return Err(arg_error(
                        whole,
                        format!("scale {other} is not 1, 2, 4 or 8"),
                    ))
                }
            };
            Some((register, scale))
        }
    };
    if parts.len() > 3 || (index.is_none() && parts.len() > 2) {
        return Err(arg_error(
            whole,
            "a memory operand has at most (base,index,scale)",
        ));
    }
    if base.is_none() && index.is_none() {
        return Err(arg_error(whole, "a memory operand without a register"));
    }
    let rip_relative = base.as_ref().is_some_and(|b| b.name == "rip");
    if rip_relative && index.is_some() {
        return Err(arg_error(whole, "%rip cannot be combined with an index"));
    }
    if rip_relative {
        if symbol.is_none() {
            // The CPU adds the displacement to the next instruction's address, which the note does not give.
            return Err(arg_error(
                whole,
                "a numeric %rip-relative displacement is not supported (only symbol(%rip))",
            ));
        }
        return Ok(Location::Memory {
            base: None,
            index: None,
            displacement,
            symbol,
        });
    }
    if let Some(symbol) = symbol {
        return Err(arg_error(
            whole,
            format!("a symbol ({symbol}) with a base or index register other than %rip is not supported"),
        ));
    }
    Ok(Location::Memory {
        base,
        index,
        displacement,
        symbol: None,
    })
}

fn parse_arm64_operand(operand: &str, whole: &str) -> Result<Location, ArgError> {
    if let Some(inner) = operand.strip_prefix('[') {
        let Some(inner) = inner.strip_suffix(']') else {
            return Err(arg_error(whole, "unbalanced brackets"));
        };
        let mut parts = inner.split(',').map(str::trim);
        let base_name = parts.next().unwrap_or_default();
        let base = arm64_register(base_name)
            .filter(|register| register.width == 8)
            .ok_or_else(|| {
                arg_error(
                    whole,
                    format!("{base_name:?} is not a 64-bit arm64 base register"),
                )
            })?;
        let displacement = match parts.next() {
            None => 0,
            Some(offset) => {
                let offset_text = offset.strip_prefix('#').unwrap_or(offset);
                parse_integer(offset_text).ok_or_else(|| {
                    arg_error(
                        whole,
                        format!(
                            "offset {offset:?} is not a number (register offsets are not supported)"
                        ),
                    )
                })?
            }
        };
        if parts.next().is_some() {
            return Err(arg_error(
                whole,
                "extended or shifted addressing modes are not supported",
            ));
        }
        return Ok(Location::Memory {
            base: Some(base),
            index: None,
            displacement,
            symbol: None,
        });
    }
    let constant_text = operand.strip_prefix('#').unwrap_or(operand);
    if let Some(value) = parse_integer(constant_text) {
        return Ok(Location::Constant(value));
    }
    arm64_register(operand)
        .map(Location::Register)
        .ok_or_else(|| arg_error(whole, format!("unknown arm64 register {operand:?}")))
}

/// Splits a note's argument string into arguments: separated by spaces, except inside arm64's brackets
/// (`-4@[x29, -12]`).
pub fn split_arguments(arguments: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = None;
    for (at, c) in arguments.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            c if c.is_ascii_whitespace() && depth == 0 => {
                if let Some(begin) = start.take() {
                    parts.push(&arguments[begin..at]);
                }
                continue;
            }
            _ => {}
        }
        start.get_or_insert(at);
    }
    if let Some(begin) = start {
        parts.push(&arguments[begin..]);
    }
    parts
}

/// One probe location of a file, with its addresses as the note gives them and as uprobes take them.
#[derive(Clone, Debug)]
pub struct Note {
    pub provider: String,
    pub name: String,
    /// The note's `pc`, `base` and semaphore addresses, unchanged (what `readelf -n` shows).
    pub location: u64,
    pub base: u64,
    pub semaphore: u64,
    pub arguments: String,
    /// The probe's address once `.stapsdt.base` says where the file's sections really are.
    pub address: u64,
    /// Where `address` is in the file (what a uprobe attaches at), or why there is none.
    pub file_offset: Result<u64, String>,
    /// The semaphore's file offset (`None` without a semaphore), once adjusted like `address`.
    pub semaphore_offset: Option<Result<u64, String>>,
}

/// The probes of one ELF file.
pub struct Notes {
    /// The file's machine, when its argument strings are understood here.
    pub arch: Option<Arch>,
    /// The machine's name as `object` calls it (for messages about other machines).
    pub machine: String,
    pub notes: Vec<Note>,
    symbols: Vec<(String, u64)>,
}

impl Notes {
    /// Parses the `.note.stapsdt` section of an ELF file (no section: no probes).
    pub fn parse(data: &[u8]) -> Result<Self, String> {
        let file = object::File::parse(data).map_err(|err| format!("not an ELF file: {err}"))?;
        if file.format() != object::BinaryFormat::Elf {
            return Err("not an ELF file".into());
        }
        let arch = match file.architecture() {
            object::Architecture::X86_64 => Some(Arch::X86_64),
            object::Architecture::Aarch64 => Some(Arch::Aarch64),
            _ => None,
        };
        let machine = format!("{:?}", file.architecture()).to_lowercase();
        let is_64 = file.is_64();
        let little = file.is_little_endian();
        let mut notes = Vec::new();
        let base_section = file.section_by_name(".stapsdt.base").map(|s| s.address());
        let segments: Vec<Segment> = file
            .segments()
            .map(|segment| {
                let (offset, file_size) = segment.file_range();
                let flags = match segment.flags() {
                    SegmentFlags::Elf { p_flags } => p_flags,
                    _ => 0,
                };
                Segment {
                    address: segment.address(),
                    offset,
                    file_size,
                    executable: flags & PF_X != 0,
                }
            })
            .collect();
        for section in file.sections() {
            if section.name().ok() != Some(".note.stapsdt") {
                continue;
            }
            let data = section
                .data()
                .map_err(|err| format!("reading .note.stapsdt: {err}"))?;
            for raw in note_entries(data, little)? {
                if raw.name != b"stapsdt" || raw.kind != NT_STAPSDT {
                    continue;
                }
                notes.push(decode_note(
                    raw.desc,
                    is_64,
                    little,
                    base_section,
                    &segments,
                )?);
            }
        }
        // Arguments may name globals (`counter(%rip)`), whose addresses only the symbol tables know.
        let symbols: Vec<(String, u64)> = file
            .symbols()
            .chain(file.dynamic_symbols())
            .filter(|symbol| !symbol.is_undefined())
            .filter_map(|symbol| {
                let name = symbol.name().ok().filter(|name| !name.is_empty())?;
                Some((name.to_owned(), symbol.address()))
            })
            .collect();
        Ok(Self {
            arch,
            machine,
            notes,
            symbols,
        })
    }

    /// The address of a defined symbol of the file, by name.
    pub fn symbol_address(&self, name: &str) -> Option<u64> {
        self.symbols
            .iter()
            .find(|(symbol, _)| symbol == name)
            .map(|(_, address)| *address)
    }

    /// The argument specs of one probe location, encoded as crates/pyaya-usdt's `Spec` (owner 0). The error
    /// names the argument that cannot be read.
    pub fn encode_spec(&self, note: &Note) -> Result<Vec<u8>, String> {
        let arch = self.arch.ok_or_else(|| {
            format!(
                "the arguments of {} probes are not understood by pyaya (x86_64 and aarch64 are)",
                self.machine
            )
        })?;
        let texts = split_arguments(&note.arguments);
        if texts.len() > MAX_ARGS {
            return Err(format!(
                "it has {} arguments; USDT probes have at most {MAX_ARGS}",
                texts.len()
            ));
        }
        let mut spec = vec![0u8; SPEC_SIZE];
        for (index, text) in texts.iter().enumerate() {
            let argument = parse_argument(text, arch)
                .map_err(|err| format!("argument {index} ({}): {}", err.text, err.reason))?;
            let encoded = self
                .encode_argument(&argument, note, arch)
                .map_err(|reason| format!("argument {index} ({text}): {reason}"))?;
            spec.get_mut(index * ARG_SPEC_SIZE..(index + 1) * ARG_SPEC_SIZE)
                .ok_or_else(|| format!("argument {index} ({text}) has no place in the spec"))?
                .copy_from_slice(&encoded);
        }
        let count = texts.len() as u32;
        spec.get_mut(ARG_SPEC_SIZE * MAX_ARGS..ARG_SPEC_SIZE * MAX_ARGS + 4)
            .ok_or_else(|| "the spec has no place for its argument count".to_owned())?
            .copy_from_slice(&count.to_ne_bytes());
        Ok(spec)
    }

    fn encode_argument(
        &self,
        argument: &Argument,
        note: &Note,
        arch: Arch,
    ) -> Result<[u8; ARG_SPEC_SIZE], String> {
        let mut kind = KIND_CONSTANT;
        let mut offset: i64 = 0;
        let mut size = argument.size;
        let mut shift = 0;
        let mut base = NO_REGISTER;
        let mut index = NO_REGISTER;
        let mut scale = 0u8;
        match &argument.location {
            Location::Constant(value) => offset = *value,
            Location::Register(register) => {
                kind = KIND_REGISTER;
                base = register.offset;
                shift = register.shift;
                // `8@%eax` would otherwise read the bits above eax.
                size = size.min(register.width);
            }
            Location::Memory {
                base: base_register,
                index: index_register,
                displacement,
                symbol,
            } => {
                kind = KIND_MEMORY;
                offset = *displacement;
                if let Some(symbol) = symbol {
                    let address = self.symbol_address(symbol).ok_or_else(|| {
                        format!(
                            "symbol {symbol} is not in the file's symbol tables (is it stripped?)"
                        )
                    })?;
                    // When the uprobe fires the instruction pointer is the probe's runtime address, so the
                    // variable is `ip + (symbol - probe)` however the file was mapped (PIE, library or not).
                    base = arch.ip_offset();
                    offset = offset
                        .wrapping_add(address as i64)
                        .wrapping_sub(note.address as i64);
                }
                if let Some(register) = base_register {
                    base = register.offset;
                }
                if let Some((register, register_scale)) = index_register {
                    index = register.offset;
                    scale = *register_scale;
                }
            }
        }
        let mut encoded = [0u8; ARG_SPEC_SIZE];
        encoded[0..8].copy_from_slice(&offset.to_ne_bytes());
        encoded[8] = kind;
        encoded[9] = size;
        encoded[10] = u8::from(argument.signed);
        encoded[11] = shift;
        encoded[12..14].copy_from_slice(&base.to_ne_bytes());
        encoded[14..16].copy_from_slice(&index.to_ne_bytes());
        encoded[16] = scale;
        Ok(encoded)
    }
}

struct Segment {
    address: u64,
    offset: u64,
    file_size: u64,
    executable: bool,
}

/// The file offset of `address` in the `PT_LOAD` segment holding it in the file (an executable one for code).
fn file_offset(segments: &[Segment], address: u64, code: bool) -> Result<u64, String> {
    segments
        .iter()
        .find(|s| {
            (!code || s.executable) && address >= s.address && address - s.address < s.file_size
        })
        .map(|s| address - s.address + s.offset)
        .ok_or_else(|| {
            let what = if code { "an executable" } else { "a" };
            format!("address {address:#x} is not in {what} segment of the file")
        })
}

struct RawNote<'a> {
    name: &'a [u8],
    kind: u32,
    desc: &'a [u8],
}

fn read_u32(data: &[u8], at: usize, little: bool) -> Option<u32> {
    let bytes: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
    Some(if little {
        u32::from_le_bytes(bytes)
    } else {
        u32::from_be_bytes(bytes)
    })
}

fn read_address(data: &[u8], at: usize, is_64: bool, little: bool) -> Option<u64> {
    if is_64 {
        let bytes: [u8; 8] = data.get(at..at + 8)?.try_into().ok()?;
        Some(if little {
            u64::from_le_bytes(bytes)
        } else {
            u64::from_be_bytes(bytes)
        })
    } else {
        read_u32(data, at, little).map(u64::from)
    }
}

const fn align4(value: usize) -> usize {
    (value + 3) & !3
}

/// The entries of a note section: `namesz`, `descsz`, `type`, then the name and the descriptor, each padded to 4.
fn note_entries(data: &[u8], little: bool) -> Result<Vec<RawNote<'_>>, String> {
    let malformed = |at: usize| format!("malformed .note.stapsdt entry at offset {at:#x}");
    let mut entries = Vec::new();
    let mut at = 0;
    while at + 12 <= data.len() {
        let name_size = read_u32(data, at, little).ok_or_else(|| malformed(at))? as usize;
        let desc_size = read_u32(data, at + 4, little).ok_or_else(|| malformed(at))? as usize;
        let kind = read_u32(data, at + 8, little).ok_or_else(|| malformed(at))?;
        let name_start = at + 12;
        let desc_start = name_start
            .checked_add(align4(name_size))
            .ok_or_else(|| malformed(at))?;
        let desc_end = desc_start
            .checked_add(desc_size)
            .ok_or_else(|| malformed(at))?;
        let (Some(name), Some(desc)) = (
            data.get(name_start..name_start.saturating_add(name_size)),
            data.get(desc_start..desc_end),
        ) else {
            return Err(malformed(at));
        };
        entries.push(RawNote {
            name: name.strip_suffix(b"\0").unwrap_or(name),
            kind,
            desc,
        });
        at = align4(desc_end);
    }
    Ok(entries)
}

fn decode_note(
    desc: &[u8],
    is_64: bool,
    little: bool,
    base_section: Option<u64>,
    segments: &[Segment],
) -> Result<Note, String> {
    let width = if is_64 { 8 } else { 4 };
    let truncated = || "a .note.stapsdt entry is truncated".to_owned();
    let location = read_address(desc, 0, is_64, little).ok_or_else(truncated)?;
    let base = read_address(desc, width, is_64, little).ok_or_else(truncated)?;
    let semaphore = read_address(desc, 2 * width, is_64, little).ok_or_else(truncated)?;
    let mut strings = desc
        .get(3 * width..)
        .ok_or_else(truncated)?
        .split(|byte| *byte == 0);
    let mut text = || -> Result<String, String> {
        let bytes = strings.next().ok_or_else(truncated)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| "a .note.stapsdt string is not UTF-8".to_owned())
    };
    let provider = text()?;
    let name = text()?;
    let arguments = text().unwrap_or_default();
    // Prelinking moves sections after the static linker wrote the note; `.stapsdt.base` moved with them.
    let delta = match base_section {
        Some(actual) if base != 0 => actual.wrapping_sub(base),
        _ => 0,
    };
    let address = location.wrapping_add(delta);
    let semaphore_address = (semaphore != 0).then(|| semaphore.wrapping_add(delta));
    Ok(Note {
        provider,
        name,
        location,
        base,
        semaphore,
        arguments,
        address,
        file_offset: file_offset(segments, address, true),
        semaphore_offset: semaphore_address.map(|address| file_offset(segments, address, false)),
    })
}
