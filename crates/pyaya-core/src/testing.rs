//! Builders of BTF blobs and ELF objects for the unit tests, byte by byte, so they need no compiler.

/// `add(kind, name, size_or_type, extra)` appends a type and returns its id.
pub struct BtfBuilder {
    pub strings: Vec<u8>,
    pub records: Vec<Vec<u32>>,
}

impl Default for BtfBuilder {
    fn default() -> Self {
        Self {
            strings: vec![0],
            records: Vec::new(),
        }
    }
}

impl BtfBuilder {
    pub fn string(&mut self, text: &str) -> u32 {
        if text.is_empty() {
            return 0;
        }
        let offset = self.strings.len() as u32;
        self.strings.extend_from_slice(text.as_bytes());
        self.strings.push(0);
        offset
    }

    pub fn add(
        &mut self,
        kind: u32,
        name: &str,
        size_or_type: u32,
        extra: &[u32],
        vlen: u32,
        kind_flag: bool,
    ) -> u32 {
        let name = self.string(name);
        let info = (kind << 24) | vlen | (u32::from(kind_flag) << 31);
        let mut record = vec![name, info, size_or_type];
        record.extend_from_slice(extra);
        self.records.push(record);
        self.records.len() as u32
    }

    pub fn int(&mut self, name: &str, size: u32, signed: bool) -> u32 {
        self.add(
            1,
            name,
            size,
            &[(u32::from(signed) << 24) | (size * 8)],
            0,
            false,
        )
    }

    pub fn reference(&mut self, kind: u32, name: &str, target: u32) -> u32 {
        self.add(kind, name, target, &[], 0, false)
    }

    pub fn array(&mut self, element: u32, index: u32, count: u32) -> u32 {
        self.add(3, "", 0, &[element, index, count], 0, false)
    }

    /// `members`: (name, type id, bit offset, bitfield size); the kind flag is set when a bitfield is given.
    pub fn composite(
        &mut self,
        union: bool,
        name: &str,
        size: u32,
        members: &[(&str, u32, u32, u32)],
    ) -> u32 {
        let kind_flag = members.iter().any(|m| m.3 != 0);
        let mut extra = Vec::new();
        for &(member, type_id, bit_offset, bitfield) in members {
            let name = self.string(member);
            let offset = if kind_flag {
                (bitfield << 24) | bit_offset
            } else {
                bit_offset
            };
            extra.extend_from_slice(&[name, type_id, offset]);
        }
        self.add(
            if union { 5 } else { 4 },
            name,
            size,
            &extra,
            members.len() as u32,
            kind_flag,
        )
    }

    pub fn enumeration(
        &mut self,
        name: &str,
        size: u32,
        signed: bool,
        values: &[(&str, i64)],
    ) -> u32 {
        let mut extra = Vec::new();
        for &(value_name, value) in values {
            let name = self.string(value_name);
            extra.extend_from_slice(&[name, value as u32]);
        }
        self.add(6, name, size, &extra, values.len() as u32, signed)
    }

    pub fn to_bytes(&self, big_endian: bool) -> Vec<u8> {
        let word = |w: u32| {
            if big_endian {
                w.to_be_bytes()
            } else {
                w.to_le_bytes()
            }
        };
        let types: Vec<u8> = self
            .records
            .iter()
            .flatten()
            .flat_map(|&w| word(w))
            .collect();
        let mut out = Vec::new();
        out.extend_from_slice(&if big_endian {
            0xeb9f_u16.to_be_bytes()
        } else {
            0xeb9f_u16.to_le_bytes()
        });
        out.extend_from_slice(&[1, 0]);
        for w in [
            24,
            0,
            types.len() as u32,
            types.len() as u32,
            self.strings.len() as u32,
        ] {
            out.extend_from_slice(&word(w));
        }
        out.extend_from_slice(&types);
        out.extend_from_slice(&self.strings);
        out
    }
}

/// A symbol for `build_elf`: `section` names the section it is defined in (`None`: undefined).
pub struct Sym<'a> {
    pub name: &'a str,
    pub section: Option<&'a str>,
    pub value: u64,
    pub size: u64,
    pub kind: u8,
    pub binding: u8,
}

/// A relocatable ELF64 BPF object with `sections` (name, sh_type, sh_flags, data; for SHT_NOBITS the data's
/// length is the size), then `.symtab`, `.strtab` and `.shstrtab`.
pub fn build_elf(
    sections: &[(&str, u32, u64, Vec<u8>)],
    symbols: &[Sym<'_>],
    big_endian: bool,
) -> Vec<u8> {
    let u16b = |v: u16| {
        if big_endian {
            v.to_be_bytes().to_vec()
        } else {
            v.to_le_bytes().to_vec()
        }
    };
    let u32b = |v: u32| {
        if big_endian {
            v.to_be_bytes().to_vec()
        } else {
            v.to_le_bytes().to_vec()
        }
    };
    let u64b = |v: u64| {
        if big_endian {
            v.to_be_bytes().to_vec()
        } else {
            v.to_le_bytes().to_vec()
        }
    };
    let index_of = |name: &str| {
        sections
            .iter()
            .position(|s| s.0 == name)
            .map_or(0, |i| i + 1) as u16
    };
    let mut strtab = vec![0_u8];
    let mut symtab = vec![0_u8; 24];
    let mut ordered: Vec<&Sym<'_>> = symbols.iter().collect();
    ordered.sort_by_key(|s| s.binding != 0); // locals first
    for sym in ordered {
        let name = strtab.len() as u32;
        strtab.extend_from_slice(sym.name.as_bytes());
        strtab.push(0);
        symtab.extend(u32b(name));
        symtab.push((sym.binding << 4) | sym.kind);
        symtab.push(0);
        symtab.extend(u16b(sym.section.map_or(0, index_of)));
        symtab.extend(u64b(sym.value));
        symtab.extend(u64b(sym.size));
    }
    let mut all: Vec<(&str, u32, u64, Vec<u8>)> = sections.to_vec();
    all.push((".symtab", 2, 0, symtab));
    all.push((".strtab", 3, 0, strtab));
    let mut shstrtab = vec![0_u8];
    let mut name_offsets = Vec::new();
    for name in all.iter().map(|s| s.0).chain([".shstrtab"]) {
        name_offsets.push(shstrtab.len() as u32);
        shstrtab.extend_from_slice(name.as_bytes());
        shstrtab.push(0);
    }
    all.push((".shstrtab", 3, 0, shstrtab));
    let symtab_index = sections.len() as u32 + 1;
    let mut body = Vec::new();
    let mut headers = vec![0_u8; 64];
    for (i, (_, kind, flags, data)) in all.iter().enumerate() {
        let offset = 64 + body.len() as u64;
        if *kind != 8 {
            body.extend_from_slice(data);
            body.resize(body.len().next_multiple_of(8), 0);
        }
        headers.extend(u32b(name_offsets[i]));
        headers.extend(u32b(*kind));
        headers.extend(u64b(*flags));
        headers.extend(u64b(0));
        headers.extend(u64b(offset));
        headers.extend(u64b(data.len() as u64));
        headers.extend(u32b(if *kind == 2 { symtab_index + 1 } else { 0 }));
        headers.extend(u32b(u32::from(*kind == 2)));
        headers.extend(u64b(8));
        headers.extend(u64b(if *kind == 2 { 24 } else { 0 }));
    }
    let count = all.len() as u16 + 1;
    let mut out = vec![
        0x7f,
        b'E',
        b'L',
        b'F',
        2,
        if big_endian { 2 } else { 1 },
        1,
        0,
    ];
    out.extend_from_slice(&[0; 8]);
    out.extend(u16b(1)); // ET_REL
    out.extend(u16b(247)); // EM_BPF
    out.extend(u32b(1));
    out.extend(u64b(0));
    out.extend(u64b(0));
    out.extend(u64b(64 + body.len() as u64));
    out.extend(u32b(0));
    out.extend(u16b(64));
    out.extend(u16b(0));
    out.extend(u16b(0));
    out.extend(u16b(64));
    out.extend(u16b(count));
    out.extend(u16b(count - 1));
    out.extend_from_slice(&body);
    out.extend_from_slice(&headers);
    out
}
