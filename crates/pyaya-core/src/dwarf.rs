//! BTF from an object's DWARF: the named struct, union, enum and typedef types of `.debug_info` (and everything
//! they reference) written as a standalone BTF blob, for the types clang leaves out of `.BTF` (those only local
//! variables use, such as libbpf-tools' `struct event` sent from the stack).
//!
//! BPF objects are relocatable, so the debug sections are copied and their `.rel`/`.rela` relocations applied
//! (the absolute 32- and 64-bit ones, `R_BPF_64_ABS32`/`R_BPF_64_ABS64`) before gimli reads them. Types are
//! converted from a work list, ids assigned before any reference is followed, so pointer cycles and deep chains
//! cost no recursion; malformed DWARF is an `Error`.

use std::collections::{HashMap, VecDeque};

use gimli::{AttributeValue, EndianSlice, RunTimeEndian, UnitOffset};
use object::{Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget};

use crate::btf::Error;

type R<'a> = EndianSlice<'a, RunTimeEndian>;

/// How many types a blob may hold (BTF ids are 32-bit; far more than any object's DWARF describes).
const MAX_TYPES: usize = 1 << 20;
const R_BPF_64_ABS64: u32 = 2;
const R_BPF_64_ABS32: u32 = 3;
const R_BPF_64_NODYLD32: u32 = 4;

fn err<T>(message: impl Into<String>) -> Result<T, Error> {
    Err(Error(message.into()))
}

fn dwarf_error(error: gimli::Error) -> Error {
    Error(format!("malformed DWARF: {error}"))
}

/// The section `name` of `file`, its relocations applied; `None` when the object lacks it.
fn relocated(file: &object::File<'_>, name: &str) -> Result<Option<Vec<u8>>, Error> {
    let Some(section) = file.section_by_name(name) else {
        return Ok(None);
    };
    let mut data = section
        .uncompressed_data()
        .map_err(|e| Error(format!("the object's {name}: {e}")))?
        .into_owned();
    let little = file.is_little_endian();
    for (offset, relocation) in section.relocations() {
        let r_type = match relocation.flags() {
            RelocationFlags::Elf { r_type } => r_type,
            _ => continue,
        };
        let width = match r_type {
            R_BPF_64_ABS64 => 8,
            R_BPF_64_ABS32 | R_BPF_64_NODYLD32 => 4,
            _ => continue,
        };
        let symbol_value = match relocation.target() {
            RelocationTarget::Symbol(index) => file
                .symbol_by_index(index)
                .map_err(|e| Error(format!("a relocation of {name}: {e}")))?
                .address(),
            _ => 0,
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let Some(place) = start
            .checked_add(width)
            .and_then(|end| data.get_mut(start..end))
        else {
            return err(format!(
                "a relocation of {name} at offset {offset} lies outside the section"
            ));
        };
        let mut raw = [0_u8; 8];
        let (low, _) = raw.split_at_mut(width);
        low.copy_from_slice(place);
        let in_place = if little {
            u64::from_le_bytes(raw)
        } else {
            u64::from_be_bytes(raw) >> (64 - 8 * width)
        };
        // REL: the addend is what the place holds; RELA: it is in the record.
        let addend = if relocation.has_implicit_addend() {
            in_place
        } else {
            relocation.addend() as u64
        };
        let value = symbol_value.wrapping_add(addend);
        let bytes: Vec<u8> = match (width, little) {
            (8, true) => value.to_le_bytes().to_vec(),
            (8, false) => value.to_be_bytes().to_vec(),
            (_, true) => (value as u32).to_le_bytes().to_vec(),
            (_, false) => (value as u32).to_be_bytes().to_vec(),
        };
        place.copy_from_slice(&bytes);
    }
    Ok(Some(data))
}

/// One BTF record being built: the common header and the words after it.
#[derive(Default, Clone)]
struct Record {
    name: u32,
    kind: u32,
    kind_flag: bool,
    vlen: u32,
    size_or_type: u32,
    extra: Vec<u32>,
}

struct Strings {
    bytes: Vec<u8>,
    offsets: HashMap<Vec<u8>, u32>,
}

impl Strings {
    fn new() -> Self {
        Self {
            bytes: vec![0],
            offsets: HashMap::new(),
        }
    }

    fn add(&mut self, name: &[u8]) -> u32 {
        if name.is_empty() {
            return 0;
        }
        if let Some(&offset) = self.offsets.get(name) {
            return offset;
        }
        let offset = u32::try_from(self.bytes.len()).unwrap_or(u32::MAX);
        // A NUL inside a name would end it early in BTF: keep what precedes it.
        let name_part = name.split(|&b| b == 0).next().unwrap_or_default();
        self.bytes.extend_from_slice(name_part);
        self.bytes.push(0);
        self.offsets.insert(name.to_vec(), offset);
        offset
    }
}

struct Converter<'a> {
    dwarf: &'a gimli::Dwarf<R<'a>>,
    units: Vec<gimli::Unit<R<'a>>>,
    big_endian: bool,
    ids: HashMap<(usize, usize), u32>,
    pending: VecDeque<(usize, UnitOffset, u32)>,
    /// By id - 1.
    records: Vec<Record>,
    strings: Strings,
    array_index: Option<u32>,
}

struct Die<'a> {
    tag: gimli::DwTag,
    name: Vec<u8>,
    type_ref: Option<(usize, UnitOffset)>,
    byte_size: Option<u64>,
    entry: gimli::DebuggingInformationEntry<R<'a>>,
}

impl<'a> Converter<'a> {
    fn new_record(&mut self) -> Result<u32, Error> {
        if self.records.len() >= MAX_TYPES {
            return err(format!("the DWARF describes more than {MAX_TYPES} types"));
        }
        self.records.push(Record::default());
        Ok(u32::try_from(self.records.len()).unwrap_or(u32::MAX))
    }

    fn set(&mut self, id: u32, record: Record) {
        if let Some(slot) = self.records.get_mut((id as usize).wrapping_sub(1)) {
            *slot = record;
        }
    }

    /// The BTF id of the type at `offset` of unit `unit`: known, or allocated and queued.
    fn id_of(&mut self, unit: usize, offset: UnitOffset) -> Result<u32, Error> {
        if let Some(&id) = self.ids.get(&(unit, offset.0)) {
            return Ok(id);
        }
        let id = self.new_record()?;
        self.ids.insert((unit, offset.0), id);
        self.pending.push_back((unit, offset, id));
        Ok(id)
    }

    fn type_id(
        &mut self,
        _unit: usize,
        reference: Option<(usize, UnitOffset)>,
    ) -> Result<u32, Error> {
        reference.map_or(Ok(0), |(unit, offset)| self.id_of(unit, offset))
    }

    /// The unit holding `.debug_info` offset `offset` (a `DW_FORM_ref_addr`, as Rust's LTO objects have), and
    /// the offset inside it.
    fn locate(&self, offset: gimli::DebugInfoOffset) -> Result<(usize, UnitOffset), Error> {
        for (index, unit) in self.units.iter().enumerate() {
            if let Some(inside) = offset.to_unit_offset(&unit.header) {
                return Ok((index, inside));
            }
        }
        err(format!(
            "a DWARF type reference to .debug_info offset {} lies in no unit",
            offset.0
        ))
    }

    fn unit(&self, index: usize) -> Result<&gimli::Unit<R<'a>>, Error> {
        self.units
            .get(index)
            .ok_or_else(|| Error("DWARF unit out of range".into()))
    }

    fn die(
        &self,
        unit_index: usize,
        entry: gimli::DebuggingInformationEntry<R<'a>>,
    ) -> Result<Die<'a>, Error> {
        let unit = self.unit(unit_index)?;
        let name = match entry.attr_value(gimli::DW_AT_name) {
            Some(value) => self
                .dwarf
                .attr_string(unit, value)
                .map_err(dwarf_error)?
                .slice()
                .to_vec(),
            None => Vec::new(),
        };
        let type_ref = match entry.attr_value(gimli::DW_AT_type) {
            None => None,
            Some(AttributeValue::UnitRef(offset)) => Some((unit_index, offset)),
            Some(AttributeValue::DebugInfoRef(offset)) => Some(self.locate(offset)?),
            Some(other) => {
                return err(format!(
                    "DWARF type reference of form {other:?} (only .debug_info references are read)"
                ))
            }
        };
        let byte_size = entry
            .attr_value(gimli::DW_AT_byte_size)
            .and_then(|v| v.udata_value());
        Ok(Die {
            tag: entry.tag(),
            name,
            type_ref,
            byte_size,
            entry,
        })
    }

    fn children(
        &self,
        unit_index: usize,
        offset: UnitOffset,
    ) -> Result<Vec<gimli::DebuggingInformationEntry<R<'a>>>, Error> {
        let unit = self.unit(unit_index)?;
        let mut tree = unit.entries_tree(Some(offset)).map_err(dwarf_error)?;
        let root = tree.root().map_err(dwarf_error)?;
        let mut children = root.children();
        let mut found = Vec::new();
        while let Some(child) = children.next().map_err(dwarf_error)? {
            found.push(child.entry().clone());
        }
        Ok(found)
    }

    fn size32(value: Option<u64>, what: &str) -> Result<u32, Error> {
        u32::try_from(value.unwrap_or(0))
            .map_err(|_| Error(format!("DWARF {what} size {value:?} does not fit BTF")))
    }

    fn array_index(&mut self) -> Result<u32, Error> {
        if let Some(id) = self.array_index {
            return Ok(id);
        }
        let id = self.new_record()?;
        let name = self.strings.add(b"__ARRAY_SIZE_TYPE__");
        self.set(
            id,
            Record {
                name,
                kind: 1,
                size_or_type: 4,
                extra: vec![32],
                ..Record::default()
            },
        );
        self.array_index = Some(id);
        Ok(id)
    }

    fn member_bits(
        &self,
        entry: &gimli::DebuggingInformationEntry<R<'a>>,
    ) -> Result<(u64, u64), Error> {
        let bit_size = entry
            .attr_value(gimli::DW_AT_bit_size)
            .and_then(|v| v.udata_value())
            .unwrap_or(0);
        if let Some(bits) = entry
            .attr_value(gimli::DW_AT_data_bit_offset)
            .and_then(|v| v.udata_value())
        {
            return Ok((bits, bit_size));
        }
        let byte_offset = match entry.attr_value(gimli::DW_AT_data_member_location) {
            None => 0,
            Some(AttributeValue::Exprloc(expr)) => {
                let mut reader = expr.0;
                let op = gimli::Reader::read_u8(&mut reader).map_err(dwarf_error)?;
                if op != gimli::DW_OP_plus_uconst.0 {
                    return err(format!(
                        "DWARF member location expression with opcode {op:#x} (only DW_OP_plus_uconst is read)"
                    ));
                }
                gimli::Reader::read_uleb128(&mut reader).map_err(dwarf_error)?
            }
            Some(value) => value
                .udata_value()
                .ok_or_else(|| Error(format!("DWARF member location {value:?}")))?,
        };
        let mut bits = byte_offset
            .checked_mul(8)
            .ok_or_else(|| Error("DWARF member offset overflows".into()))?;
        if let Some(old) = entry
            .attr_value(gimli::DW_AT_bit_offset)
            .and_then(|v| v.udata_value())
        {
            // DWARF 2's bit offset counts from the most significant bit of the storage unit.
            if self.big_endian {
                bits = bits.saturating_add(old);
            } else {
                let storage = entry
                    .attr_value(gimli::DW_AT_byte_size)
                    .and_then(|v| v.udata_value())
                    .unwrap_or(0)
                    .saturating_mul(8);
                bits = bits
                    .saturating_add(storage)
                    .checked_sub(old.saturating_add(bit_size))
                    .ok_or_else(|| Error("DWARF bit offset past its storage unit".into()))?;
            }
        }
        Ok((bits, bit_size))
    }

    fn convert(&mut self, unit: usize, offset: UnitOffset, id: u32) -> Result<(), Error> {
        let entry = self.unit(unit)?.entry(offset).map_err(dwarf_error)?;
        let die = self.die(unit, entry)?;
        let name = self.strings.add(&die.name);
        let declaration = matches!(
            die.entry.attr_value(gimli::DW_AT_declaration),
            Some(AttributeValue::Flag(true))
        );
        let record = match die.tag {
            gimli::DW_TAG_base_type => {
                let size = Self::size32(die.byte_size, "base type")?;
                let encoding = match die.entry.attr_value(gimli::DW_AT_encoding) {
                    Some(AttributeValue::Encoding(encoding)) => encoding,
                    _ => gimli::DW_ATE_unsigned,
                };
                if encoding == gimli::DW_ATE_float {
                    Record {
                        name,
                        kind: 16,
                        size_or_type: size,
                        ..Record::default()
                    }
                } else {
                    let flags = match encoding {
                        gimli::DW_ATE_boolean => crate::btf::INT_BOOL,
                        gimli::DW_ATE_signed | gimli::DW_ATE_signed_char => crate::btf::INT_SIGNED,
                        _ => 0,
                    };
                    let bits = size.saturating_mul(8).min(128);
                    Record {
                        name,
                        kind: 1,
                        size_or_type: size,
                        extra: vec![(u32::from(flags) << 24) | bits],
                        ..Record::default()
                    }
                }
            }
            gimli::DW_TAG_pointer_type
            | gimli::DW_TAG_reference_type
            | gimli::DW_TAG_rvalue_reference_type => Record {
                kind: 2,
                size_or_type: self.type_id(unit, die.type_ref)?,
                ..Record::default()
            },
            gimli::DW_TAG_const_type
            | gimli::DW_TAG_volatile_type
            | gimli::DW_TAG_restrict_type
            | gimli::DW_TAG_atomic_type
            | gimli::DW_TAG_typedef => Record {
                name: if die.tag == gimli::DW_TAG_typedef {
                    name
                } else {
                    0
                },
                kind: match die.tag {
                    gimli::DW_TAG_const_type => 10,
                    gimli::DW_TAG_restrict_type => 11,
                    gimli::DW_TAG_typedef => 8,
                    // _Atomic has no BTF kind; volatile keeps the layout.
                    _ => 9,
                },
                size_or_type: self.type_id(unit, die.type_ref)?,
                ..Record::default()
            },
            gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type | gimli::DW_TAG_class_type => {
                let union = die.tag == gimli::DW_TAG_union_type;
                if declaration {
                    Record {
                        name,
                        kind: 7,
                        kind_flag: union,
                        ..Record::default()
                    }
                } else {
                    let mut members = Vec::new();
                    let mut bitfields = false;
                    for child in self.children(unit, offset)? {
                        if child.tag() != gimli::DW_TAG_member {
                            continue;
                        }
                        let (bit_offset, bit_size) = self.member_bits(&child)?;
                        let member = self.die(unit, child)?;
                        let member_name = self.strings.add(&member.name);
                        let member_type = self.type_id(unit, member.type_ref)?;
                        bitfields |= bit_size != 0;
                        members.push((member_name, member_type, bit_offset, bit_size));
                    }
                    let mut extra = Vec::with_capacity(members.len() * 3);
                    for (member_name, member_type, bit_offset, bit_size) in &members {
                        let offset_word = if bitfields {
                            if *bit_size > 255 || *bit_offset > 0x00ff_ffff {
                                return err("a DWARF bitfield does not fit BTF's encoding");
                            }
                            ((*bit_size as u32) << 24) | (*bit_offset as u32)
                        } else {
                            u32::try_from(*bit_offset).map_err(|_| {
                                Error("a DWARF member offset does not fit BTF".into())
                            })?
                        };
                        extra.extend([*member_name, *member_type, offset_word]);
                    }
                    Record {
                        name,
                        kind: if union { 5 } else { 4 },
                        kind_flag: bitfields,
                        vlen: u32::try_from(members.len()).unwrap_or(u32::MAX),
                        size_or_type: Self::size32(die.byte_size, "struct")?,
                        extra,
                    }
                }
            }
            gimli::DW_TAG_enumeration_type => {
                let size = Self::size32(die.byte_size, "enum")?;
                let mut signed = false;
                if let Some((base_unit, base)) = die.type_ref {
                    let base = self.unit(base_unit)?.entry(base).map_err(dwarf_error)?;
                    signed = matches!(
                        base.attr_value(gimli::DW_AT_encoding),
                        Some(AttributeValue::Encoding(
                            gimli::DW_ATE_signed | gimli::DW_ATE_signed_char
                        ))
                    );
                }
                let mut values = Vec::new();
                for child in if declaration {
                    Vec::new()
                } else {
                    self.children(unit, offset)?
                } {
                    if child.tag() != gimli::DW_TAG_enumerator {
                        continue;
                    }
                    let value: i128 = match child.attr_value(gimli::DW_AT_const_value) {
                        Some(AttributeValue::Sdata(v)) => i128::from(v),
                        Some(AttributeValue::Udata(v)) => i128::from(v),
                        Some(AttributeValue::Data1(v)) => i128::from(v),
                        Some(AttributeValue::Data2(v)) => i128::from(v),
                        Some(AttributeValue::Data4(v)) => i128::from(v),
                        Some(AttributeValue::Data8(v)) => i128::from(v),
                        _ => 0,
                    };
                    signed |= value < 0;
                    let enumerator = self.die(unit, child)?;
                    values.push((self.strings.add(&enumerator.name), value));
                }
                let wide = size == 8;
                let mut extra = Vec::new();
                for (value_name, value) in &values {
                    let bits = *value as u64;
                    extra.push(*value_name);
                    extra.push(bits as u32);
                    if wide {
                        extra.push((bits >> 32) as u32);
                    }
                }
                Record {
                    name,
                    kind: if wide { 19 } else { 6 },
                    kind_flag: signed,
                    vlen: u32::try_from(values.len()).unwrap_or(u32::MAX),
                    size_or_type: size,
                    extra,
                }
            }
            gimli::DW_TAG_array_type => {
                let element = self.type_id(unit, die.type_ref)?;
                let mut counts = Vec::new();
                for child in self.children(unit, offset)? {
                    if child.tag() != gimli::DW_TAG_subrange_type {
                        continue;
                    }
                    let count = if let Some(count) = child
                        .attr_value(gimli::DW_AT_count)
                        .and_then(|v| v.udata_value())
                    {
                        count
                    } else if let Some(upper) = child
                        .attr_value(gimli::DW_AT_upper_bound)
                        .and_then(|v| v.udata_value())
                    {
                        let lower = child
                            .attr_value(gimli::DW_AT_lower_bound)
                            .and_then(|v| v.udata_value())
                            .unwrap_or(0);
                        upper.wrapping_sub(lower).wrapping_add(1)
                    } else {
                        0 // a flexible array
                    };
                    counts.push(
                        u32::try_from(count)
                            .map_err(|_| Error(format!("DWARF array of {count} elements")))?,
                    );
                }
                if counts.is_empty() {
                    counts.push(0);
                }
                let index = self.array_index()?;
                // int a[2][3]: an array of 2 arrays of 3; the innermost dimensions become records of their own.
                let mut inner = element;
                for (position, &count) in counts.iter().enumerate().rev() {
                    let record = Record {
                        kind: 3,
                        extra: vec![inner, index, count],
                        ..Record::default()
                    };
                    if position == 0 {
                        self.set(id, record);
                        return Ok(());
                    }
                    let nested = self.new_record()?;
                    self.set(nested, record);
                    inner = nested;
                }
                return Ok(());
            }
            gimli::DW_TAG_subroutine_type => {
                let returns = self.type_id(unit, die.type_ref)?;
                let mut params = Vec::new();
                for child in self.children(unit, offset)? {
                    match child.tag() {
                        gimli::DW_TAG_formal_parameter => {
                            let param = self.die(unit, child)?;
                            params.push(self.type_id(unit, param.type_ref)?);
                        }
                        gimli::DW_TAG_unspecified_parameters => params.push(0),
                        _ => {}
                    }
                }
                Record {
                    kind: 13,
                    vlen: u32::try_from(params.len()).unwrap_or(u32::MAX),
                    size_or_type: returns,
                    extra: params.iter().flat_map(|&p| [0, p]).collect(),
                    ..Record::default()
                }
            }
            gimli::DW_TAG_unspecified_type => Record {
                // C's void of `typeof(nullptr)` and the like: no layout, one that decodes to nothing.
                name,
                kind: 7,
                ..Record::default()
            },
            other => {
                return err(format!("DWARF type tag {other} has no BTF counterpart"));
            }
        };
        self.set(id, record);
        Ok(())
    }

    fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let word = |value: u32| {
            if self.big_endian {
                value.to_be_bytes()
            } else {
                value.to_le_bytes()
            }
        };
        let mut types = Vec::new();
        for record in &self.records {
            if record.vlen > 0xffff {
                return err("a DWARF type has more than 65535 members, values or parameters");
            }
            let info = (record.kind << 24) | (u32::from(record.kind_flag) << 31) | record.vlen;
            for value in [record.name, info, record.size_or_type]
                .into_iter()
                .chain(record.extra.iter().copied())
            {
                types.extend_from_slice(&word(value));
            }
        }
        let types_len = u32::try_from(types.len())
            .map_err(|_| Error("the DWARF's types exceed 4 GiB as BTF".into()))?;
        let strings_len = u32::try_from(self.strings.bytes.len())
            .map_err(|_| Error("the DWARF's names exceed 4 GiB".into()))?;
        let mut blob = Vec::with_capacity(24 + types.len() + self.strings.bytes.len());
        blob.extend_from_slice(&if self.big_endian {
            0xeb9f_u16.to_be_bytes()
        } else {
            0xeb9f_u16.to_le_bytes()
        });
        blob.extend_from_slice(&[1, 0]);
        for value in [24, 0, types_len, types_len, strings_len] {
            blob.extend_from_slice(&word(value));
        }
        blob.extend_from_slice(&types);
        blob.extend_from_slice(&self.strings.bytes);
        Ok(blob)
    }
}

/// The named struct, union, enum and typedef types of the object's DWARF and all they reference, as a BTF blob
/// in the object's byte order; `None` when the object has no `.debug_info`. Types inside a `DW_TAG_namespace`
/// (Rust's, `core`'s included: a Rust object's DWARF describes much of the standard library) are taken only with
/// `namespaced`; C's types are all outside one.
pub fn btf_from_dwarf(data: &[u8], namespaced: bool) -> Result<Option<Vec<u8>>, Error> {
    let file = object::File::parse(data).map_err(|e| Error(format!("not an ELF object: {e}")))?;
    if file.section_by_name(".debug_info").is_none() {
        return Ok(None);
    }
    let big_endian = !file.is_little_endian();
    let endian = if big_endian {
        RunTimeEndian::Big
    } else {
        RunTimeEndian::Little
    };
    let mut sections: HashMap<gimli::SectionId, Vec<u8>> = HashMap::new();
    for id in [
        gimli::SectionId::DebugAbbrev,
        gimli::SectionId::DebugInfo,
        gimli::SectionId::DebugStr,
        gimli::SectionId::DebugStrOffsets,
        gimli::SectionId::DebugLineStr,
        gimli::SectionId::DebugLine,
        gimli::SectionId::DebugAddr,
        gimli::SectionId::DebugRngLists,
        gimli::SectionId::DebugRanges,
        gimli::SectionId::DebugLocLists,
        gimli::SectionId::DebugLoc,
    ] {
        if let Some(bytes) = relocated(&file, id.name())? {
            sections.insert(id, bytes);
        }
    }
    let empty: &[u8] = &[];
    let dwarf = gimli::Dwarf::load(|id| -> Result<R<'_>, Error> {
        let bytes = sections.get(&id).map_or(empty, Vec::as_slice);
        Ok(EndianSlice::new(bytes, endian))
    })?;
    let mut units = Vec::new();
    let mut headers = dwarf.units();
    while let Some(header) = headers.next().map_err(dwarf_error)? {
        units.push(dwarf.unit(header).map_err(dwarf_error)?);
    }
    let mut converter = Converter {
        dwarf: &dwarf,
        units,
        big_endian,
        ids: HashMap::new(),
        pending: VecDeque::new(),
        records: Vec::new(),
        strings: Strings::new(),
        array_index: None,
    };
    for unit_index in 0..converter.units.len() {
        let mut named = Vec::new();
        {
            let unit = converter.unit(unit_index)?;
            let mut cursor = unit.entries();
            // The depth of each open namespace: entries deeper than one are inside it.
            let mut namespaces: Vec<isize> = Vec::new();
            while let Some(entry) = cursor.next_dfs().map_err(dwarf_error)? {
                let depth = entry.depth();
                while namespaces.last().is_some_and(|&open| open >= depth) {
                    namespaces.pop();
                }
                if entry.tag() == gimli::DW_TAG_namespace {
                    namespaces.push(depth);
                    continue;
                }
                if !namespaced && !namespaces.is_empty() {
                    continue;
                }
                let wanted = matches!(
                    entry.tag(),
                    gimli::DW_TAG_structure_type
                        | gimli::DW_TAG_union_type
                        | gimli::DW_TAG_enumeration_type
                        | gimli::DW_TAG_typedef
                ) && entry.attr_value(gimli::DW_AT_name).is_some();
                if wanted {
                    named.push(entry.offset());
                }
            }
        }
        for offset in named {
            converter.id_of(unit_index, offset)?;
        }
        while let Some((unit, offset, id)) = converter.pending.pop_front() {
            converter.convert(unit, offset, id)?;
        }
    }
    converter.to_bytes().map(Some)
}

#[cfg(test)]
#[path = "dwarf_tests.rs"]
mod tests;
