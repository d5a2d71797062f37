//! BTF to a C header, as `bpftool btf dump file ... format c` writes one (the algorithm of libbpf's `btf_dump.c`,
//! written anew on this crate's reader): types are ordered so that each definition follows what it embeds,
//! pointers to named structs and unions break cycles with forward declarations, anonymous types are inlined,
//! padding and `__attribute__((packed))` are added where natural alignment would not give the BTF's offsets, and
//! a name used twice gets `___N`. Every walk is depth-bounded, so malformed BTF (a loop of qualifiers, a type that
//! contains itself) is an error, never unbounded recursion.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::btf::{Btf, Detail, Error, Kind, Type};

/// How deep ordering, emission and declarators may nest before the BTF is called malformed.
const MAX_DEPTH: usize = 512;
const PTR_SIZE: u32 = 8;

const C_KEYWORDS: &[&str] = &[
    "auto",
    "break",
    "case",
    "char",
    "const",
    "continue",
    "default",
    "do",
    "double",
    "else",
    "enum",
    "extern",
    "float",
    "for",
    "goto",
    "if",
    "inline",
    "int",
    "long",
    "register",
    "restrict",
    "return",
    "short",
    "signed",
    "sizeof",
    "static",
    "struct",
    "switch",
    "typedef",
    "union",
    "unsigned",
    "void",
    "volatile",
    "while",
    "_Bool",
    "_Complex",
    "_Imaginary",
    "_Alignas",
    "_Alignof",
    "_Atomic",
    "_Generic",
    "_Noreturn",
    "_Static_assert",
    "_Thread_local",
];

#[derive(Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    No,
    Doing,
    Done,
}

fn malformed(what: &str, id: u32) -> Error {
    Error(format!("BTF type {id}: {what}"))
}

/// A C identifier for `name`: itself when it is one, else with invalid characters replaced and a `_` appended to
/// keywords (Rust objects' BTF can name a member `int` or `default`).
fn c_identifier(name: &str) -> String {
    let valid = name
        .bytes()
        .enumerate()
        .all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()));
    let mut out = if valid {
        name.to_owned()
    } else {
        name.chars()
            .enumerate()
            .map(|(i, c)| {
                if c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    if C_KEYWORDS.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

struct Dumper<'a> {
    btf: &'a Btf,
    order: Vec<State>,
    emit: Vec<State>,
    fwd_emitted: Vec<bool>,
    referenced: Vec<bool>,
    names: Vec<Option<String>>,
    type_names: HashMap<String, usize>,
    ident_names: HashMap<String, usize>,
    align: Vec<u32>,
    queue: Vec<u32>,
    out: String,
    depth: usize,
}

impl<'a> Dumper<'a> {
    fn new(btf: &'a Btf) -> Self {
        let n = btf.len();
        Self {
            btf,
            order: vec![State::No; n],
            emit: vec![State::No; n],
            fwd_emitted: vec![false; n],
            referenced: vec![false; n],
            names: vec![None; n],
            type_names: HashMap::new(),
            ident_names: HashMap::new(),
            align: vec![0; n],
            queue: Vec::new(),
            out: String::with_capacity(n * 48),
            depth: 0,
        }
    }

    fn t(&self, id: u32) -> Result<Type, Error> {
        self.btf.type_by_id(id)
    }

    fn enter(&mut self, id: u32) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(malformed(
                &format!("types nest more than {MAX_DEPTH} deep (a loop?)"),
                id,
            ));
        }
        Ok(())
    }

    fn set<T: Copy>(table: &mut [T], id: u32, value: T) {
        if let Some(slot) = table.get_mut(id as usize) {
            *slot = value;
        }
    }

    fn get<T: Copy + Default>(table: &[T], id: u32) -> T {
        table.get(id as usize).copied().unwrap_or_default()
    }

    fn mark_referenced(&mut self) -> Result<(), Error> {
        for id in 1..self.btf.len() as u32 {
            let t = self.t(id)?;
            let mut refs: Vec<u32> = Vec::new();
            match t.kind {
                Kind::Struct | Kind::Union => refs.extend(self.btf.members(&t).map(|m| m.type_id)),
                Kind::FuncProto => {
                    refs.push(t.size_or_type);
                    refs.extend(self.btf.params(&t).map(|p| p.type_id));
                }
                Kind::Datasec => refs.extend(self.btf.vars(&t).map(|v| v.type_id)),
                Kind::Array => {
                    if let Detail::Array { element, index, .. } = t.detail {
                        refs.extend([element, index]);
                    }
                }
                _ => refs.extend(t.target()),
            }
            for r in refs {
                Self::set(&mut self.referenced, r, true);
            }
        }
        Ok(())
    }

    /// `btf__align_of`: natural alignment, 1 for a composite whose offsets or size natural alignment can't give.
    fn align_of(&mut self, id: u32) -> Result<u32, Error> {
        let known = Self::get(&self.align, id);
        if known != 0 {
            return Ok(known);
        }
        self.enter(id)?;
        let t = self.t(id)?;
        let align = match t.kind {
            Kind::Int | Kind::Enum | Kind::Enum64 | Kind::Float => {
                PTR_SIZE.min(t.size_or_type).max(1)
            }
            Kind::Ptr => PTR_SIZE,
            k if k.is_modifier() => self.align_of(t.size_or_type)?,
            Kind::Array => match t.detail {
                Detail::Array { element, .. } => self.align_of(element)?,
                _ => 1,
            },
            Kind::Struct | Kind::Union => {
                let mut max_align = 1;
                let mut packed = false;
                let members: Vec<_> = self.btf.members(&t).collect();
                for m in members {
                    let align = self.align_of(m.type_id)?;
                    max_align = max_align.max(align);
                    if m.bitfield_size == 0 && m.bit_offset % (8 * align) != 0 {
                        packed = true;
                    }
                }
                if packed || t.size_or_type % max_align != 0 {
                    1
                } else {
                    max_align
                }
            }
            _ => 1,
        };
        self.depth -= 1;
        Self::set(&mut self.align, id, align);
        Ok(align)
    }

    fn is_packed(&mut self, t: &Type) -> Result<bool, Error> {
        let mut max_align = 1;
        let members: Vec<_> = self.btf.members(t).collect();
        for m in members {
            let align = self.align_of(m.type_id)?;
            if m.bitfield_size == 0 && m.bit_offset % (8 * align) != 0 {
                return Ok(true);
            }
            max_align = max_align.max(align);
        }
        Ok(t.size_or_type % max_align != 0)
    }

    /// The ordering pass: returns whether `id` is a strong (by-value) dependency; queues named definitions.
    fn order_type(&mut self, id: u32, through_ptr: bool) -> Result<bool, Error> {
        if Self::get(&self.order, id) == State::Done {
            return Ok(true);
        }
        let t = self.t(id)?;
        let composite = matches!(t.kind, Kind::Struct | Kind::Union);
        if Self::get(&self.order, id) == State::Doing {
            if composite && through_ptr && t.name != 0 {
                return Ok(false);
            }
            return Err(malformed("an unsatisfiable type cycle", id));
        }
        self.enter(id)?;
        let strong = match t.kind {
            Kind::Void => true,
            Kind::Int | Kind::Float => {
                Self::set(&mut self.order, id, State::Done);
                false
            }
            Kind::Ptr => {
                let strong = self.order_type(t.size_or_type, true)?;
                Self::set(&mut self.order, id, State::Done);
                strong
            }
            Kind::Array => match t.detail {
                Detail::Array { element, .. } => self.order_type(element, false)?,
                _ => false,
            },
            Kind::Struct | Kind::Union => {
                if through_ptr && t.name != 0 {
                    self.depth -= 1;
                    return Ok(false);
                }
                Self::set(&mut self.order, id, State::Doing);
                let members: Vec<u32> = self.btf.members(&t).map(|m| m.type_id).collect();
                for member in members {
                    self.order_type(member, false)?;
                }
                if t.name != 0 {
                    self.queue.push(id);
                }
                Self::set(&mut self.order, id, State::Done);
                true
            }
            Kind::Enum | Kind::Enum64 | Kind::Fwd => {
                if t.name != 0 || !Self::get(&self.referenced, id) {
                    self.queue.push(id);
                }
                Self::set(&mut self.order, id, State::Done);
                true
            }
            Kind::Typedef => {
                let strong = self.order_type(t.size_or_type, through_ptr)?;
                if through_ptr && !strong {
                    false
                } else {
                    self.queue.push(id);
                    Self::set(&mut self.order, id, State::Done);
                    true
                }
            }
            Kind::Volatile | Kind::Const | Kind::Restrict | Kind::TypeTag => {
                self.order_type(t.size_or_type, through_ptr)?
            }
            Kind::FuncProto => {
                let mut strong = self.order_type(t.size_or_type, through_ptr)?;
                let params: Vec<u32> = self.btf.params(&t).map(|p| p.type_id).collect();
                for param in params {
                    strong |= self.order_type(param, through_ptr)?;
                }
                strong
            }
            Kind::Func | Kind::Var | Kind::Datasec | Kind::DeclTag => {
                Self::set(&mut self.order, id, State::Done);
                false
            }
        };
        self.depth -= 1;
        Ok(strong)
    }

    fn resolve_name(&mut self, id: u32, ident: bool) -> Result<String, Error> {
        let t = self.t(id)?;
        if t.name == 0 {
            return Ok(String::new());
        }
        if let Some(Some(name)) = self.names.get(id as usize) {
            return Ok(name.clone());
        }
        let original = c_identifier(&self.btf.string(t.name));
        let name = if t.kind == Kind::Fwd || (t.kind == Kind::Enum && t.vlen == 0) {
            original
        } else {
            let map = if ident {
                &mut self.ident_names
            } else {
                &mut self.type_names
            };
            let count = map.entry(original.clone()).or_insert(0);
            *count += 1;
            if *count > 1 {
                format!("{original}___{count}")
            } else {
                original
            }
        };
        Self::set_name(&mut self.names, id, name.clone());
        Ok(name)
    }

    fn set_name(names: &mut [Option<String>], id: u32, name: String) {
        if let Some(slot) = names.get_mut(id as usize) {
            *slot = Some(name);
        }
    }

    fn type_name(&mut self, id: u32) -> Result<String, Error> {
        self.resolve_name(id, false)
    }

    fn ident_name(&mut self, id: u32) -> Result<String, Error> {
        self.resolve_name(id, true)
    }

    fn enumerator_name(&mut self, raw: &str) -> String {
        let original = c_identifier(raw);
        let count = self.ident_names.entry(original.clone()).or_insert(0);
        *count += 1;
        if *count > 1 {
            format!("{original}___{count}")
        } else {
            original
        }
    }

    fn blacklisted(&self, t: &Type) -> bool {
        t.name != 0 && self.btf.string(t.name) == "__builtin_va_list"
    }

    fn emit_type(&mut self, id: u32, container: u32) -> Result<(), Error> {
        let top_level = container == 0;
        let state = Self::get(&self.emit, id);
        if state == State::Done {
            return Ok(());
        }
        let t = self.t(id)?;
        if state == State::Doing {
            if Self::get(&self.fwd_emitted, id) {
                return Ok(());
            }
            match t.kind {
                Kind::Struct | Kind::Union => {
                    if id == container {
                        return Ok(());
                    }
                    if t.name == 0 {
                        return Err(malformed("an anonymous struct/union loop", id));
                    }
                    self.emit_struct_fwd(id, &t)?;
                    self.out.push_str(";\n\n");
                    Self::set(&mut self.fwd_emitted, id, true);
                }
                Kind::Typedef => {
                    if !self.blacklisted(&t) {
                        self.emit_typedef_def(id, &t, 0)?;
                        self.out.push_str(";\n\n");
                    }
                    Self::set(&mut self.fwd_emitted, id, true);
                }
                _ => {}
            }
            return Ok(());
        }
        self.enter(id)?;
        match t.kind {
            Kind::Int | Kind::Float => Self::set(&mut self.emit, id, State::Done),
            Kind::Enum | Kind::Enum64 => {
                if top_level {
                    self.emit_enum_def(id, &t, 0)?;
                    self.out.push_str(";\n\n");
                }
                Self::set(&mut self.emit, id, State::Done);
            }
            Kind::Ptr | Kind::Volatile | Kind::Const | Kind::Restrict | Kind::TypeTag => {
                self.emit_type(t.size_or_type, container)?;
            }
            Kind::Array => {
                if let Detail::Array { element, .. } = t.detail {
                    self.emit_type(element, container)?;
                }
            }
            Kind::Fwd => {
                self.emit_fwd_def(id, &t)?;
                self.out.push_str(";\n\n");
                Self::set(&mut self.emit, id, State::Done);
            }
            Kind::Typedef => {
                Self::set(&mut self.emit, id, State::Doing);
                self.emit_type(t.size_or_type, id)?;
                if !Self::get(&self.fwd_emitted, id) && !self.blacklisted(&t) {
                    self.emit_typedef_def(id, &t, 0)?;
                    self.out.push_str(";\n\n");
                }
                Self::set(&mut self.emit, id, State::Done);
            }
            Kind::Struct | Kind::Union => {
                Self::set(&mut self.emit, id, State::Doing);
                if top_level || t.name == 0 {
                    let inner = if t.name == 0 { container } else { id };
                    let members: Vec<u32> = self.btf.members(&t).map(|m| m.type_id).collect();
                    for member in members {
                        self.emit_type(member, inner)?;
                    }
                } else if !Self::get(&self.fwd_emitted, id) && id != container {
                    self.emit_struct_fwd(id, &t)?;
                    self.out.push_str(";\n\n");
                    Self::set(&mut self.fwd_emitted, id, true);
                }
                if top_level {
                    self.emit_struct_def(id, &t, 0)?;
                    self.out.push_str(";\n\n");
                    Self::set(&mut self.emit, id, State::Done);
                } else {
                    Self::set(&mut self.emit, id, State::No);
                }
            }
            Kind::FuncProto => {
                self.emit_type(t.size_or_type, container)?;
                let params: Vec<u32> = self.btf.params(&t).map(|p| p.type_id).collect();
                for param in params {
                    self.emit_type(param, container)?;
                }
            }
            _ => {}
        }
        self.depth -= 1;
        Ok(())
    }

    fn indent(&mut self, level: usize) {
        for _ in 0..level {
            self.out.push('\t');
        }
    }

    fn emit_struct_fwd(&mut self, id: u32, t: &Type) -> Result<(), Error> {
        let keyword = if t.kind == Kind::Union {
            "union"
        } else {
            "struct"
        };
        let name = self.type_name(id)?;
        let space = if name.is_empty() { "" } else { " " };
        let _ = write!(self.out, "{keyword}{space}{name}");
        Ok(())
    }

    fn emit_fwd_def(&mut self, id: u32, t: &Type) -> Result<(), Error> {
        let name = self.type_name(id)?;
        let keyword = if t.kind_flag { "union" } else { "struct" };
        let _ = write!(self.out, "{keyword} {name}");
        Ok(())
    }

    fn emit_enum_fwd(&mut self, id: u32) -> Result<(), Error> {
        let name = self.type_name(id)?;
        let _ = write!(self.out, "enum {name}");
        Ok(())
    }

    fn emit_typedef_def(&mut self, id: u32, t: &Type, level: usize) -> Result<(), Error> {
        let name = self.ident_name(id)?;
        if t.size_or_type == 0 && name == "__gnuc_va_list" {
            self.out
                .push_str("typedef __builtin_va_list __gnuc_va_list");
            return Ok(());
        }
        self.out.push_str("typedef ");
        self.emit_type_decl(t.size_or_type, &name, level)
    }

    fn emit_enum_def(&mut self, id: u32, t: &Type, level: usize) -> Result<(), Error> {
        let name = self.type_name(id)?;
        let space = if name.is_empty() { "" } else { " " };
        let _ = write!(self.out, "enum{space}{name}");
        if t.vlen == 0 {
            return Ok(());
        }
        self.out.push_str(" {");
        let values: Vec<_> = self.btf.values(t).collect();
        let wide = t.kind == Kind::Enum64;
        for value in &values {
            let raw = self.btf.string(value.name).into_owned();
            let name = self.enumerator_name(&raw);
            self.out.push('\n');
            self.indent(level + 1);
            let _ = match (wide, t.kind_flag) {
                (false, _) => write!(self.out, "{name} = {},", value.value),
                (true, true) => write!(self.out, "{name} = {}LL,", value.value),
                (true, false) => write!(self.out, "{name} = {}ULL,", value.value),
            };
        }
        self.out.push('\n');
        self.indent(level);
        self.out.push('}');
        if t.size_or_type == 1 {
            self.out.push_str(" __attribute__((mode(byte)))");
        } else if t.size_or_type == 8 {
            // An ENUM of 8 bytes, or an ENUM64 whose values all fit in 32 bits, is 8 bytes only with mode(word).
            let word = !wide || values.iter().all(|v| (v.value as u64) >> 32 == 0);
            if word {
                self.out.push_str(" __attribute__((mode(word)))");
            }
        }
        Ok(())
    }

    fn emit_bit_padding(
        &mut self,
        mut current: u64,
        next: u64,
        next_align: u32,
        in_bitfield: bool,
        level: usize,
    ) {
        const PADS: [(&str, u64); 4] = [("long", 64), ("int", 32), ("short", 16), ("char", 8)];
        if current >= next {
            return;
        }
        let (mut pad_type, mut pad_bits, mut new_off) = ("char", 8, current);
        for (name, bits) in PADS {
            pad_type = name;
            pad_bits = bits;
            new_off = current.div_ceil(bits) * bits;
            if new_off <= next {
                break;
            }
        }
        if new_off > current && new_off <= next {
            let align_bits = u64::from(next_align) * 8;
            if in_bitfield
                || (new_off == next && current.div_ceil(align_bits) * align_bits != new_off)
                || (new_off != next && next - new_off <= new_off - current)
            {
                self.out.push('\n');
                self.indent(level);
                let bits = if in_bitfield { new_off - current } else { 0 };
                let _ = write!(self.out, "{pad_type}: {bits};");
            }
            current = new_off;
        }
        while current < next {
            let bits = (next - current).min(pad_bits);
            if bits == pad_bits {
                self.out.push('\n');
                self.indent(level);
                let _ = write!(self.out, "{pad_type}: {pad_bits};");
                current += bits;
                continue;
            }
            for (name, size) in PADS.iter().rev() {
                if *size < bits {
                    continue;
                }
                self.out.push('\n');
                self.indent(level);
                let _ = write!(self.out, "{name}: {bits};");
                current += bits;
                break;
            }
        }
    }

    fn emit_struct_def(&mut self, id: u32, t: &Type, level: usize) -> Result<(), Error> {
        self.enter(id)?;
        let is_struct = t.kind == Kind::Struct;
        let align = self.align_of(id)?;
        let packed = is_struct && self.is_packed(t)?;
        self.emit_struct_fwd(id, t)?;
        self.out.push_str(" {");
        let members: Vec<_> = self.btf.members(t).collect();
        let (mut offset, mut previous_bitfield) = (0_u64, false);
        for m in &members {
            let name = c_identifier(&self.btf.string(m.name));
            let bits = u64::from(m.bitfield_size);
            let bit_offset = u64::from(m.bit_offset);
            let member_align = if packed { 1 } else { self.align_of(m.type_id)? };
            let in_bitfield = previous_bitfield && bits != 0;
            self.emit_bit_padding(offset, bit_offset, member_align, in_bitfield, level + 1);
            self.out.push('\n');
            self.indent(level + 1);
            self.emit_type_decl(m.type_id, &name, level + 1)?;
            if bits != 0 {
                let _ = write!(self.out, ": {bits}");
                offset = bit_offset + bits;
                previous_bitfield = true;
            } else {
                let size = self.btf.size_of(m.type_id)?.unwrap_or(0);
                offset = bit_offset + size * 8;
                previous_bitfield = false;
            }
            self.out.push(';');
        }
        if is_struct {
            self.emit_bit_padding(
                offset,
                u64::from(t.size_or_type) * 8,
                align,
                false,
                level + 1,
            );
        }
        if !members.is_empty() || t.size_or_type != 0 {
            self.out.push('\n');
            self.indent(level);
        }
        self.out.push('}');
        if packed {
            self.out.push_str(" __attribute__((packed))");
        }
        self.depth -= 1;
        Ok(())
    }

    /// A declaration of `name` with type `id`: the chain of pointers, qualifiers, arrays and prototypes down to
    /// its base type, then written inside out (`int (*name[4])(void)`).
    fn emit_type_decl(&mut self, id: u32, name: &str, level: usize) -> Result<(), Error> {
        self.enter(id)?;
        let mut chain = Vec::new();
        let mut current = id;
        loop {
            chain.push(current);
            if chain.len() > MAX_DEPTH {
                return Err(malformed("a declarator chain loops", id));
            }
            if current == 0 {
                break;
            }
            let t = self.t(current)?;
            current = match t.kind {
                Kind::Ptr
                | Kind::Volatile
                | Kind::Const
                | Kind::Restrict
                | Kind::FuncProto
                | Kind::TypeTag => t.size_or_type,
                Kind::Array => match t.detail {
                    Detail::Array { element, .. } => element,
                    _ => break,
                },
                _ => break,
            };
        }
        self.emit_type_chain(&mut chain, name, level)?;
        self.depth -= 1;
        Ok(())
    }

    fn emit_mods(&mut self, chain: &mut Vec<u32>) -> Result<(), Error> {
        while let Some(&id) = chain.last() {
            let word = match self.t(id)?.kind {
                Kind::Volatile => "volatile ",
                Kind::Const => "const ",
                Kind::Restrict => "restrict ",
                _ => return Ok(()),
            };
            self.out.push_str(word);
            chain.pop();
        }
        Ok(())
    }

    /// Drops qualifiers and type tags (libbpf's `btf_is_mod`) that C cannot place here (on arrays, prototypes).
    fn drop_mods(&self, chain: &mut Vec<u32>) -> Result<(), Error> {
        while let Some(&id) = chain.last() {
            if id == 0
                || !matches!(
                    self.t(id)?.kind,
                    Kind::Volatile | Kind::Const | Kind::Restrict | Kind::TypeTag
                )
            {
                return Ok(());
            }
            chain.pop();
        }
        Ok(())
    }

    fn emit_name(&mut self, name: &str, last_was_ptr: bool) {
        if !name.is_empty() && !last_was_ptr {
            self.out.push(' ');
        }
        self.out.push_str(name);
    }

    fn emit_type_chain(
        &mut self,
        chain: &mut Vec<u32>,
        name: &str,
        level: usize,
    ) -> Result<(), Error> {
        let mut last_was_ptr = true;
        while let Some(id) = chain.pop() {
            if id == 0 {
                self.emit_mods(chain)?;
                self.out.push_str("void");
                last_was_ptr = false;
                continue;
            }
            let t = self.t(id)?;
            match t.kind {
                Kind::Int | Kind::Float => {
                    self.emit_mods(chain)?;
                    let base = self.btf.string(t.name).into_owned();
                    self.out.push_str(&base);
                }
                Kind::Struct | Kind::Union => {
                    self.emit_mods(chain)?;
                    if t.name == 0 {
                        self.emit_struct_def(id, &t, level)?;
                    } else {
                        self.emit_struct_fwd(id, &t)?;
                    }
                }
                Kind::Enum | Kind::Enum64 => {
                    self.emit_mods(chain)?;
                    if t.name == 0 {
                        self.emit_enum_def(id, &t, level)?;
                    } else {
                        self.emit_enum_fwd(id)?;
                    }
                }
                Kind::Fwd => {
                    self.emit_mods(chain)?;
                    self.emit_fwd_def(id, &t)?;
                }
                Kind::Typedef => {
                    self.emit_mods(chain)?;
                    let typedef = self.ident_name(id)?;
                    self.out.push_str(&typedef);
                }
                Kind::Ptr => self.out.push_str(if last_was_ptr { "*" } else { " *" }),
                Kind::Volatile => self.out.push_str(" volatile"),
                Kind::Const => self.out.push_str(" const"),
                Kind::Restrict => self.out.push_str(" restrict"),
                Kind::TypeTag => {
                    self.emit_mods(chain)?;
                    let tag = self.btf.string(t.name).into_owned();
                    let _ = write!(self.out, " __attribute__((btf_type_tag(\"{tag}\")))");
                }
                Kind::Array => {
                    let count = match t.detail {
                        Detail::Array { count, .. } => count,
                        _ => 0,
                    };
                    self.drop_mods(chain)?;
                    let Some(&next) = chain.last() else {
                        self.emit_name(name, last_was_ptr);
                        let _ = write!(self.out, "[{count}]");
                        return Ok(());
                    };
                    let multidim = self.t(next)?.kind == Kind::Array;
                    if !name.is_empty() && !last_was_ptr {
                        self.out.push(' ');
                    }
                    if !multidim {
                        self.out.push('(');
                    }
                    self.emit_type_chain(chain, name, level)?;
                    if !multidim {
                        self.out.push(')');
                    }
                    let _ = write!(self.out, "[{count}]");
                    return Ok(());
                }
                Kind::FuncProto => {
                    self.drop_mods(chain)?;
                    if chain.is_empty() {
                        self.emit_name(name, last_was_ptr);
                    } else {
                        self.out.push_str(" (");
                        self.emit_type_chain(chain, name, level)?;
                        self.out.push(')');
                    }
                    self.out.push('(');
                    let params: Vec<_> = self.btf.params(&t).collect();
                    if params.is_empty()
                        || (params.len() == 1 && params.first().is_some_and(|p| p.type_id == 0))
                    {
                        self.out.push_str("void)");
                        return Ok(());
                    }
                    let last = params.len() - 1;
                    for (i, p) in params.iter().enumerate() {
                        if i > 0 {
                            self.out.push_str(", ");
                        }
                        if i == last && p.type_id == 0 {
                            self.out.push_str("...");
                            break;
                        }
                        let param = c_identifier(&self.btf.string(p.name));
                        self.enter(id)?;
                        self.emit_type_decl(p.type_id, &param, level)?;
                        self.depth -= 1;
                    }
                    self.out.push(')');
                    return Ok(());
                }
                _ => {
                    return Err(malformed(
                        &format!("a {} in a declaration", t.kind.name()),
                        id,
                    ))
                }
            }
            last_was_ptr = t.kind == Kind::Ptr;
        }
        self.emit_name(name, last_was_ptr);
        Ok(())
    }

    fn dump_type(&mut self, id: u32) -> Result<(), Error> {
        self.queue.clear();
        self.depth = 0;
        self.order_type(id, false)?;
        let queue = std::mem::take(&mut self.queue);
        for &queued in &queue {
            self.depth = 0;
            self.emit_type(queued, 0)?;
        }
        self.queue = queue;
        Ok(())
    }

    /// `extern` prototypes of the kernel functions tagged `bpf_kfunc`, as bpftool writes them.
    fn dump_kfuncs(&mut self) -> Result<(), Error> {
        self.out
            .push_str("\n/* BPF kfuncs */\n#ifndef BPF_NO_KFUNC_PROTOTYPES\n");
        let mut fastcall = std::collections::HashSet::new();
        let mut kfuncs = Vec::new();
        for id in 1..self.btf.len() as u32 {
            let t = self.t(id)?;
            if t.kind != Kind::DeclTag || t.detail != Detail::Component(-1) {
                continue;
            }
            let tag = self.btf.string(t.name);
            if tag == "bpf_kfunc" {
                kfuncs.push(t.size_or_type);
            } else if tag == "bpf_fastcall" {
                fastcall.insert(t.size_or_type);
            }
        }
        for func in kfuncs {
            let t = self.t(func)?;
            if t.kind != Kind::Func {
                continue;
            }
            let name = c_identifier(&self.btf.string(t.name));
            self.out.push_str("extern ");
            self.depth = 0;
            self.emit_type_decl(t.size_or_type, &name, 0)?;
            if fastcall.contains(&func) {
                self.out.push_str(" __bpf_fastcall");
            }
            self.out.push_str(" __weak __ksym;\n");
        }
        self.out.push_str("#endif\n\n");
        Ok(())
    }
}

const PROLOGUE: &str = "#ifndef __VMLINUX_H__
#define __VMLINUX_H__

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)
#endif

#ifndef __ksym
#define __ksym __attribute__((section(\".ksyms\")))
#endif

#ifndef __kconfig
#define __kconfig __attribute__((section(\".kconfig\")))
#endif

#ifndef __weak
#define __weak __attribute__((weak))
#endif

#ifndef __bpf_fastcall
#if __has_attribute(bpf_fastcall)
#define __bpf_fastcall __attribute__((bpf_fastcall))
#else
#define __bpf_fastcall
#endif
#endif

";

const EPILOGUE: &str = "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute pop
#endif

#endif /* __VMLINUX_H__ */
";

/// The C header of every type of `btf`, framed as bpftool frames vmlinux.h.
pub fn to_c_header(btf: &Btf) -> Result<String, Error> {
    let mut dumper = Dumper::new(btf);
    dumper.mark_referenced()?;
    dumper.out.push_str(PROLOGUE);
    for id in 1..btf.len() as u32 {
        dumper.dump_type(id)?;
    }
    dumper.dump_kfuncs()?;
    dumper.out.push_str(EPILOGUE);
    Ok(dumper.out)
}

#[cfg(test)]
#[path = "btf_c_tests.rs"]
mod tests;
