//! Rust type names as bpf-linker writes them into BTF: characters BTF names may not hold escaped as `_XX_` (hex),
//! so `HashMap<u32, FlowKey>` becomes `HashMap_3C_u32_2C__20_FlowKey_3E_`. A `#[map]` static's type name is how
//! pyaya learns the map's key and value types, so this parses the generic arguments out of it.
//! Also the globs of multi-point probes (`tcp_*`), matched against function names as libbpf matches them.

/// Whether `name` matches the glob `pattern` (`*`: any run of characters, `?`: one character), as libbpf's
/// `glob_match` for `uprobe.multi`/`kprobe.multi` patterns. Iterative, with one backtrack point (the last `*`).
pub fn glob_match(name: &str, pattern: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    let (mut n, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = name.get(n) {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&wanted) if wanted == '?' || wanted == c => {
                n += 1;
                p += 1;
            }
            _ => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .unwrap_or_default()
        .iter()
        .all(|c| *c == '*')
}

/// How deeply array types may nest in a name before the parser calls them unknown.
const MAX_DEPTH: usize = 16;

fn hex(c: char) -> Option<u32> {
    match c {
        '0'..='9' | 'A'..='F' => c.to_digit(16),
        _ => None,
    }
}

/// `name` with bpf-linker's `_XX_` escapes turned back into characters.
pub fn unescape(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if c == '_' {
            if let (Some(high), Some(low), Some('_')) = (
                chars.get(i + 1).copied().and_then(hex),
                chars.get(i + 2).copied().and_then(hex),
                chars.get(i + 3),
            ) {
                if let Some(decoded) = char::from_u32(high * 16 + low) {
                    out.push(decoded);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Whether `name` holds an escape: a generic instantiation rather than a type the program's code declares.
pub fn is_escaped(name: &str) -> bool {
    unescape(name) != name
}

/// A Rust type as written in a generic argument, as far as its layout can be known from the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RustType {
    Int {
        size: u8,
        signed: bool,
    },
    Bool,
    Char,
    Float {
        size: u8,
    },
    Array {
        element: Box<RustType>,
        count: u64,
    },
    /// A path (`my_common::FlowKey`): its last segment, to look up by name in the BTF.
    Named(String),
    /// A tuple, reference, pointer or generic type: nothing to decode it with.
    Unknown,
}

fn primitive(text: &str) -> Option<RustType> {
    let (size, signed) = match text {
        "u8" => (1, false),
        "u16" => (2, false),
        "u32" => (4, false),
        "u64" | "usize" => (8, false),
        "u128" => (16, false),
        "i8" => (1, true),
        "i16" => (2, true),
        "i32" => (4, true),
        "i64" | "isize" => (8, true),
        "i128" => (16, true),
        "bool" => return Some(RustType::Bool),
        "char" => return Some(RustType::Char),
        "f32" => return Some(RustType::Float { size: 4 }),
        "f64" => return Some(RustType::Float { size: 8 }),
        _ => return None,
    };
    Some(RustType::Int { size, signed })
}

/// Parses one type (`u32`, `[u8; 16]`, `[[u16; 2]; 4]`, `my_common::FlowKey`); arrays are read from the outside
/// in, without recursion.
pub fn parse_type(text: &str) -> RustType {
    let mut text = text.trim();
    let mut counts = Vec::new();
    while let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        let Some((element, count)) = inner.rsplit_once(';') else {
            return RustType::Unknown;
        };
        let Ok(count) = count.trim().parse::<u64>() else {
            return RustType::Unknown;
        };
        if counts.len() >= MAX_DEPTH {
            return RustType::Unknown;
        }
        counts.push(count);
        text = element.trim();
    }
    let mut parsed = if let Some(found) = primitive(text) {
        found
    } else if text.is_empty() || text.contains(['<', '(', '&', '*', '[', ']', ';', ',']) {
        RustType::Unknown
    } else {
        RustType::Named(text.rsplit("::").next().unwrap_or(text).to_owned())
    };
    if parsed == RustType::Unknown {
        return parsed;
    }
    for count in counts.into_iter().rev() {
        parsed = RustType::Array {
            element: Box::new(parsed),
            count,
        };
    }
    parsed
}

/// The top-level comma-separated parts of a generic argument list.
pub fn split_arguments(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth: i64 = 0;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(text.get(start..i).unwrap_or_default().trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let tail = text.get(start..).unwrap_or_default().trim();
    if !tail.is_empty() {
        parts.push(tail);
    }
    parts
}

/// `(base, arguments)` of an escaped generic instantiation's name (`HashMap_3C_u32_2C__20_u64_3E_` ->
/// `("HashMap", [u32, u64])`), `None` when the name has no argument list.
pub fn generic_arguments(name: &str) -> Option<(String, Vec<RustType>)> {
    let full = unescape(name);
    let (base, rest) = full.split_once('<')?;
    let arguments = rest.strip_suffix('>')?;
    Some((
        base.to_owned(),
        split_arguments(arguments)
            .into_iter()
            .map(parse_type)
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn globs_as_libbpf() {
        use super::glob_match;
        assert!(glob_match("tcp_sendmsg", "tcp_*"));
        assert!(glob_match("tcp_sendmsg", "*sendmsg"));
        assert!(glob_match("tcp_sendmsg", "tcp_?endmsg"));
        assert!(glob_match("a", "*"));
        assert!(glob_match("", "*"));
        assert!(glob_match("abcabc", "*abc"));
        assert!(glob_match("__x64_sys_getppid", "__x64_sys_getp*id"));
        assert!(!glob_match("udp_sendmsg", "tcp_*"));
        assert!(!glob_match("tcp", "tcp_*"));
        assert!(!glob_match("tcp_x", "tcp_"));
        assert!(!glob_match("", "?"));
    }

    use super::*;

    fn int(size: u8, signed: bool) -> RustType {
        RustType::Int { size, signed }
    }

    #[test]
    fn escapes_turn_back_into_characters() {
        assert_eq!(
            unescape("HashMap_3C_u32_2C__20_FlowKey_3E_"),
            "HashMap<u32, FlowKey>"
        );
        assert_eq!(unescape("plain_name"), "plain_name");
        assert_eq!(unescape("lower_3c_case"), "lower_3c_case"); // only upper-case hex is an escape
        assert_eq!(unescape("_41_"), "A");
        assert_eq!(unescape("_4"), "_4");
        assert!(is_escaped("Array_3C_u64_3E_"));
        assert!(!is_escaped("FlowKey"));
    }

    #[test]
    fn types_parse_from_their_names() {
        assert_eq!(parse_type("u32"), int(4, false));
        assert_eq!(parse_type(" i64 "), int(8, true));
        assert_eq!(parse_type("bool"), RustType::Bool);
        assert_eq!(parse_type("f32"), RustType::Float { size: 4 });
        assert_eq!(
            parse_type("[[u16; 2]; 4]"),
            RustType::Array {
                element: Box::new(RustType::Array {
                    element: Box::new(int(2, false)),
                    count: 2
                }),
                count: 4
            }
        );
        assert_eq!(
            parse_type("my_common::FlowKey"),
            RustType::Named("FlowKey".into())
        );
        assert_eq!(parse_type("(u32, u32)"), RustType::Unknown);
        assert_eq!(parse_type("&u8"), RustType::Unknown);
        assert_eq!(parse_type("[u8; many]"), RustType::Unknown);
        assert_eq!(parse_type("Option<u32>"), RustType::Unknown);
        assert_eq!(parse_type(""), RustType::Unknown);
    }

    #[test]
    fn deep_arrays_are_unknown_not_a_stack_overflow() {
        let deep = format!("{}u8{}", "[".repeat(100_000), "; 1]".repeat(100_000));
        assert_eq!(parse_type(&deep), RustType::Unknown);
        let fine = format!("{}u8{}", "[".repeat(16), "; 1]".repeat(16));
        assert_ne!(parse_type(&fine), RustType::Unknown);
    }

    #[test]
    fn generic_arguments_of_map_definitions() {
        assert_eq!(
            generic_arguments("HashMap_3C_u32_2C__20_FlowKey_3E_"),
            Some((
                "HashMap".into(),
                vec![int(4, false), RustType::Named("FlowKey".into())]
            ))
        );
        assert_eq!(
            generic_arguments("LpmTrie_3C__5B_u8_3B__20_4_5D__2C__20_u32_3E_"),
            Some((
                "LpmTrie".into(),
                vec![
                    RustType::Array {
                        element: Box::new(int(1, false)),
                        count: 4
                    },
                    int(4, false)
                ]
            ))
        );
        assert_eq!(
            split_arguments("HashMap<u32, u64>, (u8, u8), [u8; 2]"),
            ["HashMap<u32, u64>", "(u8, u8)", "[u8; 2]"]
        );
        assert_eq!(generic_arguments("RingBuf"), None);
        assert_eq!(generic_arguments("Broken_3C_u32"), None);
    }
}
