use super::*;
use crate::testing::BtfBuilder;

const PTR: u32 = 2;
const TYPEDEF: u32 = 8;
const CONST: u32 = 10;
const FUNC_PROTO: u32 = 13;

/// The types part of the header (between the prologue and the kfunc section).
fn dump(b: &BtfBuilder) -> String {
    let btf = Btf::parse(&b.to_bytes(false)).unwrap();
    let header = to_c_header(&btf).unwrap();
    let start = header.find(PROLOGUE).unwrap() + PROLOGUE.len();
    let end = header.find("\n/* BPF kfuncs */").unwrap();
    header[start..end].to_owned()
}

#[test]
fn pointer_cycles_get_forward_declarations() {
    let mut b = BtfBuilder::default();
    let int = b.int("int", 4, true);
    // struct list { struct node *head; int n; }; struct node { struct list *owner; struct node *next; };
    let list_ptr = b.reference(PTR, "", 4);
    let node_ptr = b.reference(PTR, "", 5);
    b.composite(
        false,
        "list",
        16,
        &[("head", node_ptr, 0, 0), ("n", int, 64, 0)],
    );
    b.composite(
        false,
        "node",
        16,
        &[("owner", list_ptr, 0, 0), ("next", node_ptr, 64, 0)],
    );
    assert_eq!(
        dump(&b),
        "struct node;\n\nstruct list {\n\tstruct node *head;\n\tint n;\n};\n\n\
         struct node {\n\tstruct list *owner;\n\tstruct node *next;\n};\n\n"
    );
}

#[test]
fn embedded_structs_come_first_and_anonymous_ones_inline() {
    let mut b = BtfBuilder::default();
    let int = b.int("int", 4, true);
    let long = b.int("long int", 8, true);
    let anon = b.composite(true, "", 8, &[("a", int, 0, 0), ("b", long, 0, 0)]);
    let inner = b.composite(false, "inner", 4, &[("x", int, 0, 0)]);
    b.composite(
        false,
        "outer",
        16,
        &[("", anon, 0, 0), ("in", inner, 64, 0)],
    );
    assert_eq!(
        dump(&b),
        "struct inner {\n\tint x;\n};\n\n\
         struct outer {\n\tunion {\n\t\tint a;\n\t\tlong int b;\n\t};\n\tstruct inner in;\n};\n\n"
    );
}

#[test]
fn bitfields_padding_and_packed() {
    let mut b = BtfBuilder::default();
    let int = b.int("int", 4, true);
    let char_ = b.int("char", 1, true);
    b.composite(
        false,
        "bits",
        8,
        &[("a", int, 0, 3), ("b", int, 3, 5), ("c", int, 32, 0)],
    );
    b.composite(false, "packed", 5, &[("c", char_, 0, 0), ("x", int, 8, 0)]);
    // A gap the members' alignment does not explain: explicit padding.
    b.composite(false, "gap", 16, &[("c", char_, 0, 0), ("x", int, 64, 0)]);
    let out = dump(&b);
    assert!(
        out.contains("struct bits {\n\tint a: 3;\n\tint b: 5;\n\tint c;\n};"),
        "{out}"
    );
    assert!(
        out.contains("struct packed {\n\tchar c;\n\tint x;\n} __attribute__((packed));"),
        "{out}"
    );
    // Checked with clang -target bpf: sizeof 16, x at 8.
    assert!(
        out.contains("struct gap {\n\tchar c;\n\tlong: 0;\n\tint x;\n\tlong: 0;\n};"),
        "{out}"
    );
    assert!(
        !out.contains("struct gap {\n\tchar c;\n\tint x;\n};"),
        "{out}"
    );
}

#[test]
fn enums_typedefs_functions_arrays_and_names() {
    let mut b = BtfBuilder::default();
    let int = b.int("int", 4, true);
    b.enumeration("color", 4, true, &[("RED", -1), ("GREEN", 2)]);
    b.enumeration("", 1, false, &[("RED", 3)]);
    // typedef int (*handler_t)(int, ...);
    let proto = b.add(FUNC_PROTO, "", int, &[0, int, 0, 0], 2, false);
    let fn_ptr = b.reference(PTR, "", proto);
    b.reference(TYPEDEF, "handler_t", fn_ptr);
    // int grid[2][3]; const int *c; a member called `default`; a second struct color... union named the same.
    let row = b.array(int, int, 3);
    let grid = b.array(row, int, 2);
    let const_int = b.reference(CONST, "", int);
    let const_ptr = b.reference(PTR, "", const_int);
    b.composite(
        false,
        "holder",
        40,
        &[
            ("grid", grid, 0, 0),
            ("c", const_ptr, 192, 0),
            ("default", int, 256, 0),
        ],
    );
    b.composite(false, "holder", 4, &[("x", int, 0, 0)]);
    let out = dump(&b);
    assert!(
        out.contains("enum color {\n\tRED = -1,\n\tGREEN = 2,\n};"),
        "{out}"
    );
    assert!(
        out.contains("enum {\n\tRED___2 = 3,\n} __attribute__((mode(byte)));"),
        "{out}"
    );
    assert!(out.contains("typedef int (*handler_t)(int, ...);"), "{out}");
    assert!(
        out.contains("\tint grid[2][3];\n\tconst int *c;\n\tint default_;\n"),
        "{out}"
    );
    assert!(out.contains("struct holder___2 {\n\tint x;\n};"), "{out}");
}

#[test]
fn kernel_btf_dumps_quickly() {
    let Ok(data) = std::fs::read("/sys/kernel/btf/vmlinux") else {
        return;
    };
    let btf = Btf::parse(&data).unwrap();
    let start = std::time::Instant::now();
    let header = to_c_header(&btf).unwrap();
    eprintln!("vmlinux.h: {} bytes in {:?}", header.len(), start.elapsed());
    assert!(header.contains("struct task_struct {"));
    assert!(header.ends_with(EPILOGUE));
}

#[test]
fn malformed_btf_is_an_error_not_a_hang() {
    // A loop of qualifiers: const -> const -> the first.
    let mut b = BtfBuilder::default();
    b.reference(CONST, "", 2);
    b.reference(CONST, "", 1);
    b.reference(TYPEDEF, "loop_t", 1);
    let btf = Btf::parse(&b.to_bytes(false)).unwrap();
    assert!(to_c_header(&btf).is_err());
    // A struct containing itself by value.
    let mut b = BtfBuilder::default();
    b.composite(false, "self", 4, &[("me", 1, 0, 0)]);
    let btf = Btf::parse(&b.to_bytes(false)).unwrap();
    assert!(to_c_header(&btf).unwrap_err().0.contains("cycle"));
    // An anonymous struct reached through its own pointer.
    let mut b = BtfBuilder::default();
    b.composite(false, "", 8, &[("p", 2, 0, 0)]);
    b.reference(PTR, "", 1);
    let btf = Btf::parse(&b.to_bytes(false)).unwrap();
    assert!(to_c_header(&btf).is_err());
}
