//! Types shared by the `types_*` fixtures, as a project's `-common` crate would hold them: every one `#[repr(C)]`
//! so its BTF (bpf-linker `--btf`) gives user space the same layout.

/// Which of the fixture's colors; a `#[repr(u32)]` enum becomes a 4-byte BTF enum.
#[repr(u32)]
#[derive(Clone, Copy)]
#[allow(dead_code, reason = "Red and Blue only exist for user space to name")]
pub enum Color {
    Red = 1,
    Green = 2,
    Blue = 0x10,
}

/// Nested in `Sample`, alone and as an array.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Inner {
    pub a: u16,
    pub b: i16,
    /// Four raw bytes: too short to be read as text.
    pub tag: [u8; 4],
}

/// One record with a field of every kind user space decodes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Sample {
    pub small: u8,
    pub small_signed: i8,
    pub short: u16,
    pub short_signed: i16,
    pub word: u32,
    pub word_signed: i32,
    pub long: u64,
    pub long_signed: i64,
    pub flag: bool,
    pub color: Color,
    pub words: [u16; 3],
    pub inner: Inner,
    pub inners: [Inner; 2],
    /// Text: NUL-terminated printable UTF-8.
    pub name: [u8; 16],
    /// Not text: no NUL.
    pub blob: [u8; 8],
    pub pid: u32,
}

/// Key of the struct-keyed maps; 3 bytes of padding after `slot`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SampleKey {
    pub pid: u32,
    pub slot: u8,
}

/// Value of the `#[btf_map]` hash map.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Totals {
    pub calls: u64,
    pub last: Color,
}
