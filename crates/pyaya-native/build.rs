//! Sets `PYAYA_AYA_VERSION` to the version of aya this build links, read from the workspace's `Cargo.lock`, so
//! that `pyaya._native.AYA_VERSION` (shown by `pyaya --version`) is never typed by hand.

use std::env;
use std::fs;
use std::path::PathBuf;

/// The `version` of the `[[package]]` named `name` in the text of a `Cargo.lock`.
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted {
            let version = lines
                .next()?
                .trim()
                .strip_prefix("version = \"")?
                .strip_suffix('"')?;
            return Some(version.to_owned());
        }
    }
    None
}

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    // The lock file is the workspace's: the nearest ancestor holding one (the checkout, or an sdist's root).
    let lock_path = manifest_dir
        .ancestors()
        .map(|dir| dir.join("Cargo.lock"))
        .find(|path| path.is_file())
        .expect("no Cargo.lock above crates/pyaya-native: build from the workspace (cargo generate-lockfile)");
    println!("cargo:rerun-if-changed={}", lock_path.display());
    let lock = fs::read_to_string(&lock_path).expect("Cargo.lock is readable");
    let version = locked_version(&lock, "aya")
        .expect("Cargo.lock names no aya package: pyaya-native depends on aya");
    println!("cargo:rustc-env=PYAYA_AYA_VERSION={version}");
}
