use super::*;
use crate::testing::BtfBuilder;

const PTR: u32 = 2;
const FWD: u32 = 7;
const TYPEDEF: u32 = 8;
const VOLATILE: u32 = 9;
const CONST: u32 = 10;
const FUNC: u32 = 12;
const FUNC_PROTO: u32 = 13;
const VAR: u32 = 14;
const DATASEC: u32 = 15;
const ENUM64: u32 = 19;

fn parse(b: &BtfBuilder) -> Btf {
    Btf::parse(&b.to_bytes(false)).expect("valid BTF")
}

fn parse_error(bytes: &[u8]) -> String {
    Btf::parse(bytes).expect_err("invalid BTF").to_string()
}

/// `struct event { u32 pid; u8 comm[16]; union { u64 a; u32 b; }; u32 flags:3, mode:5; }`.
fn event() -> (BtfBuilder, u32) {
    let mut b = BtfBuilder::default();
    let u32_ = b.int("u32", 4, false);
    let u8_ = b.int("u8", 1, false);
    let u64_ = b.int("u64", 8, false);
    let index = b.int("__ARRAY_SIZE_TYPE__", 4, false);
    let comm = b.array(u8_, index, 16);
    let inner = b.composite(true, "", 8, &[("a", u64_, 0, 0), ("b", u32_, 0, 0)]);
    let event = b.composite(
        false,
        "event",
        40,
        &[
            ("pid", u32_, 0, 0),
            ("comm", comm, 32, 0),
            ("", inner, 192, 0),
            ("flags", u32_, 256, 3),
            ("mode", u32_, 259, 5),
        ],
    );
    (b, event)
}

#[test]
fn structs_unions_and_bitfields_keep_their_layout() {
    let (b, id) = event();
    let btf = parse(&b);
    let event = btf.type_by_id(id).unwrap();
    assert_eq!(event.kind, Kind::Struct);
    assert!(event.kind_flag);
    assert_eq!(btf.string(event.name), "event");
    assert_eq!(btf.size_of(id).unwrap(), Some(40));
    let members: Vec<Member> = btf.members(&event).collect();
    let names: Vec<_> = members.iter().map(|m| btf.string(m.name)).collect();
    assert_eq!(names, ["pid", "comm", "", "flags", "mode"]);
    assert_eq!((members[3].bit_offset, members[3].bitfield_size), (256, 3));
    assert_eq!((members[4].bit_offset, members[4].bitfield_size), (259, 5));
    let union = btf.type_by_id(members[2].type_id).unwrap();
    assert_eq!(union.kind, Kind::Union);
    assert_eq!(btf.members(&union).count(), 2);
}

#[test]
fn members_are_found_through_anonymous_members() {
    let (b, id) = event();
    let btf = parse(&b);
    let (bits, member) = btf
        .member(id, "b")
        .unwrap()
        .expect("b is in the anonymous union");
    assert_eq!(bits, 192);
    assert_eq!(btf.string(member.name), "b");
    assert_eq!(btf.member(id, "nope").unwrap(), None);
    let (bits, _) = btf.member_path(id, "event", "mode").unwrap();
    assert_eq!(bits, 259);
    let missing = btf
        .member_path(id, "event", "pid.x")
        .unwrap_err()
        .to_string();
    assert_eq!(missing, "event.pid is a INT, not a struct or union");
    let missing = btf
        .member_path(id, "event", "nope")
        .unwrap_err()
        .to_string();
    assert_eq!(
        missing,
        "event has no member 'nope' (members: pid, comm, <anon>, flags, mode)"
    );
}

#[test]
fn arrays_multiply_and_overflow_is_an_error() {
    let mut b = BtfBuilder::default();
    let u32_ = b.int("u32", 4, false);
    let rows = b.array(u32_, u32_, 3);
    let grid = b.array(rows, u32_, 5);
    let huge = b.array(grid, u32_, u32::MAX);
    let huger = b.array(huge, u32_, u32::MAX);
    let btf = parse(&b);
    assert_eq!(btf.size_of(rows).unwrap(), Some(12));
    assert_eq!(btf.size_of(grid).unwrap(), Some(60));
    assert_eq!(btf.size_of(huge).unwrap(), Some(60 * u64::from(u32::MAX)));
    assert!(btf
        .size_of(huger)
        .unwrap_err()
        .to_string()
        .contains("overflows"));
    assert!(btf
        .check_value(huge)
        .unwrap_err()
        .to_string()
        .contains("more than pyaya decodes"));
    assert_eq!(btf.check_value(grid).unwrap(), 60);
}

#[test]
fn enums_signed_unsigned_and_64_bit() {
    let mut b = BtfBuilder::default();
    let color = b.enumeration("color", 4, false, &[("RED", 0), ("BLUE", 0xffff_fffe)]);
    let delta = b.enumeration("delta", 4, true, &[("DOWN", -1), ("UP", 1)]);
    let big_name = b.string("MAX");
    let big = b.add(
        ENUM64,
        "big",
        8,
        &[big_name, 0xffff_ffff, 0x8000_0000],
        1,
        true,
    );
    let btf = parse(&b);
    let values = |id| {
        btf.values(&btf.type_by_id(id).unwrap())
            .map(|v| (btf.string(v.name).into_owned(), v.value))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        values(color),
        [("RED".into(), 0), ("BLUE".into(), 0xffff_fffe)]
    );
    assert_eq!(values(delta), [("DOWN".into(), -1), ("UP".into(), 1)]);
    assert_eq!(
        values(big),
        [("MAX".into(), i128::from(i64::MIN + 0xffff_ffff))]
    );
    assert_eq!(btf.size_of(big).unwrap(), Some(8));
}

#[test]
fn typedef_chains_resolve_and_loops_are_errors() {
    let mut b = BtfBuilder::default();
    let u32_ = b.int("u32", 4, false);
    let pid_t = b.reference(TYPEDEF, "pid_t", u32_);
    let volatile = b.reference(VOLATILE, "", pid_t);
    let constant = b.reference(CONST, "", volatile);
    // 4 -> 5 -> 4: two typedefs naming each other.
    let first = b.reference(TYPEDEF, "a", 6);
    let second = b.reference(TYPEDEF, "b", first);
    let btf = parse(&b);
    assert_eq!(btf.resolve(constant).unwrap(), u32_);
    assert_eq!(btf.size_of(constant).unwrap(), Some(4));
    assert_eq!(btf.describe(pid_t), "pid_t");
    assert!(btf
        .resolve(second)
        .unwrap_err()
        .to_string()
        .contains("a loop?"));
    assert!(btf.size_of(first).is_err());
    assert!(btf
        .check_value(first)
        .unwrap_err()
        .to_string()
        .contains("within itself"));
}

#[test]
fn a_struct_may_point_at_itself_but_not_contain_itself() {
    let mut b = BtfBuilder::default();
    let ptr = b.reference(PTR, "", 2);
    let node = b.composite(false, "node", 8, &[("next", ptr, 0, 0)]);
    let by_value = b.composite(false, "loop", 8, &[("inner", 3, 0, 0)]);
    let outer = b.composite(false, "outer", 8, &[("x", by_value, 0, 0)]);
    let btf = parse(&b);
    assert_eq!(btf.check_value(node).unwrap(), 8);
    let error = btf.check_value(outer).unwrap_err().to_string();
    assert_eq!(
        error,
        "BTF type 4 (struct outer) contains struct loop within itself"
    );
    // Member lookup through a self-containing anonymous member ends.
    let mut b = BtfBuilder::default();
    let anon = b.composite(false, "", 8, &[("", 1, 0, 0)]);
    let btf = parse(&b);
    assert_eq!(btf.member(anon, "x").unwrap(), None);
}

#[test]
fn members_past_the_end_of_their_struct_are_refused() {
    let mut b = BtfBuilder::default();
    let u32_ = b.int("u32", 4, false);
    let fits = b.composite(false, "fits", 8, &[("a", u32_, 0, 0), ("b", u32_, 32, 0)]);
    let long = b.composite(false, "long", 4, &[("a", u32_, 0, 0), ("b", u32_, 32, 0)]);
    let bits = b.composite(false, "bits", 4, &[("a", u32_, 0, 30), ("b", u32_, 30, 3)]);
    let outer = b.composite(false, "outer", 16, &[("inner", long, 0, 0)]);
    let struct_bits = b.composite(false, "struct_bits", 8, &[("a", fits, 0, 3)]);
    let btf = parse(&b);
    assert_eq!(
        btf.check_value(struct_bits).unwrap_err().to_string(),
        "BTF type 6 (struct struct_bits): member 'a' is a bitfield of a STRUCT, not of an integer or enum"
    );
    assert_eq!(btf.check_value(fits).unwrap(), 8);
    assert_eq!(
        btf.check_value(long).unwrap_err().to_string(),
        "BTF type 3 (struct long): member 'b' ends at bit 64, past the end of its 4 bytes"
    );
    assert!(btf
        .check_value(bits)
        .unwrap_err()
        .to_string()
        .contains("member 'b' ends at bit 33"));
    assert!(btf
        .check_value(outer)
        .unwrap_err()
        .to_string()
        .contains("struct long"));
}

#[test]
fn deep_nesting_is_refused_without_recursion() {
    let mut b = BtfBuilder::default();
    let mut id = b.int("u8", 1, false);
    for _ in 0..10_000 {
        id = b.array(id, 1, 1);
    }
    let btf = parse(&b);
    assert!(btf
        .check_value(id)
        .unwrap_err()
        .to_string()
        .contains("deep"));
    assert!(btf.size_of(id).unwrap_err().to_string().contains("deep"));
}

#[test]
fn anonymous_member_search_is_linear() {
    // 300 anonymous members, each of a struct with 300 anonymous members of one struct: searched once each.
    let mut b = BtfBuilder::default();
    let u8_ = b.int("u8", 1, false);
    let leaf = b.composite(false, "", 1, &[("x", u8_, 0, 0)]);
    let middle_members: Vec<(&str, u32, u32, u32)> = (0..300).map(|_| ("", leaf, 0, 0)).collect();
    let middle = b.composite(false, "", 1, &middle_members);
    let top_members: Vec<(&str, u32, u32, u32)> = (0..300).map(|_| ("", middle, 0, 0)).collect();
    let top = b.composite(false, "top", 1, &top_members);
    let btf = parse(&b);
    assert_eq!(btf.member(top, "missing").unwrap(), None);
    assert_eq!(btf.member(top, "x").unwrap().map(|(bits, _)| bits), Some(0));
}

#[test]
fn types_are_found_by_name_and_kind() {
    let mut b = BtfBuilder::default();
    let u32_ = b.int("u32", 4, false);
    let fwd = b.add(FWD, "task", 0, &[], 0, false);
    let task = b.composite(false, "task", 4, &[("pid", u32_, 0, 0)]);
    let proto = b.add(FUNC_PROTO, "", u32_, &[0, u32_], 1, false);
    let func = b.add(FUNC, "do_exit", proto, &[], 1, false);
    let other = b.add(FUNC, "do_fork", proto, &[], 1, false);
    let btf = parse(&b);
    assert_eq!(btf.find("task", None), [fwd, task]);
    assert_eq!(btf.find("task", Some(Kind::Struct)), [task]);
    assert_eq!(btf.find("do_exit", Some(Kind::Func)), [func]);
    assert!(btf.find("nothing", None).is_empty());
    assert_eq!(btf.names(Kind::Func), ["do_exit", "do_fork"]);
    let _ = other;
    let proto_type = btf.type_by_id(proto).unwrap();
    assert_eq!(
        btf.params(&proto_type).collect::<Vec<_>>(),
        [Param {
            name: 0,
            type_id: u32_
        }]
    );
    assert_eq!(btf.type_by_id(func).unwrap().vlen, 1); // global linkage
}

#[test]
fn vars_and_datasecs() {
    let mut b = BtfBuilder::default();
    let u64_ = b.int("u64", 8, false);
    let var = b.add(VAR, "COUNT", u64_, &[1], 0, false);
    let datasec = b.add(DATASEC, ".data", 8, &[var, 0, 8], 1, false);
    let btf = parse(&b);
    let t = btf.type_by_id(datasec).unwrap();
    assert_eq!(
        btf.vars(&t).collect::<Vec<_>>(),
        [VarSecinfo {
            type_id: var,
            offset: 0,
            size: 8
        }]
    );
    assert_eq!(btf.type_by_id(var).unwrap().detail, Detail::Linkage(1));
    assert_eq!(btf.size_of(var).unwrap(), Some(8));
}

#[test]
fn big_endian_reads_the_same() {
    let (b, id) = event();
    let little = Btf::parse(&b.to_bytes(false)).unwrap();
    let big = Btf::parse(&b.to_bytes(true)).unwrap();
    assert_eq!(big.endian(), Endian::Little.opposite());
    assert_eq!(little.len(), big.len());
    for type_id in 0..little.len() as u32 {
        let (l, b) = (little.get(type_id).unwrap(), big.get(type_id).unwrap());
        assert_eq!(l, b);
        assert_eq!(
            little.members(&l).collect::<Vec<_>>(),
            big.members(&b).collect::<Vec<_>>()
        );
        assert_eq!(little.name_of(type_id), big.name_of(type_id));
    }
    assert_eq!(big.size_of(id).unwrap(), Some(40));
}

#[test]
fn bad_ids_are_refused_when_parsing() {
    let mut b = BtfBuilder::default();
    let u32_ = b.int("u32", 4, false);
    b.composite(false, "s", 4, &[("x", u32_, 0, 0), ("y", 99, 32, 0)]);
    let error = parse_error(&b.to_bytes(false));
    assert_eq!(
        error,
        "BTF type 2 (STRUCT \"s\"): a member's type is type 99, but the last type is 2"
    );
    let mut b = BtfBuilder::default();
    b.reference(PTR, "", 5);
    assert!(parse_error(&b.to_bytes(false)).contains("its target is type 5"));
    let btf = parse(&BtfBuilder::default());
    assert_eq!(
        btf.type_by_id(3).unwrap_err().to_string(),
        "no BTF type with id 3 (ids go up to 0)"
    );
    assert!(btf.resolve(3).is_err());
}

#[test]
fn malformed_headers_and_sections_are_errors() {
    let (b, _) = event();
    let good = b.to_bytes(false);
    assert!(parse_error(&good[..10]).starts_with("truncated BTF: 10 bytes"));
    assert!(
        parse_error(b"\x00\x01").starts_with("truncated BTF")
            || parse_error(b"\x00\x01").starts_with("not BTF")
    );
    let mut bad_magic = good.clone();
    bad_magic[0] = 0;
    assert!(parse_error(&bad_magic).starts_with("not BTF (magic 00 eb"));
    let mut version = good.clone();
    version[2] = 2;
    assert_eq!(
        parse_error(&version),
        "unsupported BTF version 2 (expected 1)"
    );
    // A type section longer than the data.
    let mut long = good.clone();
    long[12..16].copy_from_slice(&(u32::MAX - 3).to_le_bytes());
    assert!(parse_error(&long).starts_with("truncated BTF: the type section ends at byte"));
    // The last type cut in half.
    let mut cut = good.clone();
    let type_len = u32::from_le_bytes(cut[12..16].try_into().unwrap());
    cut[12..16].copy_from_slice(&(type_len - 8).to_le_bytes());
    assert!(parse_error(&cut).contains("runs past the type section"));
    // Strings without their final NUL.
    let mut strings = good.clone();
    *strings.last_mut().unwrap() = b'x';
    assert_eq!(
        parse_error(&strings),
        "the BTF string section is not NUL-terminated"
    );
    // A name offset past the strings.
    let mut name = good;
    name[24..28].copy_from_slice(&10_000_u32.to_le_bytes());
    assert!(parse_error(&name)
        .starts_with("BTF type 1: its name offset 10000 is outside the string section"));
    // An unknown kind.
    let mut b = BtfBuilder::default();
    b.add(25, "what", 0, &[], 0, false);
    assert_eq!(
        parse_error(&b.to_bytes(false)),
        "BTF type 1 has unknown kind 25"
    );
}

#[test]
fn empty_btf_has_only_void() {
    let btf = parse(&BtfBuilder::default());
    assert!(btf.is_empty());
    assert_eq!(btf.len(), 1);
    assert_eq!(btf.type_by_id(0).unwrap().kind, Kind::Void);
    assert_eq!(btf.size_of(0).unwrap(), None);
    assert_eq!(btf.describe(0), "void");
}

#[test]
fn vmlinux_when_present() {
    let Ok(data) = std::fs::read("/sys/kernel/btf/vmlinux") else {
        eprintln!("no /sys/kernel/btf/vmlinux: skipped");
        return;
    };
    let btf = Btf::parse(&data).unwrap();
    assert!(btf.len() > 1000);
    let task = btf.find("task_struct", Some(Kind::Struct));
    assert_eq!(task.len(), 1);
    let (pid, member) = btf.member_path(task[0], "task_struct", "pid").unwrap();
    assert_eq!(btf.size_of(member.type_id).unwrap(), Some(4));
    assert!(pid > 0);
    assert!(btf.check_value(task[0]).is_ok());
    assert!(!btf.names(Kind::Func).is_empty());
}

#[test]
fn to_bytes_gives_back_a_blob_that_parses_to_the_same_types_in_either_byte_order() {
    let (b, event) = event();
    for big in [false, true] {
        let mut wire = b.to_bytes(big);
        // A header longer than 24 bytes and a gap before the strings: to_bytes writes the canonical layout.
        wire.splice(24..24, [0_u8; 8]);
        let header_len = 32_u32;
        let put = |wire: &mut Vec<u8>, at: usize, value: u32| {
            let bytes = if big {
                value.to_be_bytes()
            } else {
                value.to_le_bytes()
            };
            wire[at..at + 4].copy_from_slice(&bytes);
        };
        put(&mut wire, 4, header_len);
        let original = Btf::parse(&wire).expect("valid BTF");
        let blob = original.to_bytes();
        assert_eq!(&blob[0..2], if big { [0xeb, 0x9f] } else { [0x9f, 0xeb] });
        let again = Btf::parse(&blob).expect("to_bytes parses");
        assert_eq!(again.len(), original.len());
        assert_eq!(again.types, original.types);
        assert_eq!(again.strings, original.strings);
        assert_eq!(again.get(event).map(|t| t.size_or_type), Some(40));
        assert_eq!(
            blob.len(),
            24 + original.types.len() + original.strings.len()
        );
    }
}
