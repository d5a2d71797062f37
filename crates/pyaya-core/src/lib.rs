//! The part of pyaya that needs no Python: readers of the formats pyaya reads (BTF, ELF) and the runtime of the
//! panic guard (`panic`). `pyaya-native` turns what these return into Python objects and exceptions.
//!
//! Everything here reads untrusted bytes, so the panicking shortcuts are denied outside tests: a malformed input
//! must become an error value, never an index out of range or an `unwrap` on `None`.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::todo,
        clippy::unimplemented,
        clippy::unreachable
    )
)]

pub mod btf;
pub mod btf_c;
pub mod btf_ext;
pub mod dwarf;
pub mod elf;
pub mod names;
pub mod object_pass;
pub mod panic;
#[cfg(test)]
mod testing;
pub mod usdt;
