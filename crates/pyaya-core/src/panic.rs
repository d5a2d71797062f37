//! Panics caught before they reach Python.
//!
//! A panic that unwinds out of a PyO3 entry point becomes `pyo3_runtime.PanicException`, a `BaseException` that
//! neither `except PyayaError` nor `except Exception` catches, and Rust's default hook prints a backtrace note on
//! stderr first. `#[pyaya_guard::guard]` runs every entry point's body inside [`catch`], which returns the panic as
//! a value instead, and [`catch`]'s hook records the message and location for the error rather than printing
//! them. Panics outside a guard (another library's threads) still go to the hook that was there before.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

/// A caught panic: its message and where it was raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panic {
    pub message: String,
    /// `file:line` of the panic, when the hook saw it.
    pub location: Option<String>,
}

impl fmt::Display for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(location) => write!(f, "{} at {location}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

thread_local! {
    /// How many `catch` calls are running on this thread: the hook stays quiet only inside one.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    static CAUGHT: RefCell<Option<Panic>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// How much of a panic message goes into the error: `unwrap` on an error with a large `Debug` (aya's verifier log
/// as bytes) would otherwise fill the exception with kilobytes of numbers.
const MAX_MESSAGE: usize = 300;

fn payload_message(payload: &(dyn Any + Send)) -> String {
    let text = if let Some(text) = payload.downcast_ref::<&str>() {
        *text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.as_str()
    } else {
        "a panic without a message"
    };
    if text.len() <= MAX_MESSAGE {
        return text.to_owned();
    }
    let end = (0..=MAX_MESSAGE)
        .rev()
        .find(|&at| text.is_char_boundary(at))
        .unwrap_or(0);
    format!(
        "{}... ({} bytes)",
        text.get(..end).unwrap_or_default(),
        text.len()
    )
}

/// A source path as the user needs it: `aya-obj-0.3.0/src/obj.rs` rather than the registry's cache folder.
fn short_path(file: &str) -> &str {
    file.split_once("/registry/src/")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map_or(file, |(_, crate_path)| crate_path)
}

/// Installs the hook that records panics raised inside [`catch`] (once per process; [`catch`] calls it).
pub fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if DEPTH.with(Cell::get) == 0 {
                previous(info);
                return;
            }
            let caught = Panic {
                message: payload_message(info.payload()),
                location: info
                    .location()
                    .map(|at| format!("{}:{}", short_path(at.file()), at.line())),
            };
            CAUGHT.with(|slot| *slot.borrow_mut() = Some(caught));
        }));
    });
}

/// Runs `f`, returning its panic (message and location) as an error instead of unwinding further.
///
/// `f` is treated as unwind safe: what it mutates is either dropped by the unwinding or guarded by poison-tolerant
/// locks (every lock in pyaya-native is taken with `unwrap_or_else(PoisonError::into_inner)`).
pub fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Panic> {
    install_hook();
    DEPTH.with(|depth| depth.set(depth.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|depth| depth.set(depth.get() - 1));
    result.map_err(|payload| {
        CAUGHT
            .with(|slot| slot.borrow_mut().take())
            .unwrap_or_else(|| Panic {
                message: payload_message(&*payload),
                location: None,
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_passes_through() {
        assert_eq!(catch(|| 42), Ok(42));
    }

    #[test]
    fn a_panic_becomes_its_message_and_location() {
        let caught = catch(|| -> u32 { panic!("bad id {}", 7) }).unwrap_err();
        assert_eq!(caught.message, "bad id 7");
        let location = caught.location.clone().expect("the hook saw the panic");
        assert!(
            location.starts_with("crates/pyaya-core/src/panic.rs:"),
            "{location}"
        );
        assert!(caught
            .to_string()
            .starts_with("bad id 7 at crates/pyaya-core/src/panic.rs:"));
    }

    #[test]
    fn library_panics_are_caught_too() {
        let data: &[u8] = &[1, 2];
        #[allow(
            clippy::indexing_slicing,
            reason = "the out-of-range index is the point"
        )]
        let caught = catch(|| data[std::hint::black_box(5)]).unwrap_err();
        assert!(
            caught.message.contains("index out of bounds"),
            "{}",
            caught.message
        );
        let none: Option<u8> = std::hint::black_box(None);
        let caught = catch(|| none.expect("a value")).unwrap_err();
        assert_eq!(caught.message, "a value");
    }

    #[test]
    fn nested_catches_each_see_their_own_panic() {
        let outer = catch(|| -> u8 {
            let inner = catch(|| -> u8 { panic!("inner") }).unwrap_err();
            assert_eq!(inner.message, "inner");
            panic!("outer")
        })
        .unwrap_err();
        assert_eq!(outer.message, "outer");
        assert_eq!(DEPTH.with(Cell::get), 0);
    }

    #[test]
    fn long_messages_are_cut() {
        let caught = catch(|| -> u8 { panic!("{}", "é".repeat(400)) }).unwrap_err();
        assert!(
            caught.message.ends_with("... (800 bytes)"),
            "{}",
            caught.message
        );
        assert_eq!(caught.message.chars().filter(|&c| c == 'é').count(), 150);
    }

    #[test]
    fn registry_paths_are_shortened_to_the_crate() {
        assert_eq!(
            short_path("/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/aya-obj-0.3.0/src/obj.rs"),
            "aya-obj-0.3.0/src/obj.rs"
        );
        assert_eq!(
            short_path("crates/pyaya-core/src/btf.rs"),
            "crates/pyaya-core/src/btf.rs"
        );
    }

    #[test]
    fn a_non_string_payload_still_gives_a_message() {
        let caught = catch(|| std::panic::panic_any(17_u8)).unwrap_err();
        assert_eq!(caught.message, "a panic without a message");
    }
}
