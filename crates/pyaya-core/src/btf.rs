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
use std::sync::OnceLock;

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

/// What a kind carries beyond the common header. Lists are ranges into the reader's flat tables.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    Members(std::ops::Range<u32>),
    Values(std::ops::Range<u32>),
    Params(std::ops::Range<u32>),
    Vars(std::ops::Range<u32>),
    /// VAR's linkage (FUNC's is its `vlen`).
    Linkage(u32),
    /// DECL_TAG's component index: -1 for the type itself, else a member or parameter index.
    Component(i32),
}

/// One type: the common header (`name_off`, `info`, `size`/`type`) and its kind's detail.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// How many modifiers `resolve` follows before calling the chain a loop (the kernel allows 32).
pub const MAX_RESOLVE_DEPTH: usize = 32;
/// How deeply values may nest (struct in array in struct...) for `check_value` to accept them.
pub const MAX_VALUE_DEPTH: usize = 32;
/// The largest value `check_value` accepts (64 MiB): larger than any map value the kernel allows and any ring
/// buffer record worth decoding, small enough that a zeroed value is cheap to build.
pub const MAX_VALUE_SIZE: u64 = 1 << 26;

/// Parsed BTF. Type ids index `types` (id 0 is void).
#[derive(Debug)]
pub struct Btf {
    endian: Endian,
    strings: Vec<u8>,
    types: Vec<Type>,
    members: Vec<Member>,
    values: Vec<EnumValue>,
    params: Vec<Param>,
    vars: Vec<VarSecinfo>,
    /// Named type ids sorted by name, built on the first lookup by name.
    by_name: OnceLock<Vec<u32>>,
}

struct Words<'a> {
    bytes: &'a [u8],
    endian: Endian,
}

impl Words<'_> {
    fn get(&self, index: usize) -> Option<u32> {
        let start = index.checked_mul(4)?;
        let raw: [u8; 4] = self
            .bytes
            .get(start..start.checked_add(4)?)?
            .try_into()
            .ok()?;
        Some(match self.endian {
            Endian::Little => u32::from_le_bytes(raw),
            Endian::Big => u32::from_be_bytes(raw),
        })
    }

    fn len(&self) -> usize {
        self.bytes.len() / 4
    }
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

impl Btf {
    /// Parses a raw BTF blob (an object's `.BTF` section, or `/sys/kernel/btf/vmlinux`).
    pub fn parse(data: &[u8]) -> Result<Self, Error> {
        let Some(magic) = data.get(0..2) else {
            return err(format!(
                "truncated BTF: {} bytes, the header alone needs 24",
                data.len()
            ));
        };
        let endian = match magic {
            [0x9f, 0xeb] => Endian::Little,
            [0xeb, 0x9f] => Endian::Big,
            _ => {
                return err(format!(
                    "not BTF (magic {:02x} {:02x}, expected 9f eb or eb 9f)",
                    magic.first().copied().unwrap_or_default(),
                    magic.get(1).copied().unwrap_or_default()
                ))
            }
        };
        let header = Words {
            bytes: data.get(..24).unwrap_or_default(),
            endian,
        };
        if header.len() < 6 {
            return err(format!(
                "truncated BTF: {} bytes, the header alone needs 24",
                data.len()
            ));
        }
        let word = |index| u64::from(header.get(index).unwrap_or_default());
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
            strings: strings.to_vec(),
            types: vec![Type::VOID],
            members: Vec::new(),
            values: Vec::new(),
            params: Vec::new(),
            vars: Vec::new(),
            by_name: OnceLock::new(),
        };
        btf.read_types(&Words {
            bytes: types,
            endian,
        })?;
        btf.check_references()?;
        Ok(btf)
    }

    fn check_name(&self, id: usize, offset: u32, what: &str) -> Result<u32, Error> {
        if offset == 0 || (offset as usize) < self.strings.len() {
            return Ok(offset);
        }
        err(format!(
            "BTF type {id}: {what} name offset {offset} is outside the string section ({} bytes)",
            self.strings.len()
        ))
    }

    fn read_types(&mut self, words: &Words<'_>) -> Result<(), Error> {
        let mut at = 0;
        while at < words.len() {
            let id = self.types.len();
            let truncated = || {
                Error(format!(
                    "truncated BTF: type {id} runs past the type section"
                ))
            };
            let word = |index: usize| words.get(at + index).ok_or_else(truncated);
            let (name, info, size_or_type) = (word(0)?, word(1)?, word(2)?);
            let number = (info >> 24) & 0x1f;
            let Some(kind) = Kind::from_number(number) else {
                return err(format!("BTF type {id} has unknown kind {number}"));
            };
            let name = self.check_name(id, name, "its")?;
            let vlen = (info & 0xffff) as u16;
            let kind_flag = info >> 31 == 1;
            let count = u32::from(vlen);
            let extra = |index: usize| word(3 + index);
            let (detail, words_used) = match kind {
                Kind::Int => {
                    let encoding = extra(0)?;
                    let detail = Detail::Int {
                        encoding: ((encoding >> 24) & 0x0f) as u8,
                        offset: ((encoding >> 16) & 0xff) as u8,
                        bits: (encoding & 0xff) as u8,
                    };
                    (detail, 1)
                }
                Kind::Array => {
                    let detail = Detail::Array {
                        element: extra(0)?,
                        index: extra(1)?,
                        count: extra(2)?,
                    };
                    (detail, 3)
                }
                Kind::Struct | Kind::Union => {
                    let start = self.members.len() as u32;
                    for i in 0..count as usize {
                        let offset = extra(3 * i + 2)?;
                        let (bit_offset, bitfield_size) = if kind_flag {
                            (offset & 0x00ff_ffff, (offset >> 24) as u8)
                        } else {
                            (offset, 0)
                        };
                        let member_name = self.check_name(id, extra(3 * i)?, "a member's")?;
                        self.members.push(Member {
                            name: member_name,
                            type_id: extra(3 * i + 1)?,
                            bit_offset,
                            bitfield_size,
                        });
                    }
                    (Detail::Members(start..start + count), 3 * count as usize)
                }
                Kind::Enum => {
                    let start = self.values.len() as u32;
                    for i in 0..count as usize {
                        let raw = extra(2 * i + 1)?;
                        let value = if kind_flag {
                            i128::from(raw as i32)
                        } else {
                            i128::from(raw)
                        };
                        let value_name = self.check_name(id, extra(2 * i)?, "an enumerator's")?;
                        self.values.push(EnumValue {
                            name: value_name,
                            value,
                        });
                    }
                    (Detail::Values(start..start + count), 2 * count as usize)
                }
                Kind::Enum64 => {
                    let start = self.values.len() as u32;
                    for i in 0..count as usize {
                        let raw =
                            u64::from(extra(3 * i + 1)?) | (u64::from(extra(3 * i + 2)?) << 32);
                        let value = if kind_flag {
                            i128::from(raw as i64)
                        } else {
                            i128::from(raw)
                        };
                        let value_name = self.check_name(id, extra(3 * i)?, "an enumerator's")?;
                        self.values.push(EnumValue {
                            name: value_name,
                            value,
                        });
                    }
                    (Detail::Values(start..start + count), 3 * count as usize)
                }
                Kind::FuncProto => {
                    let start = self.params.len() as u32;
                    for i in 0..count as usize {
                        let param_name = self.check_name(id, extra(2 * i)?, "a parameter's")?;
                        self.params.push(Param {
                            name: param_name,
                            type_id: extra(2 * i + 1)?,
                        });
                    }
                    (Detail::Params(start..start + count), 2 * count as usize)
                }
                Kind::Datasec => {
                    let start = self.vars.len() as u32;
                    for i in 0..count as usize {
                        self.vars.push(VarSecinfo {
                            type_id: extra(3 * i)?,
                            offset: extra(3 * i + 1)?,
                            size: extra(3 * i + 2)?,
                        });
                    }
                    (Detail::Vars(start..start + count), 3 * count as usize)
                }
                Kind::Var => (Detail::Linkage(extra(0)?), 1),
                Kind::DeclTag => (Detail::Component(extra(0)? as i32), 1),
                Kind::Void
                | Kind::Ptr
                | Kind::Fwd
                | Kind::Typedef
                | Kind::Volatile
                | Kind::Const
                | Kind::Restrict
                | Kind::Func
                | Kind::Float
                | Kind::TypeTag => (Detail::None, 0),
            };
            self.types.push(Type {
                kind,
                name,
                kind_flag,
                vlen,
                size_or_type,
                detail,
            });
            at += 3 + words_used;
        }
        Ok(())
    }

    /// Every type id a record refers to must exist, so that no query meets a dangling id.
    fn check_references(&self) -> Result<(), Error> {
        let count = self.types.len();
        for (id, t) in self.types.iter().enumerate() {
            let check = |referenced: u32, what: &str| {
                if (referenced as usize) < count {
                    Ok(())
                } else {
                    err(format!(
                        "BTF type {id} ({} {:?}): {what} is type {referenced}, but the last type is {}",
                        t.kind.name(),
                        self.string(t.name),
                        count - 1
                    ))
                }
            };
            match (&t.detail, t.kind) {
                (Detail::Array { element, index, .. }, _) => {
                    check(*element, "its element")?;
                    check(*index, "its index type")?;
                }
                (Detail::Members(_), _) => {
                    for member in self.members(t) {
                        check(member.type_id, "a member's type")?;
                    }
                }
                (Detail::Params(_), _) => {
                    check(t.size_or_type, "its return type")?;
                    for param in self.params(t) {
                        check(param.type_id, "a parameter's type")?;
                    }
                }
                (Detail::Vars(_), _) => {
                    for var in self.vars(t) {
                        check(var.type_id, "a variable")?;
                    }
                }
                (_, kind) if t.target().is_some() && kind != Kind::Array => {
                    check(t.size_or_type, "its target")?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub const fn endian(&self) -> Endian {
        self.endian
    }

    /// Number of type ids, void included (the largest id is `len() - 1`).
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// Whether the BTF has no type besides void.
    pub fn is_empty(&self) -> bool {
        self.types.len() <= 1
    }

    pub fn get(&self, id: u32) -> Option<&Type> {
        self.types.get(id as usize)
    }

    fn at(&self, id: u32) -> &Type {
        self.types.get(id as usize).unwrap_or(&Type::VOID)
    }

    /// The type with id `id`, or an error naming the id range.
    pub fn type_by_id(&self, id: u32) -> Result<&Type, Error> {
        self.get(id).ok_or_else(|| {
            Error(format!(
                "no BTF type with id {id} (ids go up to {})",
                self.types.len() - 1
            ))
        })
    }

    fn raw_string(&self, offset: u32) -> &[u8] {
        let rest = self.strings.get(offset as usize..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        rest.get(..end).unwrap_or_default()
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

    pub fn members(&self, t: &Type) -> &[Member] {
        match &t.detail {
            Detail::Members(range) => self
                .members
                .get(range.start as usize..range.end as usize)
                .unwrap_or_default(),
            _ => &[],
        }
    }

    pub fn values(&self, t: &Type) -> &[EnumValue] {
        match &t.detail {
            Detail::Values(range) => self
                .values
                .get(range.start as usize..range.end as usize)
                .unwrap_or_default(),
            _ => &[],
        }
    }

    pub fn params(&self, t: &Type) -> &[Param] {
        match &t.detail {
            Detail::Params(range) => self
                .params
                .get(range.start as usize..range.end as usize)
                .unwrap_or_default(),
            _ => &[],
        }
    }

    pub fn vars(&self, t: &Type) -> &[VarSecinfo] {
        match &t.detail {
            Detail::Vars(range) => self
                .vars
                .get(range.start as usize..range.end as usize)
                .unwrap_or_default(),
            _ => &[],
        }
    }

    fn index(&self) -> &[u32] {
        self.by_name.get_or_init(|| {
            let mut ids: Vec<u32> = (1..self.types.len() as u32)
                .filter(|&id| self.at(id).name != 0)
                .collect();
            ids.sort_by(|&a, &b| {
                self.raw_string(self.at(a).name)
                    .cmp(self.raw_string(self.at(b).name))
            });
            ids
        })
    }

    /// Ids of every type called `name` (of `kind`, when given), in id order.
    pub fn find(&self, name: &str, kind: Option<Kind>) -> Vec<u32> {
        let index = self.index();
        let key = name.as_bytes();
        let start = index.partition_point(|&id| self.raw_string(self.at(id).name) < key);
        let mut found: Vec<u32> = index
            .get(start..)
            .unwrap_or_default()
            .iter()
            .take_while(|&&id| self.raw_string(self.at(id).name) == key)
            .copied()
            .filter(|&id| kind.is_none_or(|kind| self.at(id).kind == kind))
            .collect();
        found.sort_unstable();
        found
    }

    /// The names of every type of `kind`, each once, sorted.
    pub fn names(&self, kind: Kind) -> Vec<Cow<'_, str>> {
        let mut previous: Option<&[u8]> = None;
        let mut names = Vec::new();
        for &id in self.index() {
            let t = self.at(id);
            if t.kind != kind {
                continue;
            }
            let raw = self.raw_string(t.name);
            if previous != Some(raw) {
                names.push(String::from_utf8_lossy(raw));
                previous = Some(raw);
            }
        }
        names
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

    fn composite(&self, id: u32, label: &str) -> Result<(u32, &Type), Error> {
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
            let members = self.members(t);
            if let Some(found) = members.iter().find(|m| self.raw_string(m.name) == key) {
                return Ok(Some((base + u64::from(found.bit_offset), *found)));
            }
            if depth >= MAX_VALUE_DEPTH {
                continue;
            }
            // Pushed in reverse so the first anonymous member is searched first.
            for member in members
                .iter()
                .rev()
                .filter(|m| m.name == 0 || self.raw_string(m.name).is_empty())
            {
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
                    .members(self.at(current))
                    .iter()
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
            let single;
            let children: &[Member] = match t.kind {
                Kind::Struct | Kind::Union => self.members(t),
                Kind::Array | Kind::Var => {
                    single = t.target().map(|type_id| Member {
                        name: 0,
                        type_id,
                        bit_offset: 0,
                        bitfield_size: 0,
                    });
                    single.as_slice()
                }
                kind if kind.is_modifier() => {
                    single = Some(Member {
                        name: 0,
                        type_id: t.size_or_type,
                        bit_offset: 0,
                        bitfield_size: 0,
                    });
                    single.as_slice()
                }
                _ => &[],
            };
            for child in children {
                match open.get(&child.type_id) {
                    Some(true) => return Err(contains_itself(child.type_id)),
                    Some(false) => {}
                    None => stack.push((child.type_id, depth + 1, false)),
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
