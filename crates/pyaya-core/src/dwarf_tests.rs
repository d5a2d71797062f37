use super::btf_from_dwarf;
use crate::btf::{Btf, Kind};
use crate::testing::build_elf;

const ABBREV: &[u8] = &[
    1, 0x11, 1, 0, 0, // compile unit, children
    2, 0x13, 1, 0x03, 0x08, 0x0b, 0x0b, 0, 0, // struct: name string, byte_size data1
    3, 0x0d, 0, 0x03, 0x08, 0x49, 0x13, 0x38, 0x0b, 0,
    0, // member: name, type ref4, location data1
    4, 0x0f, 0, 0x49, 0x13, 0, 0, // pointer: type ref4
    5, 0x24, 0, 0x03, 0x08, 0x3e, 0x0b, 0x0b, 0x0b, 0,
    0, // base type: name, encoding, byte_size
    0,
];

/// DWARF 4 for `struct node { struct node *next; int v; }`: a type cycle through a pointer.
fn info(big: bool) -> Vec<u8> {
    let u32b = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = Vec::new();
    out.extend_from_slice(&u32b(48));
    out.extend_from_slice(&if big {
        4_u16.to_be_bytes()
    } else {
        4_u16.to_le_bytes()
    });
    out.extend_from_slice(&u32b(0));
    out.push(8);
    out.push(1);
    out.extend_from_slice(&[2, b'n', b'o', b'd', b'e', 0, 16]);
    out.extend_from_slice(&[3, b'n', b'e', b'x', b't', 0]);
    out.extend_from_slice(&u32b(39));
    out.push(0);
    out.extend_from_slice(&[3, b'v', 0]);
    out.extend_from_slice(&u32b(44));
    out.push(8);
    out.push(0);
    out.push(4);
    out.extend_from_slice(&u32b(12));
    out.extend_from_slice(&[5, b'i', b'n', b't', 0, 5, 4]);
    out.push(0);
    assert_eq!(out.len(), 52);
    out
}

fn object(info: Vec<u8>, big: bool) -> Vec<u8> {
    build_elf(
        &[
            (".debug_abbrev", 1, 0, ABBREV.to_vec()),
            (".debug_info", 1, 0, info),
        ],
        &[],
        big,
    )
}

#[test]
fn a_self_referencing_struct_converts_in_both_byte_orders() {
    for big in [false, true] {
        let blob = btf_from_dwarf(&object(info(big), big), false)
            .unwrap()
            .unwrap();
        let btf = Btf::parse(&blob).unwrap();
        let ids = btf.find("node", Some(Kind::Struct));
        assert_eq!(ids.len(), 1);
        let node = btf.get(ids[0]).unwrap();
        assert_eq!(node.size(), Some(16));
        let members: Vec<_> = btf.members(&node).collect();
        assert_eq!(btf.string(members[0].name), "next");
        assert_eq!(btf.string(members[1].name), "v");
        assert_eq!(members[1].bit_offset, 64);
        let pointer = btf.get(members[0].type_id).unwrap();
        assert_eq!(pointer.kind, Kind::Ptr);
        assert_eq!(pointer.size_or_type, ids[0]);
        let int = btf.get(members[1].type_id).unwrap();
        assert_eq!(int.kind, Kind::Int);
    }
}

#[test]
fn no_debug_info_is_none() {
    let elf = build_elf(&[(".text", 1, 6, vec![0; 8])], &[], false);
    assert_eq!(btf_from_dwarf(&elf, false), Ok(None));
}

#[test]
fn every_truncation_and_byte_mutation_is_an_error_or_a_valid_blob() {
    let whole = info(false);
    for cut in 0..whole.len() {
        let mut short = whole.clone();
        short.truncate(cut);
        if let Ok(Some(blob)) = btf_from_dwarf(&object(short, false), true) {
            Btf::parse(&blob).unwrap();
        }
    }
    for at in 0..whole.len() {
        for value in [0_u8, 1, 0x7f, 0xff] {
            let mut mutated = whole.clone();
            mutated[at] = value;
            if let Ok(Some(blob)) = btf_from_dwarf(&object(mutated, false), true) {
                Btf::parse(&blob).unwrap();
            }
        }
    }
}
