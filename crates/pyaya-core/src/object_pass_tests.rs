//! The object pass on hand-built objects (no compiler): what it rewrites, the fast path, and truncated and mutated
//! objects, each of which must give `Ok` or the pass's error, never a panic (these run in debug builds, where an
//! overflowing addition panics).
use super::*;
use crate::testing::{build_elf, BtfBuilder, Sym};

const SHT_SYMTAB: u32 = 2;
const R_BPF_64_64: u64 = 1;
const R_BPF_64_32: u64 = 10;
const ADDRESS: u64 = 0xffff_ffff_8100_0000;

struct FakeKernel;

impl Kernel for FakeKernel {
    fn btf_id(&self, name: &str, func: bool) -> Option<u32> {
        match (name, func) {
            ("bpf_task_from_pid", true) => Some(100),
            ("runqueues", false) => Some(200),
            _ => None,
        }
    }

    fn address(&self, name: &str) -> Option<u64> {
        matches!(name, "vfs_read" | "runqueues").then_some(ADDRESS)
    }

    fn kconfig(&self, name: &str) -> Option<String> {
        (name == "CONFIG_HZ").then(|| "250".to_owned())
    }
}

fn word(value: u32, big: bool) -> [u8; 4] {
    if big {
        value.to_be_bytes()
    } else {
        value.to_le_bytes()
    }
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32, big: bool) -> Vec<u8> {
    let regs = if big {
        (dst << 4) | src
    } else {
        (src << 4) | dst
    };
    let mut out = vec![code, regs];
    out.extend(if big {
        off.to_be_bytes()
    } else {
        off.to_le_bytes()
    });
    out.extend(word(imm as u32, big));
    out
}

/// `.BTF.ext` with one func info, one line info and one CO-RE record, each in a block naming `section`.
fn btf_ext(section: u32, big: bool, core: &[[u32; 4]]) -> Vec<u8> {
    let block = |records: &[Vec<u32>], size: u32| {
        let mut out: Vec<u8> = word(size, big).to_vec();
        out.extend(word(section, big));
        out.extend(word(records.len() as u32, big));
        for record in records {
            for w in record {
                out.extend(word(*w, big));
            }
        }
        out
    };
    let func = block(&[vec![0, 9]], 8);
    let line = block(&[vec![0, section, section, (3 << 10) | 1]], 16);
    let relo = block(&core.iter().map(|r| r.to_vec()).collect::<Vec<_>>(), 16);
    let mut out = if big {
        0xeb9f_u16.to_be_bytes().to_vec()
    } else {
        0xeb9f_u16.to_le_bytes().to_vec()
    };
    out.extend([1, 0]);
    let (f, l, c) = (func.len() as u32, line.len() as u32, relo.len() as u32);
    for w in [32, 0, f, f, l, f + l, c] {
        out.extend(word(w, big));
    }
    out.extend(func);
    out.extend(line);
    out.extend(relo);
    out
}

/// A libbpf-style object: a `SEC("tc")` program using a typed and an untyped `__ksym` variable, a kfunc and a
/// weak `__kconfig` int, with relocations, func/line info and a CO-RE record naming its section.
fn libbpf_object(big: bool) -> Vec<u8> {
    let mut b = BtfBuilder::default();
    let int = b.int("int", 4, true); // 1
    let proto = b.add(13, "", int, &[], 0, false); // 2
    let kfunc = b.add(12, "bpf_task_from_pid", proto, &[], 2, false); // 3
    let untyped = b.add(14, "vfs_read", 0, &[2], 0, false); // 4
    let typed = b.add(14, "runqueues", int, &[2], 0, false); // 5
    let hz = b.add(14, "CONFIG_HZ", int, &[2], 0, false); // 6
    b.add(
        15,
        ".ksyms",
        0,
        &[kfunc, 0, 0, untyped, 0, 1, typed, 0, 4],
        3,
        false,
    ); // 7
    b.add(15, ".kconfig", 0, &[hz, 0, 4], 1, false); // 8
    b.add(12, "prog", proto, &[], 1, false); // 9
    let str_tc = b.string("tc");
    let access = b.string("0");
    let btf = b.to_bytes(big);
    let mut text = Vec::new();
    text.extend(insn(LD_IMM64, 1, 0, 0, 0, big)); // vfs_read
    text.extend(insn(0, 0, 0, 0, 0, big));
    text.extend(insn(LD_IMM64, 2, 0, 0, 0, big)); // runqueues
    text.extend(insn(0, 0, 0, 0, 0, big));
    text.extend(insn(CALL, 0, BPF_PSEUDO_CALL, 0, -1, big)); // bpf_task_from_pid
    text.extend(insn(LD_IMM64, 3, 0, 0, 0, big)); // CONFIG_HZ
    text.extend(insn(0, 0, 0, 0, 0, big));
    text.extend(insn(0x95, 0, 0, 0, 0, big));
    let mut rel = Vec::new();
    for (offset, symbol, kind) in [
        (0_u64, 2_u64, R_BPF_64_64),
        (16, 3, R_BPF_64_64),
        (32, 4, R_BPF_64_32),
        (40, 5, R_BPF_64_64),
    ] {
        let info = (symbol << 32) | kind;
        for v in [offset, info] {
            rel.extend(if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            });
        }
    }
    let ext = btf_ext(str_tc, big, &[[0, int, access, 8]]);
    let mut object = build_elf(
        &[
            ("tc", 1, 0x6, text),
            (".reltc", SHT_REL, 0, rel),
            (".BTF", 1, 0, btf),
            (".BTF.ext", 1, 0, ext),
            ("license", 1, 0x3, b"GPL\0".to_vec()),
        ],
        &[
            Sym {
                name: "prog",
                section: Some("tc"),
                value: 0,
                size: 64,
                kind: 2,
                binding: 1,
            },
            Sym {
                name: "vfs_read",
                section: None,
                value: 0,
                size: 0,
                kind: 0,
                binding: 1,
            },
            Sym {
                name: "runqueues",
                section: None,
                value: 0,
                size: 0,
                kind: 0,
                binding: 1,
            },
            Sym {
                name: "bpf_task_from_pid",
                section: None,
                value: 0,
                size: 0,
                kind: 0,
                binding: 1,
            },
            Sym {
                name: "CONFIG_HZ",
                section: None,
                value: 0,
                size: 0,
                kind: 0,
                binding: 2,
            },
        ],
        big,
    );
    // build_elf leaves sh_link/sh_info 0 but for the symbol table: the relocations apply to section 1 ("tc") with
    // the symbol table (section 6).
    let elf = Elf::parse(&object).unwrap();
    let table = u64::from_le_bytes(if big {
        let mut raw: [u8; 8] = object[40..48].try_into().unwrap();
        raw.reverse();
        raw
    } else {
        object[40..48].try_into().unwrap()
    }) as usize;
    let symtab = elf
        .sections
        .iter()
        .position(|s| s.kind == SHT_SYMTAB)
        .unwrap() as u32;
    let at = table + 2 * 64;
    object[at + 40..at + 44].copy_from_slice(&word(symtab, big));
    object[at + 44..at + 48].copy_from_slice(&word(1, big));
    object
}

fn field(data: &[u8], at: usize, len: usize, big: bool) -> u64 {
    let raw = &data[at..at + len];
    let fold = |v: u64, b: &u8| (v << 8) | u64::from(*b);
    if big {
        raw.iter().fold(0, fold)
    } else {
        raw.iter().rev().fold(0, fold)
    }
}

#[test]
fn a_libbpf_object_is_rewritten_for_aya() {
    for big in [false, true] {
        let object = libbpf_object(big);
        let out = prepare(&object, Some(&FakeKernel)).unwrap().unwrap();
        let elf = Elf::parse(&out).unwrap();
        let tc = elf.sections.get(1).unwrap();
        assert_eq!(tc.name, "classifier/tc");
        let text = elf.section_data(tc);
        assert_eq!(
            field(text, 4, 4, big),
            ADDRESS & 0xffff_ffff,
            "untyped ksym: its address"
        );
        assert_eq!(field(text, 12, 4, big), ADDRESS >> 32);
        assert_eq!(field(text, 16 + 4, 4, big), 200, "typed ksym: its BTF id");
        assert_eq!(src_reg(text[16 + 1], !big), BPF_PSEUDO_BTF_ID);
        assert_eq!(field(text, 32 + 4, 4, big), 100, "kfunc: its BTF id");
        assert_eq!(src_reg(text[32 + 1], !big), BPF_PSEUDO_KFUNC_CALL);
        let kconfig = elf.section(KCONFIG_SECTION).unwrap();
        assert_eq!(field(elf.section_data(kconfig), 0, 4, big), 250);
        // The .BTF.ext blocks name the new section, whose name was added to the BTF strings.
        let btf = Btf::parse(elf.section_data(elf.section(".BTF").unwrap())).unwrap();
        let ext = elf.section_data(elf.section(".BTF.ext").unwrap());
        for area in ext_areas(ext, !big).unwrap() {
            let name = word_at(ext, area.first_block, !big).unwrap();
            assert_eq!(btf.string(name), "classifier/tc", "area {}", area.which);
        }
    }
}

#[test]
fn objects_with_nothing_to_rewrite_skip_the_parse() {
    let plain = build_elf(
        &[
            ("xdp", 1, 0x6, insn(0x95, 0, 0, 0, 0, false)),
            (".BTF", 1, 0, BtfBuilder::default().to_bytes(false)),
        ],
        &[],
        false,
    );
    assert!(!needs_pass(&plain));
    assert_eq!(prepare(&plain, Some(&FakeKernel)), Ok(None));
    assert!(needs_pass(&libbpf_object(false)));
    assert!(needs_pass(&libbpf_object(true)));
    // A .ksyms DATASEC alone (no classifier section) needs the pass.
    let mut b = BtfBuilder::default();
    b.add(15, ".ksyms", 0, &[], 0, false);
    let ksyms = build_elf(&[(".BTF", 1, 0, b.to_bytes(false))], &[], false);
    assert!(needs_pass(&ksyms));
    // Not ELF64: nothing for the pass. A section header table it cannot read: "maybe".
    assert!(!needs_pass(b"not an object"));
    let mut odd = plain.clone();
    odd[58] = 40; // e_shentsize
    assert!(needs_pass(&odd));
}

/// Every truncation and many mutations of the object: the pass answers, it never panics.
#[test]
fn truncated_and_mutated_objects_never_panic() {
    for big in [false, true] {
        let object = libbpf_object(big);
        for length in 0..object.len() {
            let _ = prepare(&object[..length], Some(&FakeKernel));
            let _ = prepare(&object[..length], None);
        }
        for at in 0..object.len() {
            for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut mutated = object.clone();
                mutated[at] = value;
                let _ = prepare(&mutated, Some(&FakeKernel));
            }
        }
        for at in (0..object.len().saturating_sub(8)).step_by(4) {
            for value in [u64::MAX, u64::MAX - 7, 1 << 63, u64::from(u32::MAX)] {
                let mut mutated = object.clone();
                mutated[at..at + 8].copy_from_slice(&if big {
                    value.to_be_bytes()
                } else {
                    value.to_le_bytes()
                });
                let _ = prepare(&mutated, Some(&FakeKernel));
                let mut mutated = object.clone();
                mutated[at..at + 4].copy_from_slice(&word(value as u32, big));
                let _ = prepare(&mutated, Some(&FakeKernel));
            }
        }
    }
}

/// A relocation whose offset is near 2^64 (an addition that overflowed in debug builds) is skipped.
#[test]
fn a_relocation_offset_near_the_end_of_the_address_space_is_skipped() {
    let mut object = libbpf_object(false);
    let elf = Elf::parse(&object).unwrap();
    let rel = elf.section(".reltc").unwrap().offset as usize;
    object[rel..rel + 8].copy_from_slice(&(u64::MAX - 4).to_le_bytes());
    let out = prepare(&object, Some(&FakeKernel)).unwrap().unwrap();
    let elf = Elf::parse(&out).unwrap();
    let text = elf.section_data(elf.sections.get(1).unwrap());
    assert_eq!(field(text, 4, 4, false), 0, "its instruction is left alone");
    assert_eq!(
        field(text, 32 + 4, 4, false),
        100,
        "the others are resolved"
    );
}

/// `.BTF.ext` areas whose offsets or lengths point outside the section are the pass's error.
#[test]
fn btf_ext_areas_outside_the_section_are_errors() {
    let ext = btf_ext(1, false, &[[0, 1, 1, 0]]);
    assert_eq!(ext_areas(&ext, true).unwrap().len(), 3);
    for at in [8, 12, 16, 20, 24, 28] {
        let mut bad = ext.clone();
        bad[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let found = ext_areas(&bad, true);
        assert!(
            found.is_err() || found.unwrap().len() < 3,
            "header word {at} set to 2^32 - 1"
        );
    }
    assert!(ext_areas(&ext[..6], true).is_err());
    let mut renamed = |_: u32| Ok(Some(7));
    let mut huge = ext.clone();
    // The CO-RE block's record count: 2^32 - 1 records of 16 bytes end far past the area, where the walk stops.
    let count_at = ext.len() - 16 - 4;
    huge[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    rename_ext_sections(&mut huge, true, &mut renamed).unwrap();
}

#[test]
fn kconfig_char_arrays_are_bounded() {
    assert!(kconfig_value("X", KconfigShape::Chars(u32::MAX), "\"x\"").is_err());
    assert_eq!(
        kconfig_value("X", KconfigShape::Chars(2), "\"x\"").unwrap(),
        *b"x\0"
    );
    assert!(kconfig_value(
        "X",
        KconfigShape::Int {
            size: 3,
            signed: false
        },
        "1"
    )
    .is_err());
}

// -- CO-RE -------------------------------------------------------------------------------------------------------

struct TargetKernel(Btf);

impl Kernel for TargetKernel {
    fn btf_id(&self, _: &str, _: bool) -> Option<u32> {
        None
    }

    fn address(&self, _: &str) -> Option<u64> {
        None
    }

    fn kconfig(&self, _: &str) -> Option<String> {
        None
    }

    fn target_btf(&self) -> Option<&Btf> {
        Some(&self.0)
    }
}

const TP_SECTION: &str = "tracepoint/syscalls/sys_enter_pread64";

/// A target BTF whose `struct syscall_trace_enter` puts `args[]` at byte 24 (the object's has it at 16), and
/// whose `task_struct` has no `pyaya_missing`; `with_syscall_struct` false leaves the former out.
fn target_btf(with_syscall_struct: bool) -> Btf {
    let mut b = BtfBuilder::default();
    let int = b.int("int", 4, true);
    let ulong = b.int("long unsigned int", 8, false);
    let entry = b.composite(false, "trace_entry", 8, &[("type", int, 0, 0)]);
    let flex = b.array(ulong, int, 0);
    if with_syscall_struct {
        b.composite(
            false,
            "syscall_trace_enter",
            24,
            &[
                ("ent", entry, 0, 0),
                ("nr", int, 64, 0),
                ("pad", ulong, 128, 0),
                ("args", flex, 192, 0),
            ],
        );
    }
    b.composite(false, "task_struct", 8, &[("pid", int, 0, 0)]);
    Btf::parse(&b.to_bytes(false)).unwrap()
}

/// A tracepoint program reading `ctx->args[3]` (an ALU add), `ctx->args[0]` (a load's offset), `ctx->args[1]` (a
/// 64-bit immediate) and `task_struct___pyaya.pyaya_missing`, with one CO-RE record each.
fn core_object() -> Vec<u8> {
    let mut b = BtfBuilder::default();
    let int = b.int("int", 4, true);
    let ulong = b.int("long unsigned int", 8, false);
    let entry = b.composite(false, "trace_entry", 8, &[("type", int, 0, 0)]);
    let flex = b.array(ulong, int, 0);
    let syscall = b.composite(
        false,
        "syscall_trace_enter",
        16,
        &[
            ("ent", entry, 0, 0),
            ("nr", int, 64, 0),
            ("args", flex, 128, 0),
        ],
    );
    let flavor = b.composite(
        false,
        "task_struct___pyaya",
        4,
        &[("pyaya_missing", int, 0, 0)],
    );
    let proto = b.add(13, "", int, &[], 0, false);
    b.add(12, "handle", proto, &[], 1, false);
    let section = b.string(TP_SECTION);
    let (a3, a0, a1, missing) = (
        b.string("0:2:3"),
        b.string("0:2:0"),
        b.string("0:2:1"),
        b.string("0:0"),
    );
    let btf = b.to_bytes(false);
    let mut text = Vec::new();
    text.extend(insn(0x07, 1, 0, 0, 40, false)); // r1 += 40 (args[3])
    text.extend(insn(0x79, 0, 1, 16, 0, false)); // r0 = *(u64 *)(r1 + 16) (args[0])
    text.extend(insn(LD_IMM64, 2, 0, 0, 24, false)); // r2 = 24 (args[1])
    text.extend(insn(0, 0, 0, 0, 0, false));
    text.extend(insn(0xb7, 3, 0, 0, 0, false)); // r3 = 0 (pyaya_missing)
    text.extend(insn(0x95, 0, 0, 0, 0, false));
    let ext = btf_ext(
        section,
        false,
        &[
            [0, syscall, a3, FIELD_BYTE_OFFSET],
            [8, syscall, a0, FIELD_BYTE_OFFSET],
            [16, syscall, a1, FIELD_BYTE_OFFSET],
            [32, flavor, missing, FIELD_BYTE_OFFSET],
        ],
    );
    build_elf(
        &[
            (TP_SECTION, 1, 0x6, text),
            (".BTF", 1, 0, btf),
            (".BTF.ext", 1, 0, ext),
        ],
        &[Sym {
            name: "handle",
            section: Some(TP_SECTION),
            value: 0,
            size: 48,
            kind: 2,
            binding: 1,
        }],
        false,
    )
}

use super::core_relo::{FIELD_BYTE_OFFSET, POISON};

#[test]
fn flexible_array_records_are_relocated_and_removed() {
    let object = core_object();
    assert!(needs_pass(&object), "CO-RE records need the pass");
    assert!(has_core_relocations(&object));
    assert!(
        !may_have_externs(&object),
        "no .ksyms/.kconfig: externs() skips the parse"
    );
    assert!(may_have_externs(&libbpf_object(false)));
    let prepared = prepare_for_load(&object, Some(&TargetKernel(target_btf(true)))).unwrap();
    let out = prepared.data.unwrap();
    let elf = Elf::parse(&out).unwrap();
    let text = elf.section_data(elf.section(TP_SECTION).unwrap());
    assert_eq!(
        field(text, 4, 4, false),
        24 + 3 * 8,
        "args[3]: the target's offset"
    );
    assert_eq!(
        field(text, 8 + 2, 2, false),
        24,
        "args[0]: the load's offset"
    );
    assert_eq!(
        field(text, 16 + 4, 4, false),
        24 + 8,
        "args[1]: the 64-bit immediate"
    );
    assert_eq!(
        field(text, 32 + 4, 4, false),
        0,
        "the missing field is left to aya"
    );
    // Only the record pyaya did not relocate stays for aya.
    let btf = Btf::parse(elf.section_data(elf.section(".BTF").unwrap())).unwrap();
    let ext = elf.section_data(elf.section(".BTF.ext").unwrap());
    let areas = ext_areas(ext, true).unwrap();
    let left = core_relo::records(ext, &areas, true, &btf).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].access, "0:0");
    assert_eq!(left[0].insn_off, 32);
    // func and line info are untouched.
    assert_eq!(areas.iter().filter(|a| a.which < 2).count(), 2);
    // The unresolvable one is reported, naming the struct, the field and the function.
    assert_eq!(
        prepared.core_failures.len(),
        1,
        "{:?}",
        prepared.core_failures
    );
    let failure = &prepared.core_failures[0];
    assert_eq!(failure.function.as_deref(), Some("handle"));
    assert_eq!(failure.insn_off, 32);
    assert_eq!(failure.insn_index, Some(4));
    assert!(
        failure
            .message
            .starts_with("CO-RE relocation of struct task_struct.pyaya_missing (declared as task_struct___pyaya) (access 0:0) failed: the kernel's BTF has no such member"),
        "{}",
        failure.message
    );
    assert!(failure
        .message
        .ends_with("guard it with bpf_core_field_exists()"));
}

#[test]
fn flexible_array_records_without_a_target_struct_are_poisoned() {
    let object = core_object();
    let prepared = prepare_for_load(&object, Some(&TargetKernel(target_btf(false)))).unwrap();
    let out = prepared.data.unwrap();
    let elf = Elf::parse(&out).unwrap();
    let text = elf.section_data(elf.section(TP_SECTION).unwrap());
    for slot in [0, 8, 16, 24] {
        assert_eq!(text[slot], CALL, "slot {slot}");
        assert_eq!(field(text, slot + 4, 4, false), POISON as u64);
    }
    assert_eq!(prepared.core_failures.len(), 4);
    assert!(prepared.core_failures[0]
        .message
        .contains("struct syscall_trace_enter.args[3] (access 0:2:3) failed: the kernel's BTF has no struct syscall_trace_enter"));
}

#[test]
fn without_a_target_core_records_are_left_to_aya() {
    let object = core_object();
    let prepared = prepare_for_load(&object, Some(&FakeKernel)).unwrap();
    assert_eq!(prepared, Prepared::default());
}

#[test]
fn an_instruction_that_does_not_hold_the_local_value_is_refused() {
    let mut object = core_object();
    let elf = Elf::parse(&object).unwrap();
    let at = elf.section(TP_SECTION).unwrap().offset as usize;
    object[at + 4] = 41; // r1 += 41, not args[3]'s 40
    let refused = prepare_for_load(&object, Some(&TargetKernel(target_btf(true)))).unwrap_err();
    assert!(
        refused
            .0
            .contains("holds 41, not the object's own value 40"),
        "{refused}"
    );
}

#[test]
fn mutated_core_objects_never_panic() {
    let object = core_object();
    let kernel = TargetKernel(target_btf(true));
    for length in 0..object.len() {
        let _ = prepare_for_load(&object[..length], Some(&kernel));
    }
    for at in 0..object.len() {
        for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
            let mut mutated = object.clone();
            mutated[at] = value;
            let _ = prepare_for_load(&mutated, Some(&kernel));
        }
    }
    for at in (0..object.len().saturating_sub(4)).step_by(4) {
        for value in [u32::MAX, 1 << 31, 0xffff_fff0] {
            let mut mutated = object.clone();
            mutated[at..at + 4].copy_from_slice(&value.to_le_bytes());
            let _ = prepare_for_load(&mutated, Some(&kernel));
        }
    }
}
