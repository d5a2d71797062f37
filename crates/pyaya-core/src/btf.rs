//! A bounds-checked reader of BTF, the kernel's type format (`include/uapi/linux/btf.h`), in either byte order.
//!
//! One pass reads every type into flat tables (members, enum values, parameters and section variables each in one
//! vector, so vmlinux's ~130k types cost a few allocations) and checks what every later query relies on: each
//! record lies inside the type section, each kind is known, each name offset lies inside the string section and
//! each referenced type id exists. Queries are then infallible lookups, and every walk across types (`resolve`,
//! `size_of`, member lookup, `check_value`) is iterative or depth-bounded and cycle-safe, so no input can make one
//! recurse without bound or take more than linear work.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

/// The error of every BTF operation: what is wrong, in words for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn err<T>(message: impl Into<String>) -> Result<T, Error> {
    Err(Error(message.into()))
}

/// `BTF_KIND_*`; `Void` is type id 0, which has no record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    Void = 0,
    Int = 1,
    Ptr = 2,
    Array = 3,
    Struct = 4,
    Union = 5,
    Enum = 6,
    Fwd = 7,
    Typedef = 8,
    Volatile = 9,
    Const = 10,
    Restrict = 11,
    Func = 12,
    FuncProto = 13,
    Var = 14,
    Datasec = 15,
    Float = 16,
    DeclTag = 17,
    TypeTag = 18,
    Enum64 = 19,
}

impl Kind {
    /// The kind of a `BTF_KIND_*` number, `None` for numbers this reader does not know.
    pub const fn from_number(number: u32) -> Option<Self> {
        Some(match number {
            1 => Self::Int,
            2 => Self::Ptr,
            3 => Self::Array,
            4 => Self::Struct,
            5 => Self::Union,
            6 => Self::Enum,
            7 => Self::Fwd,
            8 => Self::Typedef,
            9 => Self::Volatile,
            10 => Self::Const,
            11 => Self::Restrict,
            12 => Self::Func,
            13 => Self::FuncProto,
            14 => Self::Var,
            15 => Self::Datasec,
            16 => Self::Float,
            17 => Self::DeclTag,
            18 => Self::TypeTag,
            19 => Self::Enum64,
            _ => return None,
        })
    }

    /// The kernel's name of the kind (`STRUCT`, `FUNC_PROTO`...; `UNKN` for void), as bpftool prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Void => "UNKN",
            Self::Int => "INT",
            Self::Ptr => "PTR",
            Self::Array => "ARRAY",
            Self::Struct => "STRUCT",
            Self::Union => "UNION",
            Self::Enum => "ENUM",
            Self::Fwd => "FWD",
            Self::Typedef => "TYPEDEF",
            Self::Volatile => "VOLATILE",
            Self::Const => "CONST",
            Self::Restrict => "RESTRICT",
            Self::Func => "FUNC",
            Self::FuncProto => "FUNC_PROTO",
            Self::Var => "VAR",
            Self::Datasec => "DATASEC",
            Self::Float => "FLOAT",
            Self::DeclTag => "DECL_TAG",
            Self::TypeTag => "TYPE_TAG",
            Self::Enum64 => "ENUM64",
        }
    }

    /// TYPEDEF, CONST, VOLATILE, RESTRICT and TYPE_TAG: names or qualifiers of another type, same layout.
    pub const fn is_modifier(self) -> bool {
        matches!(
            self,
            Self::Typedef | Self::Volatile | Self::Const | Self::Restrict | Self::TypeTag
        )
    }
}

pub const INT_SIGNED: u8 = 1;
pub const INT_CHAR: u8 = 2;
pub const INT_BOOL: u8 = 4;

/// A struct or union member. `bit_offset` counts from the start of the composite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub name: u32,
    pub type_id: u32,
    pub bit_offset: u32,
    /// Non-zero only for bitfields declared with the kind flag's encoding.
    pub bitfield_size: u8,
}

/// An enumerator; ENUM and ENUM64 values alike, signed when the enum's kind flag says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnumValue {
    pub name: u32,
    pub value: i128,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    pub name: u32,
    pub type_id: u32,
}

/// One variable of a DATASEC: where in the section it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarSecinfo {
    pub type_id: u32,
    pub offset: u32,
    pub size: u32,
}

/// What a kind carries beyond the common header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    None,
    Int {
        encoding: u8,
        offset: u8,
        bits: u8,
    },
    Array {
        element: u32,
        index: u32,
        count: u32,
    },
    /// STRUCT/UNION members, ENUM/ENUM64 values, FUNC_PROTO parameters or DATASEC variables: `vlen` entries from
    /// this word of the type section on (read with `members`, `values`, `params`, `vars`).
    List(u32),
    /// VAR's linkage (FUNC's is its `vlen`).
    Linkage(u32),
    /// DECL_TAG's component index: -1 for the type itself, else a member or parameter index.
    Component(i32),
}

/// One type: the common header (`name_off`, `info`, `size`/`type`) and its kind's detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Type {
    pub kind: Kind,
    /// Offset of the name in the string section (0: anonymous).
    pub name: u32,
    pub kind_flag: bool,
    pub vlen: u16,
    /// The byte size for INT, STRUCT, UNION, ENUM, ENUM64, DATASEC and FLOAT; the referenced type id otherwise.
    pub size_or_type: u32,
    pub detail: Detail,
}

impl Type {
    const VOID: Self = Self {
        kind: Kind::Void,
        name: 0,
        kind_flag: false,
        vlen: 0,
        size_or_type: 0,
        detail: Detail::None,
    };

    /// The byte size the record states, for the kinds that state one.
    pub const fn size(&self) -> Option<u32> {
        match self.kind {
            Kind::Int
            | Kind::Struct
            | Kind::Union
            | Kind::Enum
            | Kind::Enum64
            | Kind::Datasec
            | Kind::Float => Some(self.size_or_type),
            _ => None,
        }
    }

    /// The one type this type refers to (PTR, modifiers, FUNC's prototype, VAR, DECL_TAG, FUNC_PROTO's return
    /// type, ARRAY's element), or `None`.
    pub const fn target(&self) -> Option<u32> {
        match (self.kind, &self.detail) {
            (Kind::Array, Detail::Array { element, .. }) => Some(*element),
            (
                Kind::Ptr
                | Kind::Typedef
                | Kind::Volatile
                | Kind::Const
                | Kind::Restrict
                | Kind::TypeTag
                | Kind::Func
                | Kind::FuncProto
                | Kind::Var
                | Kind::DeclTag,
                _,
            ) => Some(self.size_or_type),
            _ => None,
        }
    }
}

/// Byte order of the BTF, and so of the target's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    Little,
    Big,
}

impl Endian {
    pub const fn opposite(self) -> Self {
        match self {
            Self::Little => Self::Big,
            Self::Big => Self::Little,
        }
    }
}

/// How many modifiers `resolve` follows before calling the chain a loop (the kernel allows 32).
pub const MAX_RESOLVE_DEPTH: usize = 32;
/// How deeply values may nest (struct in array in struct...) for `check_value` to accept them.
pub const MAX_VALUE_DEPTH: usize = 32;
/// The largest value `check_value` accepts (64 MiB): larger than any map value the kernel allows and any ring
/// buffer record worth decoding, small enough that a zeroed value is cheap to build.
pub const MAX_VALUE_SIZE: u64 = 1 << 26;

/// Parsed BTF. Records stay in their wire form and are decoded when asked for: parsing vmlinux is one pass that
/// checks every record and notes where each starts. Type ids index `starts` (id 0 is void).
#[derive(Debug)]
pub struct Btf {
    endian: Endian,
    types: Vec<u8>,
    strings: Vec<u8>,
    /// The word of `types` where each type's record starts, by id (`starts[0]`, void, has none).
    starts: Vec<u32>,
}

fn section<'a>(data: &'a [u8], start: u64, len: u64, what: &str) -> Result<&'a [u8], Error> {
    let end = start.checked_add(len);
    match end.and_then(|end| data.get(usize::try_from(start).ok()?..usize::try_from(end).ok()?)) {
        Some(bytes) => Ok(bytes),
        None => err(format!(
            "truncated BTF: the {what} section ends at byte {} of {}",
            end.map_or_else(|| "(past 2^64)".to_owned(), |end| end.to_string()),
            data.len()
        )),
    }
}

fn read_word(bytes: &[u8], endian: Endian, index: usize) -> Option<u32> {
    let start = index.checked_mul(4)?;
    let raw: [u8; 4] = bytes.get(start..start.checked_add(4)?)?.try_into().ok()?;
    Some(match endian {
        Endian::Little => u32::from_le_bytes(raw),
        Endian::Big => u32::from_be_bytes(raw),
    })
}

/// Words after the common header, and words per `vlen` entry, of each kind's record.
const fn record_words(kind: Kind) -> (usize, usize) {
    match kind {
        Kind::Int | Kind::Var | Kind::DeclTag => (1, 0),
        Kind::Array => (3, 0),
        Kind::Struct | Kind::Union | Kind::Enum64 | Kind::Datasec => (0, 3),
        Kind::Enum | Kind::FuncProto => (0, 2),
        Kind::Void
        | Kind::Ptr
        | Kind::Fwd
        | Kind::Typedef
        | Kind::Volatile
        | Kind::Const
        | Kind::Restrict
        | Kind::Func
        | Kind::Float
        | Kind::TypeTag => (0, 0),
    }
}

impl Btf {
    /// Parses a raw BTF blob (an object's `.BTF` section, or `/sys/kernel/btf/vmlinux`).
    pub fn parse(data: &[u8]) -> Result<Self, Error> {
        let endian = match data.get(0..2) {
            Some([0x9f, 0xeb]) => Endian::Little,
            Some([0xeb, 0x9f]) => Endian::Big,
            Some(&[first, second]) => {
                return err(format!(
                    "not BTF (magic {first:02x} {second:02x}, expected 9f eb or eb 9f)"
                ))
            }
            _ => {
                return err(format!(
                    "truncated BTF: {} bytes, the header alone needs 24",
                    data.len()
                ))
            }
        };
        if data.len() < 24 {
            return err(format!(
                "truncated BTF: {} bytes, the header alone needs 24",
                data.len()
            ));
        }
        let word = |index| u64::from(read_word(data, endian, index).unwrap_or_default());
        let version = data.get(2).copied().unwrap_or_default();
        if version != 1 {
            return err(format!("unsupported BTF version {version} (expected 1)"));
        }
        let header_len = word(1);
        if header_len < 24 || header_len > data.len() as u64 {
            return err(format!(
                "bad BTF header length {header_len} ({} bytes of data)",
                data.len()
            ));
        }
        let (type_off, type_len, str_off, str_len) = (word(2), word(3), word(4), word(5));
        if type_off % 4 != 0 || type_len % 4 != 0 {
            return err(format!(
                "the BTF type section (offset {type_off}, {type_len} bytes) is not 4-byte aligned"
            ));
        }
        let types = section(data, header_len + type_off, type_len, "type")?;
        let strings = section(data, header_len + str_off, str_len, "string")?;
        if strings.last().is_some_and(|&last| last != 0) {
            return err("the BTF string section is not NUL-terminated");
        }
        let mut btf = Self {
            endian,
            types: types.to_vec(),
            strings: strings.to_vec(),
            starts: vec![0],
        };
        btf.index_types()?;
        Ok(btf)
    }

    fn word(&self, index: usize) -> u32 {
        read_word(&self.types, self.endian, index).unwrap_or_default()
    }

    fn check_name(&self, id: usize, offset: u32, what: &str) -> Result<(), Error> {
        if self.has_string(offset) {
            return Ok(());
        }
        err(format!(
            "BTF type {id}: {what} name offset {offset} is outside the string section ({} bytes)",
            self.strings.len()
        ))
    }

    /// The one pass: where each record starts, and that each lies inside the type section, has a known kind and
    /// names inside the string section. Referenced ids are checked against the count once it is known.
    fn index_types(&mut self) -> Result<(), Error> {
        let total = self.types.len() / 4;
        let mut largest_reference = 0_u32;
        let mut at = 0_usize;
        while at < total {
            let id = self.starts.len();
            if at + 3 > total {
                return err(format!(
                    "truncated BTF: type {id} runs past the type section"
                ));
            }
            let (name, info, size_or_type) = (self.word(at), self.word(at + 1), self.word(at + 2));
            let number = (info >> 24) & 0x1f;
            let Some(kind) = Kind::from_number(number) else {
                return err(format!("BTF type {id} has unknown kind {number}"));
            };
            self.check_name(id, name, "its")?;
            let vlen = (info & 0xffff) as usize;
            let (fixed, per_entry) = record_words(kind);
            let length = 3 + fixed + per_entry * vlen;
            if at + length > total {
                return err(format!(
                    "truncated BTF: type {id} runs past the type section"
                ));
            }
            let first = at + 3;
            let mut reference =
                |referenced: u32| largest_reference = largest_reference.max(referenced);
            match kind {
                Kind::Ptr
                | Kind::Typedef
                | Kind::Volatile
                | Kind::Const
                | Kind::Restrict
                | Kind::TypeTag
                | Kind::Func
                | Kind::Var
                | Kind::DeclTag => reference(size_or_type),
                Kind::Array => {
                    reference(self.word(first));
                    reference(self.word(first + 1));
                }
                Kind::Struct | Kind::Union => {
                    for entry in (first..first + 3 * vlen).step_by(3) {
                        self.check_name(id, self.word(entry), "a member's")?;
                        reference(self.word(entry + 1));
                    }
                }
                Kind::Enum | Kind::Enum64 => {
                    for entry in (first..first + per_entry * vlen).step_by(per_entry) {
                        self.check_name(id, self.word(entry), "an enumerator's")?;
                    }
                }
                Kind::FuncProto => {
                    reference(size_or_type);
                    for entry in (first..first + 2 * vlen).step_by(2) {
                        self.check_name(id, self.word(entry), "a parameter's")?;
                        reference(self.word(entry + 1));
                    }
                }
                Kind::Datasec => {
                    for entry in (first..first + 3 * vlen).step_by(3) {
                        reference(self.word(entry));
                    }
                }
                Kind::Void | Kind::Int | Kind::Fwd | Kind::Float => {}
            }
            self.starts.push(at as u32);
            at += length;
        }
        if largest_reference as usize >= self.starts.len() {
            return Err(self.dangling_reference());
        }
        Ok(())
    }

    /// The first record that refers to a type id past the last, described (the pass found that one exists).
    fn dangling_reference(&self) -> Error {
        let count = self.starts.len() as u32;
        for id in 1..count {
            let t = self.at(id);
            let mut refs: Vec<(u32, &str)> = Vec::new();
            match (t.kind, t.detail) {
                (Kind::Array, Detail::Array { element, index, .. }) => {
                    refs.extend([(element, "its element"), (index, "its index type")]);
                }
                (Kind::Struct | Kind::Union, _) => {
                    refs.extend(self.members(&t).map(|m| (m.type_id, "a member's type")));
                }
                (Kind::FuncProto, _) => {
                    refs.push((t.size_or_type, "its return type"));
                    refs.extend(self.params(&t).map(|p| (p.type_id, "a parameter's type")));
                }
                (Kind::Datasec, _) => refs.extend(self.vars(&t).map(|v| (v.type_id, "a variable"))),
                _ => refs.extend(t.target().map(|target| (target, "its target"))),
            }
            if let Some((referenced, what)) = refs.into_iter().find(|(r, _)| *r >= count) {
                return Error(format!(
                    "BTF type {id} ({} {:?}): {what} is type {referenced}, but the last type is {}",
                    t.kind.name(),
                    self.string(t.name),
                    count - 1
                ));
            }
        }
        Error("a BTF type refers to a type past the last".into())
    }

    pub const fn endian(&self) -> Endian {
        self.endian
    }

    /// The BTF as one raw blob in its own byte order (a 24-byte header, the types, the strings), the form a
    /// loader parses: a blob read from a file and parsed gives back the same types and strings.
    pub fn to_bytes(&self) -> Vec<u8> {
        let word = |value: u32| match self.endian {
            Endian::Little => value.to_le_bytes(),
            Endian::Big => value.to_be_bytes(),
        };
        let types_len = u32::try_from(self.types.len()).unwrap_or(u32::MAX);
        let strings_len = u32::try_from(self.strings.len()).unwrap_or(u32::MAX);
        let mut blob = Vec::with_capacity(24 + self.types.len() + self.strings.len());
        blob.extend_from_slice(&match self.endian {
            Endian::Little => 0xeb9f_u16.to_le_bytes(),
            Endian::Big => 0xeb9f_u16.to_be_bytes(),
        });
        blob.extend_from_slice(&[1, 0]);
        for value in [24, 0, types_len, types_len, strings_len] {
            blob.extend_from_slice(&word(value));
        }
        blob.extend_from_slice(&self.types);
        blob.extend_from_slice(&self.strings);
        blob
    }

    /// The byte offset of type `id`'s record in the type section (`None` for void and ids past the last), for
    /// rewriters that patch records in place.
    pub fn record_offset(&self, id: u32) -> Option<usize> {
        if id == 0 {
            return None;
        }
        self.starts.get(id as usize).map(|&word| word as usize * 4)
    }

    /// Number of type ids, void included (the largest id is `len() - 1`).
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether the BTF has no type besides void.
    pub fn is_empty(&self) -> bool {
        self.starts.len() <= 1
    }

    /// The type with id `id`, decoded from its record.
    pub fn get(&self, id: u32) -> Option<Type> {
        if id == 0 {
            return Some(Type::VOID);
        }
        let at = *self.starts.get(id as usize)? as usize;
        let info = self.word(at + 1);
        let kind = Kind::from_number((info >> 24) & 0x1f)?;
        let first = at + 3;
        let detail = match kind {
            Kind::Int => {
                let encoding = self.word(first);
                Detail::Int {
                    encoding: ((encoding >> 24) & 0x0f) as u8,
                    offset: ((encoding >> 16) & 0xff) as u8,
                    bits: (encoding & 0xff) as u8,
                }
            }
            Kind::Array => Detail::Array {
                element: self.word(first),
                index: self.word(first + 1),
                count: self.word(first + 2),
            },
            Kind::Struct
            | Kind::Union
            | Kind::Enum
            | Kind::Enum64
            | Kind::FuncProto
            | Kind::Datasec => Detail::List(first as u32),
            Kind::Var => Detail::Linkage(self.word(first)),
            Kind::DeclTag => Detail::Component(self.word(first) as i32),
            _ => Detail::None,
        };
        Some(Type {
            kind,
            name: self.word(at),
            kind_flag: info >> 31 == 1,
            vlen: (info & 0xffff) as u16,
            size_or_type: self.word(at + 2),
            detail,
        })
    }

    fn at(&self, id: u32) -> Type {
        self.get(id).unwrap_or(Type::VOID)
    }

    /// The type with id `id`, or an error naming the id range.
    pub fn type_by_id(&self, id: u32) -> Result<Type, Error> {
        self.get(id).ok_or_else(|| {
            Error(format!(
                "no BTF type with id {id} (ids go up to {})",
                self.starts.len() - 1
            ))
        })
    }

    fn raw_string(&self, offset: u32) -> &[u8] {
        let rest = self.strings.get(offset as usize..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        rest.get(..end).unwrap_or_default()
    }

    /// Whether the string at `offset` is `key`, without measuring it first.
    fn string_is(&self, offset: u32, key: &[u8]) -> bool {
        let start = offset as usize;
        self.strings.get(start..start + key.len()) == Some(key)
            && self
                .strings
                .get(start + key.len())
                .is_none_or(|&end| end == 0)
    }

    /// The string at `offset` of the string section (invalid UTF-8 replaced); empty outside the section.
    pub fn string(&self, offset: u32) -> Cow<'_, str> {
        String::from_utf8_lossy(self.raw_string(offset))
    }

    /// Whether `offset` lies inside the string section (for references parsed elsewhere, such as .BTF.ext).
    pub fn has_string(&self, offset: u32) -> bool {
        offset == 0 || (offset as usize) < self.strings.len()
    }

    pub fn name_of(&self, id: u32) -> Cow<'_, str> {
        self.string(self.at(id).name)
    }

    fn entries(
        &self,
        t: &Type,
        kinds: &[Kind],
        size: usize,
    ) -> impl ExactSizeIterator<Item = usize> + '_ {
        let (first, count) = match t.detail {
            Detail::List(first) if kinds.contains(&t.kind) => (first as usize, usize::from(t.vlen)),
            _ => (0, 0),
        };
        (0..count).map(move |i| first + i * size)
    }

    /// A struct's or union's members.
    pub fn members(&self, t: &Type) -> impl ExactSizeIterator<Item = Member> + '_ {
        let kind_flag = t.kind_flag;
        self.entries(t, &[Kind::Struct, Kind::Union], 3)
            .map(move |at| {
                let offset = self.word(at + 2);
                let (bit_offset, bitfield_size) = if kind_flag {
                    (offset & 0x00ff_ffff, (offset >> 24) as u8)
                } else {
                    (offset, 0)
                };
                Member {
                    name: self.word(at),
                    type_id: self.word(at + 1),
                    bit_offset,
                    bitfield_size,
                }
            })
    }

    /// An enum's values, signed when its kind flag says so.
    pub fn values(&self, t: &Type) -> impl ExactSizeIterator<Item = EnumValue> + '_ {
        let (signed, wide) = (t.kind_flag, t.kind == Kind::Enum64);
        let size = if wide { 3 } else { 2 };
        self.entries(t, &[Kind::Enum, Kind::Enum64], size)
            .map(move |at| {
                let low = self.word(at + 1);
                let value = match (wide, signed) {
                    (false, false) => i128::from(low),
                    (false, true) => i128::from(low as i32),
                    (true, _) => {
                        let raw = u64::from(low) | (u64::from(self.word(at + 2)) << 32);
                        if signed {
                            i128::from(raw as i64)
                        } else {
                            i128::from(raw)
                        }
                    }
                };
                EnumValue {
                    name: self.word(at),
                    value,
                }
            })
    }

    /// A function prototype's parameters.
    pub fn params(&self, t: &Type) -> impl ExactSizeIterator<Item = Param> + '_ {
        self.entries(t, &[Kind::FuncProto], 2).map(move |at| Param {
            name: self.word(at),
            type_id: self.word(at + 1),
        })
    }

    /// A data section's variables.
    pub fn vars(&self, t: &Type) -> impl ExactSizeIterator<Item = VarSecinfo> + '_ {
        self.entries(t, &[Kind::Datasec], 3)
            .map(move |at| VarSecinfo {
                type_id: self.word(at),
                offset: self.word(at + 1),
                size: self.word(at + 2),
            })
    }

    /// Ids of every type called `name` (of `kind`, when given), in id order: one scan of the records, which for
    /// vmlinux costs about a millisecond, so the few lookups pyaya makes need no index.
    pub fn find(&self, name: &str, kind: Option<Kind>) -> Vec<u32> {
        let key = name.as_bytes();
        if key.is_empty() {
            return Vec::new();
        }
        (1..self.starts.len() as u32)
            .filter(|&id| {
                let at = self.starts.get(id as usize).copied().unwrap_or_default() as usize;
                self.string_is(self.word(at), key)
                    && kind.is_none_or(|kind| self.at(id).kind == kind)
            })
            .collect()
    }

    /// `(id, kind, raw name)` of every named type of one of `kinds`, reading two words of each record (no decoding):
    /// a scan of vmlinux for many names at once.
    pub fn named_of_kinds<'a>(
        &'a self,
        kinds: &'a [Kind],
    ) -> impl Iterator<Item = (u32, Kind, &'a [u8])> + 'a {
        (1..self.starts.len() as u32).filter_map(move |id| {
            let at = self.starts.get(id as usize).copied().unwrap_or_default() as usize;
            let kind = Kind::from_number((self.word(at.saturating_add(1)) >> 24) & 0x1f)?;
            let name = self.word(at);
            (name != 0 && kinds.contains(&kind)).then(|| (id, kind, self.raw_string(name)))
        })
    }

    /// The names of every type of `kind`, each once, sorted.
    pub fn names(&self, kind: Kind) -> Vec<Cow<'_, str>> {
        let mut names: Vec<&[u8]> = (1..self.starts.len() as u32)
            .map(|id| self.at(id))
            .filter(|t| t.kind == kind && t.name != 0)
            .map(|t| self.raw_string(t.name))
            .filter(|name| !name.is_empty())
            .collect();
        names.sort_unstable();
        names.dedup();
        names.into_iter().map(String::from_utf8_lossy).collect()
    }

    /// The type behind `id` with modifiers (typedef, const, volatile, restrict, type tag) skipped.
    pub fn resolve(&self, id: u32) -> Result<u32, Error> {
        let mut current = id;
        for _ in 0..=MAX_RESOLVE_DEPTH {
            let t = self.type_by_id(current)?;
            if !t.kind.is_modifier() {
                return Ok(current);
            }
            current = t.size_or_type;
        }
        err(format!(
            "BTF type {id}: more than {MAX_RESOLVE_DEPTH} typedefs and qualifiers in a row (a loop?)"
        ))
    }

    /// Byte size of a value of type `id`, `None` for types without one (void, FUNC, FWD...).
    pub fn size_of(&self, id: u32) -> Result<Option<u64>, Error> {
        let mut count: u64 = 1;
        let mut current = id;
        for _ in 0..=MAX_VALUE_DEPTH {
            let resolved = self.resolve(current)?;
            let t = self.at(resolved);
            let size = match (t.kind, &t.detail) {
                (Kind::Ptr, _) => 8,
                (
                    Kind::Array,
                    Detail::Array {
                        element, count: n, ..
                    },
                ) => {
                    count = count.checked_mul(u64::from(*n)).ok_or_else(|| {
                        Error(format!("BTF type {id}: the array's size overflows"))
                    })?;
                    current = *element;
                    continue;
                }
                (Kind::Var, _) => {
                    current = t.size_or_type;
                    continue;
                }
                (Kind::Void, _) => return Ok(None),
                _ => match t.size() {
                    Some(size) => u64::from(size),
                    None => return Ok(None),
                },
            };
            return count
                .checked_mul(size)
                .map(Some)
                .ok_or_else(|| Error(format!("BTF type {id}: the array's size overflows")));
        }
        err(format!(
            "BTF type {id}: arrays nested more than {MAX_VALUE_DEPTH} deep"
        ))
    }

    /// A short label for messages: `struct event`, `u32`, `ARRAY #7`.
    pub fn describe(&self, id: u32) -> String {
        let t = self.at(id);
        let name = self.string(t.name);
        match t.kind {
            Kind::Void => "void".to_owned(),
            Kind::Struct | Kind::Union | Kind::Enum | Kind::Enum64 => {
                let kind = match t.kind {
                    Kind::Struct => "struct",
                    Kind::Union => "union",
                    _ => "enum",
                };
                if name.is_empty() {
                    format!("{kind} <anon>")
                } else {
                    format!("{kind} {name}")
                }
            }
            _ if name.is_empty() => format!("{} #{id}", t.kind.name()),
            _ => name.into_owned(),
        }
    }

    fn composite(&self, id: u32, label: &str) -> Result<(u32, Type), Error> {
        let resolved = self.resolve(id)?;
        let t = self.at(resolved);
        if matches!(t.kind, Kind::Struct | Kind::Union) {
            Ok((resolved, t))
        } else {
            err(format!(
                "{label} is a {}, not a struct or union",
                t.kind.name()
            ))
        }
    }

    /// `(bit offset within the composite, member)` for `name`, looking through anonymous members as C does. Each
    /// anonymous composite is searched once, so the work is linear in the members reachable and cycles end.
    pub fn member(&self, composite: u32, name: &str) -> Result<Option<(u64, Member)>, Error> {
        let key = name.as_bytes();
        let mut searched = HashSet::new();
        // (composite id, bit offset of that composite, depth)
        let mut stack = vec![(composite, 0_u64, 0_usize)];
        while let Some((id, base, depth)) = stack.pop() {
            let (resolved, t) = self.composite(id, &self.describe(id))?;
            if !searched.insert(resolved) {
                continue;
            }
            if let Some(found) = self.members(&t).find(|m| self.string_is(m.name, key)) {
                return Ok(Some((base + u64::from(found.bit_offset), found)));
            }
            if depth >= MAX_VALUE_DEPTH {
                continue;
            }
            let anonymous: Vec<Member> = self
                .members(&t)
                .filter(|m| m.name == 0 || self.raw_string(m.name).is_empty())
                .collect();
            // Pushed in reverse so the first anonymous member is searched first.
            for member in anonymous.iter().rev() {
                let inner = self.resolve(member.type_id)?;
                if matches!(self.at(inner).kind, Kind::Struct | Kind::Union) {
                    stack.push((inner, base + u64::from(member.bit_offset), depth + 1));
                }
            }
        }
        Ok(None)
    }

    /// `(bit offset, member)` of a dotted path (`a.b`: member `b` of member `a`'s struct) in composite `id`.
    pub fn member_path(&self, id: u32, label: &str, path: &str) -> Result<(u64, Member), Error> {
        let (mut current, _) = self.composite(id, label)?;
        let mut label = label.to_owned();
        let mut total: u64 = 0;
        let mut last = None;
        let parts: Vec<&str> = path.split('.').collect();
        for (depth, part) in parts.iter().enumerate() {
            let Some((offset, member)) = self.member(current, part)? else {
                let names: Vec<String> = self
                    .members(&self.at(current))
                    .map(|m| {
                        let name = self.string(m.name);
                        if name.is_empty() {
                            "<anon>".to_owned()
                        } else {
                            name.into_owned()
                        }
                    })
                    .collect();
                return err(format!(
                    "{label} has no member '{part}' (members: {})",
                    names.join(", ")
                ));
            };
            total = total.saturating_add(offset);
            label = format!("{label}.{part}");
            if depth + 1 < parts.len() {
                current = self.composite(member.type_id, &label)?.0;
            }
            last = Some(member);
        }
        match last {
            Some(member) => Ok((total, member)),
            None => err("an empty member path"),
        }
    }

    /// Every member of a struct or union lies inside it, as the kernel's BTF checker requires: a codec built from
    /// the layout then never reads or writes past the value.
    fn check_members(&self, id: u32, t: &Type) -> Result<(), Error> {
        let size = u64::from(t.size_or_type) * 8;
        for member in self.members(t) {
            let bits = match member.bitfield_size {
                0 => self.size_of(member.type_id)?.unwrap_or(0).saturating_mul(8),
                bits => {
                    let kind = self.at(self.resolve(member.type_id)?).kind;
                    if !matches!(kind, Kind::Int | Kind::Enum | Kind::Enum64) {
                        return err(format!(
                            "BTF type {id} ({}): member '{}' is a bitfield of a {}, not of an integer or enum",
                            self.describe(id),
                            self.string(member.name),
                            kind.name()
                        ));
                    }
                    u64::from(bits)
                }
            };
            let end = u64::from(member.bit_offset) + bits;
            if end > size {
                return err(format!(
                    "BTF type {id} ({}): member '{}' ends at bit {end}, past the end of its {} bytes",
                    self.describe(id),
                    self.string(member.name),
                    t.size_or_type
                ));
            }
        }
        Ok(())
    }

    /// Checks that values of type `id` can be decoded: no type contains itself by value, nesting stays within
    /// `MAX_VALUE_DEPTH` and the size within `MAX_VALUE_SIZE`. Returns the size. Iterative, each type visited once.
    pub fn check_value(&self, id: u32) -> Result<u64, Error> {
        use std::collections::hash_map::{Entry, HashMap};
        // A depth-first walk over by-value edges: a type still open when reached again contains itself.
        let mut open: HashMap<u32, bool> = HashMap::new(); // id -> still on the current path
        let mut stack: Vec<(u32, usize, bool)> = vec![(id, 0, false)]; // (id, depth, children pushed)
        let contains_itself = |current: u32| {
            Error(format!(
                "BTF type {id} ({}) contains {} within itself",
                self.describe(id),
                self.describe(current)
            ))
        };
        while let Some((current, depth, expanded)) = stack.pop() {
            if expanded {
                open.insert(current, false);
                continue;
            }
            match open.entry(current) {
                Entry::Occupied(entry) if *entry.get() => return Err(contains_itself(current)),
                Entry::Occupied(_) => continue,
                Entry::Vacant(entry) => {
                    entry.insert(true);
                }
            }
            if depth > MAX_VALUE_DEPTH + MAX_RESOLVE_DEPTH {
                return err(format!(
                    "BTF type {id} ({}) nests types more than {MAX_VALUE_DEPTH} deep",
                    self.describe(id)
                ));
            }
            stack.push((current, depth, true));
            let t = self.type_by_id(current)?;
            if matches!(t.kind, Kind::Struct | Kind::Union) {
                self.check_members(current, &t)?;
            }
            let children: Vec<u32> = match t.kind {
                Kind::Struct | Kind::Union => self.members(&t).map(|m| m.type_id).collect(),
                Kind::Array | Kind::Var => t.target().into_iter().collect(),
                kind if kind.is_modifier() => vec![t.size_or_type],
                _ => Vec::new(),
            };
            for child in children {
                match open.get(&child) {
                    Some(true) => return Err(contains_itself(child)),
                    Some(false) => {}
                    None => stack.push((child, depth + 1, false)),
                }
            }
        }
        let size = self.size_of(id)?.unwrap_or(0);
        if size > MAX_VALUE_SIZE {
            return err(format!(
                "BTF type {id} ({}) is {size} bytes, more than pyaya decodes ({MAX_VALUE_SIZE})",
                self.describe(id)
            ));
        }
        Ok(size)
    }
}

#[cfg(test)]
#[path = "btf_tests.rs"]
mod tests;
