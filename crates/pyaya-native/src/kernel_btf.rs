//! Member offsets of kernel structs, read from the kernel's BTF. Rust eBPF programs have no CO-RE relocations,
//! so user space passes these offsets to the kernel side as globals; this runs at every start, so it walks the
//! raw type section instead of decoding every type (milliseconds for vmlinux, against a tenth of a second or more
//! for a full decode in Python).

use std::path::PathBuf;

use pyo3::prelude::*;

use crate::errors::{new_err, Kind};

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;

struct RawBtf<'a> {
    types: &'a [u8],
    strings: &'a [u8],
    /// Byte position of each type in `types`, by type id (id 0 is void and has none).
    starts: Vec<usize>,
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl<'a> RawBtf<'a> {
    fn parse(data: &'a [u8]) -> Result<Self, String> {
        let magic = data
            .get(0..2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or("truncated BTF header")?;
        if magic != BTF_MAGIC {
            return Err("not little-endian BTF (bad magic)".into());
        }
        let field = |at| read_u32(data, at).ok_or("truncated BTF header");
        let header_len = field(4)? as usize;
        let (type_off, type_len) = (field(8)? as usize, field(12)? as usize);
        let (str_off, str_len) = (field(16)? as usize, field(20)? as usize);
        let section = |off: usize, len: usize| {
            data.get(header_len + off..header_len + off + len)
                .ok_or("BTF section out of bounds")
        };
        let types = section(type_off, type_len)?;
        let strings = section(str_off, str_len)?;
        let mut starts = vec![0];
        let mut at = 0;
        while at + 12 <= types.len() {
            starts.push(at);
            let info = read_u32(types, at + 4).ok_or("truncated type")?;
            let vlen = (info & 0xffff) as usize;
            let extra = match (info >> 24) & 0x1f {
                1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
                3 => 12,                      // ARRAY
                4 | 5 | 15 | 19 => vlen * 12, // STRUCT, UNION, DATASEC, ENUM64
                6 | 13 => vlen * 8,           // ENUM, FUNC_PROTO
                2 | 7..=12 | 16 | 18 => 0, // PTR, FWD, TYPEDEF, qualifiers, FUNC, FLOAT, TYPE_TAG
                kind => return Err(format!("unknown BTF kind {kind}")),
            };
            at += 12 + extra;
        }
        Ok(Self {
            types,
            strings,
            starts,
        })
    }

    fn name(&self, offset: u32) -> &'a [u8] {
        let rest = self.strings.get(offset as usize..).unwrap_or_default();
        &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
    }

    fn struct_ids(&self, name: &[u8]) -> impl Iterator<Item = usize> + '_ {
        let name = name.to_vec();
        (1..self.starts.len()).filter(move |&id| {
            let at = self.starts[id];
            let info = read_u32(self.types, at + 4).unwrap_or(0);
            matches!((info >> 24) & 0x1f, KIND_STRUCT | KIND_UNION)
                && self.name(read_u32(self.types, at).unwrap_or(0)) == name.as_slice()
        })
    }

    /// Byte offset of `member` in the struct or union `id`, looking into anonymous members.
    fn member_offset(&self, id: usize, member: &[u8], depth: u32) -> Option<u64> {
        let at = *self.starts.get(id)?;
        let info = read_u32(self.types, at + 4)?;
        if !matches!((info >> 24) & 0x1f, KIND_STRUCT | KIND_UNION) || depth > 32 {
            return None;
        }
        let bitfield_offsets = info >> 31 == 1;
        for index in 0..(info & 0xffff) as usize {
            let m = at + 12 + index * 12;
            let name = self.name(read_u32(self.types, m)?);
            let raw = read_u32(self.types, m + 8)?;
            let bits = u64::from(if bitfield_offsets {
                raw & 0x00ff_ffff
            } else {
                raw
            });
            if name == member {
                return Some(bits / 8);
            }
            if name.is_empty() {
                let inner = self.resolve(read_u32(self.types, m + 4)? as usize);
                if let Some(offset) = self.member_offset(inner, member, depth + 1) {
                    return Some(bits / 8 + offset);
                }
            }
        }
        None
    }

    /// Follows typedefs and qualifiers to the underlying type id.
    fn resolve(&self, mut id: usize) -> usize {
        for _ in 0..32 {
            let Some(&at) = self.starts.get(id) else {
                return id;
            };
            let info = read_u32(self.types, at + 4).unwrap_or(0);
            match (info >> 24) & 0x1f {
                8..=11 | 18 => id = read_u32(self.types, at + 8).unwrap_or(0) as usize,
                _ => return id,
            }
        }
        id
    }
}

/// Byte offsets of `members` of kernel struct `struct_name`, from the BTF file at `path` (default: the running
/// kernel's, /sys/kernel/btf/vmlinux). Raises NotFoundError naming what is missing.
#[pyaya_guard::guard(Object)]
#[pyfunction]
#[pyo3(signature = (struct_name, members, path = None))]
pub fn kernel_member_offsets(
    py: Python<'_>,
    struct_name: &str,
    members: Vec<String>,
    path: Option<PathBuf>,
) -> PyResult<Vec<u64>> {
    let path = path.unwrap_or_else(|| PathBuf::from("/sys/kernel/btf/vmlinux"));
    let data = std::fs::read(&path).map_err(|err| {
        new_err(
            Kind::NotFound,
            format!(
                "cannot read kernel BTF at {}: {err} (the kernel needs CONFIG_DEBUG_INFO_BTF=y)",
                path.display()
            ),
        )
    })?;
    let result = py.detach(|| {
        let btf = RawBtf::parse(&data)?;
        let ids: Vec<usize> = btf.struct_ids(struct_name.as_bytes()).collect();
        if ids.is_empty() {
            return Err(format!("the kernel's BTF has no struct {struct_name}"));
        }
        members
            .iter()
            .map(|member| {
                ids.iter()
                    .find_map(|&id| btf.member_offset(id, member.as_bytes(), 0))
                    .ok_or_else(|| {
                        format!("struct {struct_name} has no member {member} in this kernel")
                    })
            })
            .collect::<Result<Vec<_>, _>>()
    });
    result.map_err(|message| new_err(Kind::NotFound, format!("{message} ({})", path.display())))
}
