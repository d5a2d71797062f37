use super::*;
use crate::testing::{build_elf, Sym};

fn sample(big_endian: bool) -> Vec<u8> {
    build_elf(
        &[
            (
                "tracepoint/syscalls/sys_enter_execve",
                1,
                0x6,
                vec![0x95, 0, 0, 0, 0, 0, 0, 0],
            ),
            (".text", 1, 0x6, vec![0; 16]),
            ("maps", 1, 0x3, vec![7; 28]),
            (".bss", 8, 0x3, vec![0; 64]),
        ],
        &[
            Sym {
                name: "execwatch",
                section: Some("tracepoint/syscalls/sys_enter_execve"),
                value: 0,
                size: 8,
                kind: 2,
                binding: 1,
            },
            Sym {
                name: "helper",
                section: Some(".text"),
                value: 8,
                size: 8,
                kind: 2,
                binding: 0,
            },
            Sym {
                name: "COUNTS",
                section: Some("maps"),
                value: 0,
                size: 28,
                kind: 1,
                binding: 1,
            },
            Sym {
                name: "extern_fn",
                section: None,
                value: 0,
                size: 0,
                kind: 0,
                binding: 1,
            },
        ],
        big_endian,
    )
}

#[test]
fn sections_and_their_bytes() {
    let data = sample(false);
    let elf = Elf::parse(&data).unwrap();
    assert_eq!(
        elf.header,
        Header {
            little_endian: true,
            is_64: true,
            os_abi: 0,
            kind: 1,
            machine: EM_BPF
        }
    );
    let names: Vec<&str> = elf.sections.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "",
            "tracepoint/syscalls/sys_enter_execve",
            ".text",
            "maps",
            ".bss",
            ".symtab",
            ".strtab",
            ".shstrtab"
        ]
    );
    let maps = elf.section("maps").unwrap();
    assert_eq!(elf.section_data(maps), [7; 28]);
    let bss = elf.section(".bss").unwrap();
    assert_eq!((bss.size, elf.section_data(bss).len()), (64, 0));
    assert!(elf.section("nope").is_none());
    assert_eq!(elf.sections[1].flags & SHF_EXECINSTR, SHF_EXECINSTR);
}

#[test]
fn symbols_with_their_sections() {
    let data = sample(false);
    let elf = Elf::parse(&data).unwrap();
    assert_eq!(elf.symbols.len(), 5); // the null symbol first
    assert!(elf.dynamic_symbols.is_empty());
    let helper = &elf.symbols[1];
    assert_eq!(
        (helper.name.as_str(), helper.binding, helper.is_global()),
        ("helper", 0, false)
    );
    let program = elf.symbols.iter().find(|s| s.name == "execwatch").unwrap();
    assert!(program.is_function() && program.is_global());
    assert_eq!(
        elf.section_of(program).unwrap().name,
        "tracepoint/syscalls/sys_enter_execve"
    );
    let undefined = elf.symbols.iter().find(|s| s.name == "extern_fn").unwrap();
    assert_eq!((undefined.shndx, undefined.section), (0, None));
}

#[test]
fn big_endian_objects_read_the_same() {
    let little = sample(false);
    let big = sample(true);
    let (little, big) = (Elf::parse(&little).unwrap(), Elf::parse(&big).unwrap());
    assert!(!big.header.little_endian);
    assert_eq!(little.sections, big.sections);
    assert_eq!(little.symbols, big.symbols);
    assert_eq!(big.section_data(big.section("maps").unwrap()), [7; 28]);
}

#[test]
fn malformed_files_are_errors() {
    let error = |data: &[u8]| Elf::parse(data).unwrap_err().to_string();
    assert_eq!(
        error(b""),
        "not an ELF file (magic empty, expected 7f 45 4c 46)"
    );
    assert_eq!(
        error(b"MZ\x90\x00"),
        "not an ELF file (magic 4d 5a 90 00, expected 7f 45 4c 46)"
    );
    assert_eq!(
        error(b"\x7fELF"),
        "unknown ELF class (missing) (expected 1 or 2)"
    );
    assert_eq!(
        error(b"\x7fELF\x07"),
        "unknown ELF class 7 (expected 1 or 2)"
    );
    assert_eq!(
        error(b"\x7fELF\x02\x01\x01\x00"),
        "truncated: the ELF header needs 64 bytes, the file has 8"
    );
    let good = sample(false);
    // A section whose bytes run past the file: sh_offset of section 3 ("maps") set far away.
    let shoff = u64::from_le_bytes(good[40..48].try_into().unwrap()) as usize;
    let mut far = good.clone();
    let at = shoff + 3 * 64 + 24;
    far[at..at + 8].copy_from_slice(&0xffff_ffff_u64.to_le_bytes());
    assert!(
        error(&far).starts_with("truncated: section 3 (maps) ends at byte"),
        "{}",
        error(&far)
    );
    // The section header table cut off.
    assert_eq!(
        error(&good[..good.len() - 10]),
        format!(
            "truncated: the section header table ends at byte {} of {}",
            good.len(),
            good.len() - 10
        )
    );
    // A symbol name outside .strtab.
    let symtab = shoff + 5 * 64;
    let symtab_offset =
        u64::from_le_bytes(good[symtab + 24..symtab + 32].try_into().unwrap()) as usize;
    let mut name = good;
    name[symtab_offset + 24..symtab_offset + 28].copy_from_slice(&5000_u32.to_le_bytes());
    assert!(
        error(&name).starts_with("the symbol table: symbol 1: "),
        "{}",
        error(&name)
    );
}

#[test]
fn a_real_executable_has_segments_and_dynamic_symbols() {
    let Ok(data) = std::fs::read("/proc/self/exe") else {
        return;
    };
    let elf = Elf::parse(&data).unwrap();
    assert!(elf.segments.iter().any(|s| s.kind == PT_LOAD));
    assert!(elf
        .symbols
        .iter()
        .chain(&elf.dynamic_symbols)
        .any(Symbol::is_function));
}

#[test]
fn a_bss_claiming_terabytes_is_refused_before_aya_sees_it() {
    let data = build_elf(&[(".bss", 8, 0x3, vec![0; 64])], &[], false);
    assert_eq!(check_for_aya(&data), Ok(()));
    let shoff = u64::from_le_bytes(data[40..48].try_into().unwrap()) as usize;
    let mut huge = data.clone();
    let size = shoff + 64 + 32;
    huge[size..size + 8].copy_from_slice(&(1_u64 << 48).to_le_bytes());
    assert_eq!(
        check_for_aya(&huge).unwrap_err().to_string(),
        format!(
            "section 1 (.bss) claims {} bytes, more than the 67108864 a BPF object's data may take",
            1_u64 << 48
        )
    );
    assert_eq!(check_for_aya(b"not an object"), Ok(()));
}

#[test]
fn btf_strings_are_made_utf8_for_the_verifier_log() {
    let mut b = crate::testing::BtfBuilder::default();
    b.string("caf\u{e9}.rs");
    b.int("u32", 4, false);
    let mut btf = b.to_bytes(false);
    let clean = build_elf(&[(".BTF", 1, 0, btf.clone())], &[], false);
    assert_eq!(utf8_btf_strings(&clean), None);
    let at = btf.iter().position(|&byte| byte == 0xc3).unwrap();
    btf[at] = 0xff; // "caf\xff\xa9.rs": two invalid bytes
    let broken = build_elf(&[(".BTF", 1, 0, btf)], &[], false);
    let fixed = utf8_btf_strings(&broken).expect("a fixed copy");
    assert_eq!(fixed.len(), broken.len());
    let elf = Elf::parse(&fixed).unwrap();
    let text = elf.section_data(elf.section(".BTF").unwrap());
    assert!(text.windows(8).any(|w| w == b"caf??.rs"));
    assert_eq!(utf8_btf_strings(b"not an object"), None);
}
