//! The line info of `.BTF.ext`: which source line each instruction comes from, for explaining verifier errors.
//! Its strings live in the object's `.BTF`, so records are resolved against a parsed [`Btf`].

use crate::btf::{Btf, Error};

/// One `bpf_line_info` record, resolved: the instruction at byte `insn_offset` of `section` comes from
/// `file:line:column` (`text` is the source line when the compiler recorded it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineInfo {
    pub section: String,
    pub insn_offset: u32,
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub text: String,
}

const MAGIC: u16 = 0xeb9f;

fn err<T>(message: impl Into<String>) -> Result<T, Error> {
    Err(Error(message.into()))
}

/// Every line_info record of a `.BTF.ext` section, in order; empty when it has none.
pub fn line_info(ext: &[u8], btf: &Btf) -> Result<Vec<LineInfo>, Error> {
    let little = match ext.get(0..2) {
        Some([0x9f, 0xeb]) => true,
        Some([0xeb, 0x9f]) => false,
        Some(&[first, second]) => {
            return err(format!(
                ".BTF.ext has a bad magic number {:#x} (expected {MAGIC:#x})",
                u16::from_le_bytes([first, second])
            ));
        }
        _ => {
            return err(format!(
                ".BTF.ext is truncated ({} bytes, the header needs 24)",
                ext.len()
            ))
        }
    };
    let word = |at: usize| -> Option<u32> {
        let raw: [u8; 4] = ext.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(raw)
        } else {
            u32::from_be_bytes(raw)
        })
    };
    let (Some(header_len), Some(line_off), Some(line_len)) = (word(4), word(16), word(20)) else {
        return err(format!(
            ".BTF.ext is truncated ({} bytes, the header needs 24)",
            ext.len()
        ));
    };
    if line_len == 0 {
        return Ok(Vec::new());
    }
    let start = u64::from(header_len) + u64::from(line_off);
    let end = start + u64::from(line_len);
    if end > ext.len() as u64 || line_len < 4 {
        return err(format!(
            ".BTF.ext line_info runs past the section (ends at byte {end} of {})",
            ext.len()
        ));
    }
    let (start, end) = (start as usize, end as usize);
    let record_size = word(start).unwrap_or_default() as usize;
    if record_size < 16 {
        return err(format!(
            ".BTF.ext line_info records are {record_size} bytes, expected at least 16"
        ));
    }
    let string = |offset: u32, what: &str| {
        if btf.has_string(offset) {
            Ok(btf.string(offset).into_owned())
        } else {
            err(format!(
                ".BTF.ext line_info: the {what} name offset {offset} is outside the .BTF strings"
            ))
        }
    };
    let mut records = Vec::new();
    let mut at = start + 4;
    while at + 8 <= end {
        let (Some(name), Some(count)) = (word(at), word(at + 4)) else {
            break;
        };
        at += 8;
        let count = count as usize;
        if count
            .checked_mul(record_size)
            .is_none_or(|size| at + size > end)
        {
            return err(".BTF.ext line_info: a section's records run past the end of line_info");
        }
        let section = string(name, "section")?;
        for _ in 0..count {
            let (Some(insn), Some(file), Some(text), Some(line_col)) =
                (word(at), word(at + 4), word(at + 8), word(at + 12))
            else {
                return err(".BTF.ext line_info: a record runs past the section");
            };
            records.push(LineInfo {
                section: section.clone(),
                insn_offset: insn,
                file: string(file, "file")?,
                line: line_col >> 10,
                column: line_col & 0x3ff,
                text: string(text, "source line")?,
            });
            at += record_size;
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::BtfBuilder;

    /// (instruction offset, file, text, line, column)
    type Record = (u32, u32, u32, u32, u32);

    fn ext(records: &[(u32, &[Record])], record_size: u32) -> Vec<u8> {
        let mut line = record_size.to_le_bytes().to_vec();
        for (section, entries) in records {
            line.extend(section.to_le_bytes());
            line.extend((entries.len() as u32).to_le_bytes());
            for &(insn, file, text, number, column) in *entries {
                for word in [insn, file, text, (number << 10) | column] {
                    line.extend(word.to_le_bytes());
                }
                line.resize(line.len() + record_size as usize - 16, 0);
            }
        }
        let mut out = vec![0x9f, 0xeb, 1, 0];
        for word in [32_u32, 0, 0, 0, line.len() as u32, 0, 0] {
            out.extend(word.to_le_bytes());
        }
        out.extend(line);
        out
    }

    #[test]
    fn records_resolve_against_the_btf_strings() {
        let mut b = BtfBuilder::default();
        let section = b.string("tracepoint/x");
        let file = b.string("src/main.rs");
        let text = b.string("let pid = ctx.pid();");
        let btf = Btf::parse(&b.to_bytes(false)).unwrap();
        let data = ext(
            &[(section, &[(0, file, text, 12, 5), (16, file, 0, 14, 0)])],
            16,
        );
        let records = line_info(&data, &btf).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0],
            LineInfo {
                section: "tracepoint/x".into(),
                insn_offset: 0,
                file: "src/main.rs".into(),
                line: 12,
                column: 5,
                text: "let pid = ctx.pid();".into()
            }
        );
        assert_eq!(
            (
                records[1].insn_offset,
                records[1].line,
                records[1].text.as_str()
            ),
            (16, 14, "")
        );
        // Longer records (a newer format) are stepped over by their declared size.
        assert_eq!(
            line_info(&ext(&[(section, &[(0, file, text, 1, 0)])], 24), &btf)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn malformed_line_info_is_an_error() {
        let btf = Btf::parse(&BtfBuilder::default().to_bytes(false)).unwrap();
        assert!(line_info(b"", &btf).unwrap_err().0.contains("truncated"));
        assert!(line_info(b"\x00\x00xx", &btf)
            .unwrap_err()
            .0
            .contains("bad magic"));
        let mut data = ext(&[(0, &[(0, 0, 0, 1, 0)])], 16);
        let count_at = 32 + 8;
        data[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(line_info(&data, &btf)
            .unwrap_err()
            .0
            .contains("run past the end"));
        let data = ext(&[(0, &[(0, 99, 0, 1, 0)])], 16);
        assert!(line_info(&data, &btf)
            .unwrap_err()
            .0
            .contains("outside the .BTF strings"));
        let data = ext(&[], 8);
        assert!(line_info(&data, &btf)
            .unwrap_err()
            .0
            .contains("expected at least 16"));
    }
}
