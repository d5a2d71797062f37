//! The kernel's side of pyaya-core's object pass (`pyaya_core::object_pass`): the facts its externs are resolved
//! with (vmlinux BTF ids, /proc/kallsyms addresses, the kernel config Python read), gathered only for what the
//! object declares.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use pyaya_core::btf::{Btf as CoreBtf, Kind as BtfKind};
use pyaya_core::object_pass::{self, Externs, KsymKind};
use pyo3::prelude::*;

use crate::errors::{new_err, Kind};

struct Facts {
    btf: Option<Arc<CoreBtf>>,
    addresses: HashMap<String, u64>,
    config: HashMap<String, String>,
}

impl object_pass::Kernel for Facts {
    fn btf_id(&self, name: &str, func: bool) -> Option<u32> {
        let kind = if func { BtfKind::Func } else { BtfKind::Var };
        self.btf.as_ref()?.find(name, Some(kind)).first().copied()
    }

    fn address(&self, name: &str) -> Option<u64> {
        self.addresses.get(name).copied()
    }

    fn kconfig(&self, name: &str) -> Option<String> {
        self.config.get(name).cloned()
    }
}

/// The addresses of `names` in /proc/kallsyms (an address of 0, what unprivileged readers see, counts as absent).
fn kallsyms(names: &HashSet<&str>) -> HashMap<String, u64> {
    let Ok(text) = std::fs::read_to_string("/proc/kallsyms") else {
        return HashMap::new();
    };
    let mut found = HashMap::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(address), Some(_), Some(name)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if names.contains(name) && !found.contains_key(name) {
            if let Ok(address) = u64::from_str_radix(address, 16) {
                if address != 0 {
                    found.insert(name.to_owned(), address);
                }
            }
        }
    }
    found
}

/// The object as aya should see it (`None`: unchanged): libbpf's classifier sections renamed, `__ksym` and
/// `__kconfig` externs resolved against this kernel. `kconfig` is the kernel's config (`CONFIG_X` -> `y`) plus
/// `LINUX_KERNEL_VERSION`, read by Python; without it, every strong `__kconfig` extern is refused.
pub fn prepare(
    py: Python<'_>,
    data: &[u8],
    kconfig: Option<HashMap<String, String>>,
) -> PyResult<Option<Vec<u8>>> {
    let externs: Externs = py
        .detach(|| object_pass::externs(data))
        .map_err(|err| new_err(Kind::Object, format!("not a valid BPF object: {err}")))?;
    let needs_btf = externs
        .ksyms
        .iter()
        .any(|ksym| ksym.kind != KsymKind::Untyped);
    let btf = if needs_btf {
        // Weak externs load without the kernel's BTF; strong ones then say what is missing.
        crate::btf::kernel(py, None).ok()
    } else {
        None
    };
    py.detach(|| {
        // Variables, typed or not: the verifier resolves typed ones through kallsyms too.
        let untyped: HashSet<&str> = externs
            .ksyms
            .iter()
            .filter(|ksym| ksym.kind != KsymKind::Func)
            .map(|ksym| ksym.name.as_str())
            .collect();
        let facts = Facts {
            btf,
            addresses: if untyped.is_empty() {
                HashMap::new()
            } else {
                kallsyms(&untyped)
            },
            config: kconfig.unwrap_or_default(),
        };
        object_pass::prepare(data, Some(&facts))
    })
    .map_err(|err| new_err(Kind::Load, err.0))
}

/// The object as aya-obj's parser should read it for inspection: sections renamed, nothing resolved.
pub fn for_inspection(data: &[u8]) -> PyResult<Option<Vec<u8>>> {
    object_pass::prepare(data, None)
        .map_err(|err| new_err(Kind::Object, format!("not a valid BPF object: {err}")))
}
