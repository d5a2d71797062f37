//! ELF files as pyaya needs them: the header, section headers with their names, the symbol tables and the loadable
//! segments, read with the `object` crate (already linked by aya-obj, and fuzzed upstream) in both byte orders and
//! both classes. Everything is checked when parsing: each section's bytes lie inside the file and each name inside
//! its string table, so `section_data` cannot fail afterwards.

use std::fmt;

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader as _, SectionHeader as _, Sym as _};
use object::{Endianness, SectionIndex, SymbolIndex};

pub const EM_BPF: u16 = 247;
pub const SHT_NULL: u32 = 0;
pub const SHT_SYMTAB: u32 = 2;
pub const SHT_NOBITS: u32 = 8;
pub const SHT_DYNSYM: u32 = 11;
pub const SHF_EXECINSTR: u64 = 0x4;
pub const STT_OBJECT: u8 = 1;
pub const STT_FUNC: u8 = 2;
pub const STT_SECTION: u8 = 3;
pub const STB_GLOBAL: u8 = 1;
pub const STB_WEAK: u8 = 2;
pub const PT_LOAD: u32 = 1;
pub const SHN_ABS: u16 = 0xfff1;

/// What is wrong with a file, in words for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn context(what: &str) -> impl Fn(object::read::Error) -> Error + '_ {
    move |error| Error(format!("{what}: {error}"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub little_endian: bool,
    pub is_64: bool,
    pub os_abi: u8,
    /// `e_type`: 1 relocatable (BPF objects), 2 executable, 3 shared object.
    pub kind: u16,
    pub machine: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub index: usize,
    pub name: String,
    pub kind: u32,
    pub flags: u64,
    pub address: u64,
    pub offset: u64,
    pub size: u64,
    pub link: u32,
    pub info: u32,
    pub align: u64,
    pub entry_size: u64,
}

impl Section {
    /// False for `SHT_NOBITS` (`.bss`) and `SHT_NULL`, whose bytes are not in the file.
    pub const fn has_data(&self) -> bool {
        self.kind != SHT_NOBITS && self.kind != SHT_NULL
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub index: usize,
    pub name: String,
    pub value: u64,
    pub size: u64,
    /// `STT_*`, the low nibble of `st_info`.
    pub kind: u8,
    /// `STB_*`, the high nibble of `st_info`.
    pub binding: u8,
    pub visibility: u8,
    /// The raw `st_shndx` (`SHN_ABS`, `SHN_COMMON`... included).
    pub shndx: u16,
    /// The section the symbol is defined in (extended indexes followed), `None` when undefined or special.
    pub section: Option<usize>,
}

impl Symbol {
    pub const fn is_function(&self) -> bool {
        self.kind == STT_FUNC
    }

    pub const fn is_global(&self) -> bool {
        self.binding == STB_GLOBAL || self.binding == STB_WEAK
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub kind: u32,
    pub offset: u64,
    pub address: u64,
    pub file_size: u64,
}

/// A parsed ELF file; section bytes are borrowed from the data it was parsed from.
#[derive(Debug)]
pub struct Elf<'data> {
    data: &'data [u8],
    pub header: Header,
    pub sections: Vec<Section>,
    /// `.symtab`, the null symbol at index 0 included; empty without one.
    pub symbols: Vec<Symbol>,
    /// `.dynsym`, likewise.
    pub dynamic_symbols: Vec<Symbol>,
    pub segments: Vec<Segment>,
}

fn symbols<E: FileHeader<Endian = Endianness>>(
    endian: Endianness,
    data: &[u8],
    table: &object::read::elf::SectionTable<'_, E>,
    kind: u32,
) -> Result<Vec<Symbol>, Error> {
    let what = if kind == SHT_SYMTAB {
        "the symbol table"
    } else {
        "the dynamic symbol table"
    };
    let symbols = table.symbols(endian, data, kind).map_err(context(what))?;
    let mut found = Vec::with_capacity(symbols.len());
    for (index, symbol) in symbols.enumerate() {
        let name = symbols
            .symbol_name(endian, symbol)
            .map_err(|error| Error(format!("{what}: symbol {}: {error}", index.0)))?;
        let section = symbols
            .symbol_section(endian, symbol, SymbolIndex(index.0))
            .map_err(|error| Error(format!("{what}: symbol {}: {error}", index.0)))?;
        found.push(Symbol {
            index: index.0,
            name: String::from_utf8_lossy(name).into_owned(),
            value: symbol.st_value(endian).into(),
            size: symbol.st_size(endian).into(),
            kind: symbol.st_type(),
            binding: symbol.st_bind(),
            visibility: symbol.st_visibility(),
            shndx: symbol.st_shndx(endian),
            section: section.map(|SectionIndex(index)| index),
        });
    }
    Ok(found)
}

fn parse_class<'data, E: FileHeader<Endian = Endianness>>(
    data: &'data [u8],
) -> Result<Elf<'data>, Error> {
    let file = E::parse(data).map_err(context("the ELF header"))?;
    let endian = file.endian().map_err(context("the ELF header"))?;
    let table = file
        .sections(endian, data)
        .map_err(context("the section header table"))?;
    let mut sections = Vec::with_capacity(table.len());
    for (index, header) in table.enumerate() {
        let name = table
            .section_name(endian, header)
            .map_err(|error| Error(format!("section {}: {error}", index.0)))?;
        let section = Section {
            index: index.0,
            name: String::from_utf8_lossy(name).into_owned(),
            kind: header.sh_type(endian),
            flags: header.sh_flags(endian).into(),
            address: header.sh_addr(endian).into(),
            offset: header.sh_offset(endian).into(),
            size: header.sh_size(endian).into(),
            link: header.sh_link(endian),
            info: header.sh_info(endian),
            align: header.sh_addralign(endian).into(),
            entry_size: header.sh_entsize(endian).into(),
        };
        if section.has_data() {
            let end = section.offset.checked_add(section.size);
            if end.is_none_or(|end| end > data.len() as u64) {
                return Err(Error(format!(
                    "truncated: section {} ({}) ends at byte {} of {}",
                    section.index,
                    section.name,
                    end.map_or_else(|| "(past 2^64)".to_owned(), |end| end.to_string()),
                    data.len()
                )));
            }
        }
        sections.push(section);
    }
    let segments = file
        .program_headers(endian, data)
        .map_err(context("the program header table"))?
        .iter()
        .map(|segment| Segment {
            kind: segment.p_type(endian),
            offset: segment.p_offset(endian).into(),
            address: segment.p_vaddr(endian).into(),
            file_size: segment.p_filesz(endian).into(),
        })
        .collect();
    let e_ident = file.e_ident();
    Ok(Elf {
        data,
        header: Header {
            little_endian: endian == Endianness::Little,
            is_64: e_ident.class == elf::ELFCLASS64,
            os_abi: e_ident.os_abi,
            kind: file.e_type(endian),
            machine: file.e_machine(endian),
        },
        symbols: symbols(endian, data, &table, SHT_SYMTAB)?,
        dynamic_symbols: symbols(endian, data, &table, SHT_DYNSYM)?,
        sections,
        segments,
    })
}

/// The header's size and the section header table's extent, checked first so that the common truncations are
/// reported in bytes rather than as the `object` crate's generic "invalid offset/size".
fn check_tables(data: &[u8], is_64: bool) -> Result<(), Error> {
    let header_size: usize = if is_64 { 64 } else { 52 };
    if data.len() < header_size {
        return Err(Error(format!(
            "truncated: the ELF header needs {header_size} bytes, the file has {}",
            data.len()
        )));
    }
    let little = data.get(5).copied() != Some(elf::ELFDATA2MSB);
    let read = |at: usize, len: usize| -> u64 {
        let bytes = data.get(at..at + len).unwrap_or_default();
        let fold = |value: u64, byte: &u8| (value << 8) | u64::from(*byte);
        if little {
            bytes.iter().rev().fold(0, fold)
        } else {
            bytes.iter().fold(0, fold)
        }
    };
    let (shoff, shentsize, shnum) = if is_64 {
        (read(40, 8), read(58, 2), read(60, 2))
    } else {
        (read(32, 4), read(46, 2), read(48, 2))
    };
    // shnum 0 with a table means extended numbering (the count is in section 0): `object` checks that case.
    if shoff != 0 && shnum != 0 {
        let end = shentsize
            .checked_mul(shnum)
            .and_then(|size| size.checked_add(shoff));
        if end.is_none_or(|end| end > data.len() as u64) {
            return Err(Error(format!(
                "truncated: the section header table ends at byte {} of {}",
                end.map_or_else(|| "(past 2^64)".to_owned(), |end| end.to_string()),
                data.len()
            )));
        }
    }
    Ok(())
}

impl<'data> Elf<'data> {
    /// Parses an ELF file of either class and byte order.
    pub fn parse(data: &'data [u8]) -> Result<Self, Error> {
        let magic = data.get(..4).unwrap_or(data);
        if magic != elf::ELFMAG {
            let shown: Vec<String> = magic.iter().map(|b| format!("{b:02x}")).collect();
            let shown = if shown.is_empty() {
                "empty".to_owned()
            } else {
                shown.join(" ")
            };
            return Err(Error(format!(
                "not an ELF file (magic {shown}, expected 7f 45 4c 46)"
            )));
        }
        let is_64 = match data.get(4).copied() {
            Some(elf::ELFCLASS64) => true,
            Some(elf::ELFCLASS32) => false,
            class => {
                return Err(Error(format!(
                    "unknown ELF class {} (expected 1 or 2)",
                    class.map_or_else(|| "(missing)".to_owned(), |c| c.to_string())
                )))
            }
        };
        check_tables(data, is_64)?;
        if is_64 {
            parse_class::<elf::FileHeader64<Endianness>>(data)
        } else {
            parse_class::<elf::FileHeader32<Endianness>>(data)
        }
    }

    /// The first section called `name`.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|section| section.name == name)
    }

    /// The bytes of a section (empty for `.bss`-like sections).
    pub fn section_data(&self, section: &Section) -> &'data [u8] {
        if !section.has_data() {
            return &[];
        }
        let start = usize::try_from(section.offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(usize::try_from(section.size).unwrap_or(usize::MAX));
        self.data.get(start..end).unwrap_or_default()
    }

    /// The section a symbol is defined in.
    pub fn section_of(&self, symbol: &Symbol) -> Option<&Section> {
        symbol.section.and_then(|index| self.sections.get(index))
    }
}

/// The largest section without file bytes (`.bss`) an object may declare: aya-obj allocates such a section zeroed
/// while parsing, so a `.bss` claiming terabytes aborts the process on a failed allocation (no panic to catch), and
/// the kernel takes no global data map anywhere near this size.
pub const MAX_NOBITS_SIZE: u64 = 1 << 26;

/// What aya-obj takes on trust from an object and cannot recover from, checked before it sees the object. Objects
/// this reader cannot parse are left to aya-obj, whose own error then says what is wrong.
pub fn check_for_aya(data: &[u8]) -> Result<(), Error> {
    let Ok(elf) = Elf::parse(data) else {
        return Ok(());
    };
    for section in &elf.sections {
        if section.kind == SHT_NOBITS && section.size > MAX_NOBITS_SIZE {
            return Err(Error(format!(
                "section {} ({}) claims {} bytes, more than the {MAX_NOBITS_SIZE} a BPF object's data may take",
                section.index, section.name, section.size
            )));
        }
    }
    Ok(())
}

/// Where `.BTF`'s string section lies in the object's bytes, when the object and its BTF header can be read.
fn btf_strings(data: &[u8]) -> Option<std::ops::Range<usize>> {
    let elf = Elf::parse(data).ok()?;
    let section = elf.section(".BTF")?;
    let btf = elf.section_data(section);
    let little = match btf.get(0..2)? {
        [0x9f, 0xeb] => true,
        [0xeb, 0x9f] => false,
        _ => return None,
    };
    let word = |at: usize| -> Option<usize> {
        let raw: [u8; 4] = btf.get(at..at + 4)?.try_into().ok()?;
        usize::try_from(if little {
            u32::from_le_bytes(raw)
        } else {
            u32::from_be_bytes(raw)
        })
        .ok()
    };
    let start = word(4)?.checked_add(word(16)?)?;
    let end = start.checked_add(word(20)?)?;
    let section_start = usize::try_from(section.offset).ok()?;
    (end <= btf.len()).then(|| section_start + start..section_start + end)
}

/// A copy of the object whose `.BTF` strings are valid UTF-8 (each invalid byte replaced by `?`), or `None` when
/// they already are. The kernel quotes those strings (source lines, file names) in its verifier log, and aya 0.14
/// unwraps the log's UTF-8 conversion: an object with a Latin-1 comment would lose its verifier log to a panic.
pub fn utf8_btf_strings(data: &[u8]) -> Option<Vec<u8>> {
    let range = btf_strings(data)?;
    let strings = data.get(range.clone())?;
    if std::str::from_utf8(strings).is_ok() {
        return None;
    }
    let mut fixed = data.to_vec();
    let mut at = range.start;
    for chunk in strings.utf8_chunks() {
        at += chunk.valid().len();
        for byte in fixed
            .get_mut(at..at + chunk.invalid().len())
            .unwrap_or_default()
        {
            *byte = b'?';
        }
        at += chunk.invalid().len();
    }
    Some(fixed)
}

#[cfg(test)]
#[path = "elf_tests.rs"]
mod tests;
