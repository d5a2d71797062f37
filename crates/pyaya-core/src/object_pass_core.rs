//! The object pass's CO-RE part: `.BTF.ext`'s CO-RE relocation records read, their access strings walked in the
//! object's BTF and matched against the target BTF as libbpf does (`bpf_core_parse_spec`, `bpf_core_spec_match`).
//!
//! Two uses. Records that index into a trailing flexible array (`ctx->args[3]` of `struct syscall_trace_enter`,
//! whose last member is `unsigned long args[]`) are relocated here and removed from `.BTF.ext`: aya 0.14 refuses
//! them ("array index out of bounds": it compares the array index with the struct's member count). And every
//! other record is checked, so that a relocation the target BTF cannot satisfy, which aya turns into a call the
//! verifier refuses as `invalid func unknown#195896080`, can be reported naming the type, the field and the program.

use std::collections::{HashMap, HashSet};

use super::{
    add, err, ext_areas, mul, span, word_at, CoreFailure, Editor, Error, ExtArea, CALL, LD_IMM64,
};
use crate::btf::{Btf, Detail, Kind, Member};
use crate::elf::{Elf, Section, STT_FUNC};

pub const FIELD_BYTE_OFFSET: u32 = 0;
pub const FIELD_BYTE_SIZE: u32 = 1;
pub const FIELD_EXISTS: u32 = 2;
pub const FIELD_SIGNED: u32 = 3;
pub const FIELD_LSHIFT_U64: u32 = 4;
pub const FIELD_RSHIFT_U64: u32 = 5;
// 6 is TYPE_ID_LOCAL, 8 TYPE_EXISTS, 12 TYPE_MATCHES: never unresolvable, left to aya.
pub const TYPE_ID_TARGET: u32 = 7;
pub const TYPE_SIZE: u32 = 9;
pub const ENUMVAL_EXISTS: u32 = 10;
pub const ENUMVAL_VALUE: u32 = 11;

/// The immediate aya (and libbpf) gives the call an unresolvable relocation's instruction becomes.
pub const POISON: i32 = 0x0bad_2310;
/// libbpf's bound on access string components.
const MAX_SPEC_LEN: usize = 64;

/// One `bpf_core_relo` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The section its instruction is in, as the object's BTF strings name it.
    pub section: String,
    pub insn_off: u32,
    pub type_id: u32,
    pub access: String,
    pub kind: u32,
    /// Where the record is in `.BTF.ext` (its first byte).
    pub at: u64,
}

/// Every CO-RE relocation record of `.BTF.ext`, with its section's name.
pub fn records(
    ext: &[u8],
    areas: &[ExtArea],
    little: bool,
    btf: &Btf,
) -> Result<Vec<Record>, Error> {
    let truncated = || Error("truncated .BTF.ext CO-RE relocations".into());
    let mut found = Vec::new();
    let Some(area) = areas.iter().find(|area| area.which == 2) else {
        return Ok(found);
    };
    if area.record_size < 16 {
        return err(format!(
            ".BTF.ext CO-RE relocation records are {} bytes, expected at least 16",
            area.record_size
        ));
    }
    let word = |at: u64| word_at(ext, at, little).ok_or_else(truncated);
    let mut at = area.first_block;
    while add(at, 8)? <= area.end {
        let (name, count) = (word(at)?, word(add(at, 4)?)?);
        if !btf.has_string(name) {
            return err(format!(
                ".BTF.ext CO-RE relocations: section name offset {name} is outside the .BTF strings"
            ));
        }
        let section = btf.string(name).into_owned();
        at = add(at, 8)?;
        let end = add(at, mul(u64::from(count), area.record_size)?)?;
        if end > area.end {
            return Err(truncated());
        }
        while at < end {
            let access = word(add(at, 8)?)?;
            if !btf.has_string(access) {
                return err(format!(
                    ".BTF.ext CO-RE relocations: access string offset {access} is outside the .BTF strings"
                ));
            }
            found.push(Record {
                section: section.clone(),
                insn_off: word(at)?,
                type_id: word(add(at, 4)?)?,
                access: btf.string(access).into_owned(),
                kind: word(add(at, 12)?)?,
                at,
            });
            at = add(at, area.record_size)?;
        }
    }
    Ok(found)
}

/// One step of an access path: a named member, or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Member `index` (of composite `parent`), called `name`.
    Member {
        parent: u32,
        index: usize,
        name: String,
    },
    /// Element `index` of an array; `flex` when the array is a trailing flexible one (any index allowed).
    Index { index: u64, flex: bool },
}

/// A walked access string: `root[first]` then the steps, landing on `last` (a type id) at `bit_offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spec {
    first: u64,
    steps: Vec<Step>,
    last: u32,
    bit_offset: u64,
    /// The bitfield size of the last member (0: not a bitfield).
    bitfield: u8,
}

impl Spec {
    fn has_flex(&self) -> bool {
        self.steps
            .iter()
            .any(|step| matches!(step, Step::Index { flex: true, .. }))
    }
}

fn parse_access(access: &str) -> Result<Vec<u64>, Error> {
    let parts: Result<Vec<u64>, _> = access.split(':').map(str::parse::<u64>).collect();
    match parts {
        Ok(parts) if !parts.is_empty() && parts.len() <= MAX_SPEC_LEN => Ok(parts),
        _ => err(format!("invalid CO-RE access string {access:?}")),
    }
}

fn bits_of(btf: &Btf, id: u32) -> Result<u64, Error> {
    match btf.size_of(id)? {
        Some(size) => mul(size, 8),
        None => err(format!("{} has no size", btf.describe(id))),
    }
}

/// A trailing flexible array: no elements, and the member it is is the last of its struct.
fn is_flex(btf: &Btf, previous: Option<&Step>, count: u32) -> bool {
    let Some(Step::Member { parent, index, .. }) = previous else {
        return false;
    };
    count == 0
        && btf.get(*parent).is_some_and(|t| {
            t.kind == Kind::Struct && usize::from(t.vlen) == index.saturating_add(1)
        })
}

/// The local spec of a field relocation (`bpf_core_parse_spec`): the object's BTF, which must describe the access.
fn local_spec(btf: &Btf, root: u32, access: &str) -> Result<Spec, Error> {
    let parts = parse_access(access)?;
    let mut ids = parts.iter().copied();
    let first = ids.next().unwrap_or_default();
    let mut current = btf.resolve(root)?;
    let mut spec = Spec {
        first,
        steps: Vec::new(),
        last: current,
        bit_offset: mul(first, bits_of(btf, current)?)?,
        bitfield: 0,
    };
    for index in ids {
        current = btf.resolve(current)?;
        let t = btf.type_by_id(current)?;
        match (t.kind, t.detail) {
            (Kind::Struct | Kind::Union, _) => {
                let member: Member = usize::try_from(index)
                    .ok()
                    .and_then(|i| btf.members(&t).nth(i))
                    .ok_or_else(|| {
                        Error(format!(
                            "CO-RE access {access:?}: {} has no member {index}",
                            btf.describe(current)
                        ))
                    })?;
                spec.bit_offset = add(spec.bit_offset, u64::from(member.bit_offset))?;
                spec.bitfield = member.bitfield_size;
                if member.name != 0 && !btf.string(member.name).is_empty() {
                    spec.steps.push(Step::Member {
                        parent: current,
                        index: index as usize,
                        name: btf.string(member.name).into_owned(),
                    });
                }
                current = member.type_id;
            }
            (Kind::Array, Detail::Array { element, count, .. }) => {
                let flex = is_flex(btf, spec.steps.last(), count);
                if !flex && index >= u64::from(count) {
                    return err(format!(
                        "CO-RE access {access:?}: index {index} is past the {count} elements of the array"
                    ));
                }
                spec.steps.push(Step::Index { index, flex });
                current = element;
                spec.bit_offset = add(spec.bit_offset, mul(index, bits_of(btf, element)?)?)?;
                spec.bitfield = 0;
            }
            _ => {
                return err(format!(
                    "CO-RE access {access:?}: {} has no fields",
                    btf.describe(current)
                ))
            }
        }
    }
    spec.last = current;
    Ok(spec)
}

/// libbpf's "essential" name: the name without a `___flavor` suffix.
pub fn essential(name: &str) -> &str {
    name.find("___")
        .map_or(name, |at| name.get(..at).unwrap_or(name))
}

/// `bpf_core_fields_are_compat`: whether a local and a target field type can be relocated onto each other.
fn fields_compatible(
    local: &Btf,
    local_id: u32,
    target: &Btf,
    target_id: u32,
) -> Result<bool, Error> {
    let (mut local_id, mut target_id) = (local_id, target_id);
    for _ in 0..MAX_SPEC_LEN {
        let (l, t) = (local.resolve(local_id)?, target.resolve(target_id)?);
        let (lt, tt) = (local.type_by_id(l)?, target.type_by_id(t)?);
        let composite = |kind| matches!(kind, Kind::Struct | Kind::Union);
        if composite(lt.kind) && composite(tt.kind) {
            return Ok(true);
        }
        let enums = |kind| matches!(kind, Kind::Enum | Kind::Enum64);
        if lt.kind != tt.kind && !(enums(lt.kind) && enums(tt.kind)) {
            return Ok(false);
        }
        match lt.kind {
            Kind::Ptr | Kind::Float => return Ok(true),
            Kind::Fwd | Kind::Enum | Kind::Enum64 => {
                return Ok(essential(&local.string(lt.name)) == essential(&target.string(tt.name)))
            }
            Kind::Int => {
                // libbpf refuses only the deprecated bitfield-like INTs (an offset or odd bit count).
                let odd = |detail| matches!(detail, Detail::Int { offset, bits, .. } if offset != 0 || bits % 8 != 0);
                return Ok(!odd(lt.detail) && !odd(tt.detail));
            }
            Kind::Array => match (lt.detail, tt.detail) {
                (Detail::Array { element: le, .. }, Detail::Array { element: te, .. }) => {
                    local_id = le;
                    target_id = te;
                }
                _ => return Ok(false),
            },
            _ => return Ok(false),
        }
    }
    Ok(false)
}

/// Why a candidate did not match, for the message when none does.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mismatch {
    NoMember(String),
    Incompatible(String),
    NotArray,
    OutOfBounds { index: u64, count: u32 },
}

/// `(bit offset within target composite `id`, member)` of the member called `name`, through anonymous members.
fn find_member(btf: &Btf, id: u32, name: &str) -> Result<Option<(u64, Member)>, Error> {
    Ok(btf.member(id, name)?)
}

/// The target spec of a candidate root type (`bpf_core_spec_match`), or why it does not match.
fn match_spec(
    local: &Btf,
    spec: &Spec,
    target: &Btf,
    root: u32,
) -> Result<Result<Spec, Mismatch>, Error> {
    let mut current = target.resolve(root)?;
    let mut matched = Spec {
        first: spec.first,
        steps: Vec::new(),
        last: current,
        bit_offset: mul(spec.first, bits_of(target, current)?)?,
        bitfield: 0,
    };
    for step in &spec.steps {
        current = target.resolve(current)?;
        let t = target.type_by_id(current)?;
        match step {
            Step::Member {
                parent,
                index,
                name,
            } => {
                if !matches!(t.kind, Kind::Struct | Kind::Union) {
                    return Ok(Err(Mismatch::NoMember(name.clone())));
                }
                let Some((offset, member)) = find_member(target, current, name)? else {
                    return Ok(Err(Mismatch::NoMember(name.clone())));
                };
                let local_member = local
                    .get(*parent)
                    .and_then(|t| local.members(&t).nth(*index))
                    .ok_or_else(|| Error("a CO-RE spec's member vanished".into()))?;
                if (local_member.bitfield_size == 0) != (member.bitfield_size == 0)
                    || !fields_compatible(local, local_member.type_id, target, member.type_id)?
                {
                    return Ok(Err(Mismatch::Incompatible(name.clone())));
                }
                matched.bit_offset = add(matched.bit_offset, offset)?;
                matched.bitfield = member.bitfield_size;
                // The member's own index in the composite that holds it, for the flexible array check.
                let holder = holder_of(target, current, name)?.unwrap_or((current, 0));
                matched.steps.push(Step::Member {
                    parent: holder.0,
                    index: holder.1,
                    name: name.clone(),
                });
                current = member.type_id;
            }
            Step::Index { index, .. } => {
                let Detail::Array { element, count, .. } = t.detail else {
                    return Ok(Err(Mismatch::NotArray));
                };
                if t.kind != Kind::Array {
                    return Ok(Err(Mismatch::NotArray));
                }
                let flex = is_flex(target, matched.steps.last(), count);
                if !flex && *index >= u64::from(count) {
                    return Ok(Err(Mismatch::OutOfBounds {
                        index: *index,
                        count,
                    }));
                }
                matched.steps.push(Step::Index {
                    index: *index,
                    flex,
                });
                current = element;
                matched.bit_offset =
                    add(matched.bit_offset, mul(*index, bits_of(target, element)?)?)?;
                matched.bitfield = 0;
            }
        }
    }
    matched.last = current;
    Ok(Ok(matched))
}

/// `(composite, member index)` of the composite that directly holds member `name` (through anonymous members).
fn holder_of(btf: &Btf, id: u32, name: &str) -> Result<Option<(u32, usize)>, Error> {
    let mut stack = vec![(btf.resolve(id)?, 0_usize)];
    let mut seen = 0_usize;
    while let Some((current, depth)) = stack.pop() {
        seen = seen.saturating_add(1);
        if seen > 4096 || depth > MAX_SPEC_LEN {
            break;
        }
        let t = btf.type_by_id(current)?;
        for (index, member) in btf.members(&t).enumerate() {
            let member_name = btf.string(member.name);
            if member_name == name {
                return Ok(Some((current, index)));
            }
            if member_name.is_empty() {
                let inner = btf.resolve(member.type_id)?;
                if btf
                    .get(inner)
                    .is_some_and(|t| matches!(t.kind, Kind::Struct | Kind::Union))
                {
                    stack.push((inner, depth.saturating_add(1)));
                }
            }
        }
    }
    Ok(None)
}

/// The value a field relocation of `kind` gives for a spec in `btf` (`None`: a kind pyaya leaves to aya).
fn field_value(btf: &Btf, spec: &Spec, kind: u32) -> Result<Option<u64>, Error> {
    if spec.bitfield != 0 && kind != FIELD_EXISTS {
        return Ok(None);
    }
    Ok(match kind {
        FIELD_BYTE_OFFSET => Some(spec.bit_offset / 8),
        FIELD_BYTE_SIZE => btf.size_of(spec.last)?,
        FIELD_EXISTS => Some(1),
        FIELD_SIGNED => {
            let t = btf.type_by_id(btf.resolve(spec.last)?)?;
            Some(u64::from(match (t.kind, t.detail) {
                (Kind::Int, Detail::Int { encoding, .. }) => encoding & crate::btf::INT_SIGNED != 0,
                (Kind::Enum | Kind::Enum64, _) => t.kind_flag,
                _ => false,
            }))
        }
        _ => None,
    })
}

/// What relocating one record against the target gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The instruction's value becomes `target` (it holds `local` now).
    Value { local: u64, target: u64 },
    /// No candidate matches: `why`, in words for the user.
    Failed(String),
}

/// The root types of the target a local root may relocate onto: same kind, same essential name. Found for every
/// name the object's records need in one scan of the target (vmlinux has some 100k types).
pub struct Candidates<'t> {
    target: &'t Btf,
    found: HashMap<(String, bool), Vec<u32>>,
}

impl<'t> Candidates<'t> {
    /// `wanted`: the essential names of the records' root types.
    pub fn new(target: &'t Btf, wanted: &HashSet<String>) -> Self {
        let mut found: HashMap<(String, bool), Vec<u32>> = HashMap::new();
        if !wanted.is_empty() {
            let kinds = [Kind::Struct, Kind::Union, Kind::Enum, Kind::Enum64];
            for (id, kind, name) in target.named_of_kinds(&kinds) {
                // Essential names: the bytes before a `___flavor` suffix.
                let end = name
                    .windows(3)
                    .position(|w| w == b"___")
                    .unwrap_or(name.len());
                let Some(base) = name.get(..end).and_then(|b| std::str::from_utf8(b).ok()) else {
                    continue;
                };
                if wanted.contains(base) {
                    let composite = matches!(kind, Kind::Struct | Kind::Union);
                    found
                        .entry((base.to_owned(), composite))
                        .or_default()
                        .push(id);
                }
            }
        }
        Self { target, found }
    }

    fn of(&self, name: &str, composite: bool) -> &[u32] {
        self.found
            .get(&(name.to_owned(), composite))
            .map_or(&[], Vec::as_slice)
    }
}

/// How the record's root type and access read for the user: `struct task_struct.comm` (access `0:2`).
pub fn describe(local: &Btf, record: &Record) -> String {
    let root = record.type_id;
    let name = local.name_of(root);
    let base = essential(&name);
    let kind = match local.get(root).map(|t| t.kind) {
        Some(Kind::Union) => "union",
        Some(Kind::Enum | Kind::Enum64) => "enum",
        Some(Kind::Struct) => "struct",
        _ => "type",
    };
    let mut text = format!("{kind} {base}");
    if record.kind <= FIELD_RSHIFT_U64 {
        if let Ok(spec) = local_spec(local, record.type_id, &record.access) {
            for step in &spec.steps {
                match step {
                    Step::Member { name, .. } => {
                        text.push('.');
                        text.push_str(name);
                    }
                    Step::Index { index, .. } => text.push_str(&format!("[{index}]")),
                }
            }
        }
    } else if matches!(record.kind, ENUMVAL_EXISTS | ENUMVAL_VALUE) {
        let value = record
            .access
            .parse::<usize>()
            .ok()
            .and_then(|i| local.get(root).and_then(|t| local.values(&t).nth(i)))
            .map(|v| local.string(v.name).into_owned());
        if let Some(value) = value {
            text.push_str(&format!("::{value}"));
        }
    }
    if base != name {
        text.push_str(&format!(" (declared as {name})"));
    }
    text
}

/// Whether a record's access walks into a trailing flexible array (the records pyaya relocates itself).
pub fn indexes_flex_array(local: &Btf, record: &Record) -> bool {
    record.kind <= FIELD_SIGNED
        && local_spec(local, record.type_id, &record.access).is_ok_and(|spec| spec.has_flex())
}

/// Relocates a record against the target BTF as libbpf would; `Ok(None)` for records pyaya does not evaluate
/// (aya does: type ids, exists and matches kinds, bitfield shifts).
pub fn relocate(
    local: &Btf,
    record: &Record,
    candidates: &Candidates<'_>,
) -> Result<Option<Outcome>, Error> {
    // libbpf names candidates after the record's own type (a typedef is not looked through).
    let root_type = local.type_by_id(record.type_id)?;
    let name = local.string(root_type.name).into_owned();
    let base = essential(&name).to_owned();
    let target = candidates.target;
    match record.kind {
        FIELD_EXISTS => {
            let spec = local_spec(local, record.type_id, &record.access)?;
            if !matches!(root_type.kind, Kind::Struct | Kind::Union) || base.is_empty() {
                return Ok(None);
            }
            let found = match_any(local, &spec, candidates, &base, root_type.kind)?;
            Ok(Some(Outcome::Value {
                local: 1,
                target: u64::from(found.is_ok()),
            }))
        }
        FIELD_BYTE_OFFSET | FIELD_BYTE_SIZE | FIELD_SIGNED | FIELD_LSHIFT_U64
        | FIELD_RSHIFT_U64 => {
            let spec = local_spec(local, record.type_id, &record.access)?;
            let composite = matches!(root_type.kind, Kind::Struct | Kind::Union);
            if !composite || base.is_empty() {
                return Ok(None);
            }
            let Some(local_value) = field_value(local, &spec, record.kind)? else {
                // Bitfields and shifts: aya evaluates them; only whether a candidate matches is checked here.
                return match_any(local, &spec, candidates, &base, root_type.kind)
                    .map(|found| found.err().map(Outcome::Failed));
            };
            let mut values: Vec<u64> = Vec::new();
            let mut why = None;
            for &candidate in candidates.of(&base, true) {
                if target.get(candidate).map(|t| t.kind) != Some(root_type.kind) {
                    continue;
                }
                match match_spec(local, &spec, target, candidate)? {
                    Ok(matched) => {
                        if let Some(value) = field_value(target, &matched, record.kind)? {
                            values.push(value);
                        }
                    }
                    Err(mismatch) => why = why.or(Some(mismatch)),
                }
            }
            values.sort_unstable();
            values.dedup();
            match values.as_slice() {
                [] => Ok(Some(Outcome::Failed(failure(&base, root_type.kind, why)))),
                [value] => Ok(Some(Outcome::Value {
                    local: local_value,
                    target: *value,
                })),
                _ => err(format!(
                    "CO-RE relocation of {}: the target BTF has several {base} types that disagree ({values:?})",
                    describe(local, record)
                )),
            }
        }
        TYPE_ID_TARGET | TYPE_SIZE => {
            let composite = matches!(root_type.kind, Kind::Struct | Kind::Union);
            let enumeration = matches!(root_type.kind, Kind::Enum | Kind::Enum64);
            if base.is_empty() || !(composite || enumeration) {
                return Ok(None);
            }
            let found = candidates.of(&base, composite).iter().any(|&id| {
                target
                    .get(id)
                    .is_some_and(|t| t.kind == root_type.kind || (enumeration && !composite))
            });
            Ok((!found).then(|| {
                Outcome::Failed(format!(
                    "the kernel's BTF has no {} {base}",
                    kind_word(root_type.kind)
                ))
            }))
        }
        ENUMVAL_VALUE => {
            let index: usize = record
                .access
                .parse()
                .map_err(|_| Error(format!("invalid CO-RE access string {:?}", record.access)))?;
            let Some(value) = local.values(&root_type).nth(index) else {
                return err(format!(
                    "CO-RE access {:?}: no such enumerator",
                    record.access
                ));
            };
            if base.is_empty() {
                return Ok(None);
            }
            let wanted = local.string(value.name).into_owned();
            let found = candidates.of(&base, false).iter().any(|&id| {
                target.get(id).is_some_and(|t| {
                    target
                        .values(&t)
                        .any(|v| essential(&target.string(v.name)) == essential(&wanted))
                })
            });
            Ok((!found).then(|| {
                Outcome::Failed(format!(
                    "the kernel's BTF has no enumerator {wanted} in enum {base}"
                ))
            }))
        }
        _ => Ok(None),
    }
}

fn kind_word(kind: Kind) -> &'static str {
    match kind {
        Kind::Union => "union",
        Kind::Enum | Kind::Enum64 => "enum",
        _ => "struct",
    }
}

fn match_any(
    local: &Btf,
    spec: &Spec,
    candidates: &Candidates<'_>,
    base: &str,
    kind: Kind,
) -> Result<Result<(), String>, Error> {
    let target = candidates.target;
    let mut why = None;
    for &candidate in candidates.of(base, true) {
        if target.get(candidate).map(|t| t.kind) != Some(kind) {
            continue;
        }
        match match_spec(local, spec, target, candidate)? {
            Ok(_) => return Ok(Ok(())),
            Err(mismatch) => why = why.or(Some(mismatch)),
        }
    }
    Ok(Err(failure(base, kind, why)))
}

fn failure(base: &str, kind: Kind, why: Option<Mismatch>) -> String {
    let what = kind_word(kind);
    match why {
        None => format!("the kernel's BTF has no {what} {base}"),
        Some(Mismatch::NoMember(name)) => {
            format!("the kernel's BTF has no such member ({what} {base} has no {name})")
        }
        Some(Mismatch::Incompatible(name)) => {
            format!("the kernel's {what} {base} has member {name} with an incompatible type")
        }
        Some(Mismatch::NotArray) => {
            format!("in the kernel's {what} {base}, the field indexed is not an array")
        }
        Some(Mismatch::OutOfBounds { index, count }) => {
            format!(
                "in the kernel's {what} {base}, index {index} is past the array's {count} elements"
            )
        }
    }
}

/// The hint that follows a failure, by relocation kind.
pub fn hint(kind: u32) -> &'static str {
    match kind {
        TYPE_ID_TARGET | TYPE_SIZE => "guard it with bpf_core_type_exists()",
        ENUMVAL_VALUE => "guard it with bpf_core_enum_value_exists()",
        _ => "guard it with bpf_core_field_exists()",
    }
}

/// An instruction rewrite: `at` is its file offset, `end` the end of its section's bytes in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patch {
    pub at: u64,
    pub end: u64,
    /// `None`: poisoned as aya and libbpf poison an unresolvable relocation (a call the verifier refuses where
    /// it is reachable).
    pub value: Option<(u64, u64)>,
}

/// What the pass does with the object's CO-RE records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub patches: Vec<Patch>,
    /// The `.BTF.ext` offsets of the records pyaya relocated itself, removed so that aya does not see them.
    pub removed: HashSet<u64>,
    pub failures: Vec<CoreFailure>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.patches.is_empty() && self.removed.is_empty()
    }
}

/// The function symbol (program or subprogram) of `section` around byte `offset`, and the instruction's index in
/// it.
fn function_at(elf: &Elf<'_>, section: &Section, offset: u32) -> Option<(String, u64)> {
    let offset = u64::from(offset);
    elf.symbols
        .iter()
        .filter(|symbol| symbol.section == Some(section.index) && symbol.kind == STT_FUNC)
        .find(|symbol| {
            symbol.value <= offset
                && symbol
                    .value
                    .checked_add(symbol.size.max(1))
                    .is_some_and(|end| offset < end)
        })
        .and_then(|symbol| Some((symbol.name.clone(), offset.checked_sub(symbol.value)? / 8)))
}

/// Reads every CO-RE record, relocates those into trailing flexible arrays, and notes the ones the target BTF
/// cannot satisfy. Records pyaya cannot read or walk are left to aya, which reports them (the flexible array ones
/// excepted: aya would refuse them anyway, so what is wrong is said here).
pub fn plan(
    elf: &Elf<'_>,
    local: &Btf,
    ext: &[u8],
    little: bool,
    target: &Btf,
) -> Result<Plan, Error> {
    let mut plan = Plan::default();
    // A .BTF.ext pyaya cannot read is aya's to report (it reads the same records).
    let Ok(areas) = ext_areas(ext, little) else {
        return Ok(plan);
    };
    let Ok(records) = records(ext, &areas, little, local) else {
        return Ok(plan);
    };
    let wanted: HashSet<String> = records
        .iter()
        .filter_map(|record| local.get(record.type_id))
        .map(|t| essential(&local.string(t.name)).to_owned())
        .filter(|name| !name.is_empty())
        .collect();
    let candidates = Candidates::new(target, &wanted);
    for record in records {
        let flex = indexes_flex_array(local, &record);
        let outcome = if flex {
            relocate(local, &record, &candidates)?
        } else {
            relocate(local, &record, &candidates).ok().flatten()
        };
        let Some(outcome) = outcome else { continue };
        let section = elf.section(&record.section);
        if let Outcome::Failed(why) = &outcome {
            let function = section.and_then(|section| function_at(elf, section, record.insn_off));
            plan.failures.push(CoreFailure {
                insn_index: function.as_ref().map(|(_, index)| *index),
                function: function.map(|(name, _)| name),
                section: record.section.clone(),
                insn_off: record.insn_off,
                message: format!(
                    "CO-RE relocation of {} (access {}) failed: {why}; {}",
                    describe(local, &record),
                    record.access,
                    hint(record.kind)
                ),
            });
        }
        if !flex {
            continue;
        }
        let section = section.ok_or_else(|| {
            Error(format!(
                "a CO-RE relocation names section {:?}, which the object does not have",
                record.section
            ))
        })?;
        if add(u64::from(record.insn_off), 8)? > section.size {
            return err(format!(
                "a CO-RE relocation's instruction (byte {}) is past the end of section {:?}",
                record.insn_off, record.section
            ));
        }
        plan.patches.push(Patch {
            at: add(section.offset, u64::from(record.insn_off))?,
            end: add(section.offset, section.size)?,
            value: match outcome {
                Outcome::Value { local, target } => Some((local, target)),
                Outcome::Failed(_) => None,
            },
        });
        plan.removed.insert(record.at);
    }
    Ok(plan)
}

/// Writes a patch as libbpf's `bpf_core_patch_insn` does: the immediate of an ALU instruction or of a 64-bit load,
/// the offset of a memory access, each checked to hold the local value first.
pub fn apply(editor: &mut Editor, patch: &Patch) -> Result<(), Error> {
    let at = patch.at;
    let code = editor.read(at, 1)? as u8;
    let wide = code == LD_IMM64;
    if wide && add(at, 16)? > patch.end {
        return err(format!(
            "a CO-RE relocation's 64-bit load at byte {at} runs past its section"
        ));
    }
    let Some((local, target)) = patch.value else {
        for slot in if wide {
            [0, 8].as_slice()
        } else {
            [0].as_slice()
        } {
            let slot = add(at, *slot)?;
            editor.write(slot, u64::from(CALL), 1)?;
            editor.write(add(slot, 1)?, 0, 1)?;
            editor.write(add(slot, 2)?, 0, 2)?;
            editor.write(add(slot, 4)?, u64::from(POISON as u32), 4)?;
        }
        return Ok(());
    };
    let unexpected = |found: u64| {
        err(format!(
            "the CO-RE relocated instruction at byte {at} holds {found}, not the object's own value {local}"
        ))
    };
    match code & 0x07 {
        // BPF_ALU, BPF_ALU64 with an immediate operand.
        0x04 | 0x07 => {
            if code & 0x08 != 0 {
                return err(format!("the CO-RE relocated instruction at byte {at} has no immediate operand"));
            }
            let imm = editor.read(add(at, 4)?, 4)?;
            if imm != local {
                return unexpected(imm);
            }
            if target > u64::from(u32::MAX >> 1) {
                return err(format!("a CO-RE relocated value {target} does not fit an instruction's immediate"));
            }
            editor.write(add(at, 4)?, target, 4)
        }
        // BPF_LDX, BPF_ST, BPF_STX: the offset.
        0x01..=0x03 => {
            let off = editor.read(add(at, 2)?, 2)?;
            if off != local {
                return unexpected(off);
            }
            if target > i16::MAX as u64 {
                return err(format!("a CO-RE relocated offset {target} does not fit a memory access (at most 32767)"));
            }
            editor.write(add(at, 2)?, target, 2)
        }
        _ if wide => {
            let low = editor.read(add(at, 4)?, 4)?;
            let high = editor.read(add(at, 12)?, 4)?;
            let value = (high << 32) | low;
            if value != local {
                return unexpected(value);
            }
            editor.write(add(at, 4)?, target & 0xffff_ffff, 4)?;
            editor.write(add(at, 12)?, target >> 32, 4)
        }
        _ => err(format!(
            "the CO-RE relocated instruction at byte {at} (opcode {code:#04x}) is not one libbpf relocates"
        )),
    }
}

/// `.BTF.ext` without the CO-RE records at `removed` (blocks left empty dropped, the header's lengths and the
/// offsets of later areas adjusted).
pub fn remove_records(ext: &[u8], little: bool, removed: &HashSet<u64>) -> Result<Vec<u8>, Error> {
    let truncated = || Error("truncated .BTF.ext CO-RE relocations".into());
    let areas = ext_areas(ext, little)?;
    let Some(area) = areas.iter().find(|area| area.which == 2) else {
        return Ok(ext.to_vec());
    };
    let bytes = |start: u64, len: u64| {
        span(start, len)
            .and_then(|range| ext.get(range))
            .ok_or_else(truncated)
    };
    let word = |at: u64| word_at(ext, at, little).ok_or_else(truncated);
    let encode = |value: u32| {
        if little {
            value.to_le_bytes()
        } else {
            value.to_be_bytes()
        }
    };
    let mut area_bytes = bytes(area.start, 4)?.to_vec();
    let mut at = area.first_block;
    while add(at, 8)? <= area.end {
        let (name, count) = (word(at)?, word(add(at, 4)?)?);
        let mut kept: Vec<u8> = Vec::new();
        let mut kept_count = 0_u32;
        let mut record = add(at, 8)?;
        for _ in 0..count {
            if add(record, area.record_size)? > area.end {
                return Err(truncated());
            }
            if !removed.contains(&record) {
                kept.extend_from_slice(bytes(record, area.record_size)?);
                kept_count = kept_count.saturating_add(1);
            }
            record = add(record, area.record_size)?;
        }
        if kept_count > 0 {
            area_bytes.extend_from_slice(&encode(name));
            area_bytes.extend_from_slice(&encode(kept_count));
            area_bytes.extend_from_slice(&kept);
        }
        at = record;
    }
    let old_len = area.end.checked_sub(area.start).ok_or_else(truncated)?;
    let shrunk = old_len
        .checked_sub(area_bytes.len() as u64)
        .ok_or_else(truncated)?;
    let mut out = bytes(0, area.start)?.to_vec();
    out.extend_from_slice(&area_bytes);
    out.extend_from_slice(
        ext.get(span(area.end, 0).ok_or_else(truncated)?.start..)
            .unwrap_or_default(),
    );
    let mut set = |at: u64, value: u32| -> Result<(), Error> {
        span(at, 4)
            .and_then(|range| out.get_mut(range))
            .ok_or_else(truncated)?
            .copy_from_slice(&encode(value));
        Ok(())
    };
    set(
        28,
        u32::try_from(area_bytes.len()).map_err(|_| truncated())?,
    )?;
    let header = u64::from(word(4)?);
    for offset_at in [8, 16] {
        let offset = word(offset_at)?;
        if add(header, u64::from(offset))? >= area.end {
            let moved = u64::from(offset)
                .checked_sub(shrunk)
                .ok_or_else(truncated)?;
            set(offset_at, u32::try_from(moved).map_err(|_| truncated())?)?;
        }
    }
    Ok(out)
}
