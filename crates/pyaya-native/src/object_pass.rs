//! The kernel's side of pyaya-core's object pass (`pyaya_core::object_pass`): the facts its externs are resolved
//! with (vmlinux BTF ids, /proc/kallsyms addresses, the kernel config Python read) and the target BTF of its
//! CO-RE relocations (`btf=`, or the kernel's), gathered only for what the object declares. Also the message of a
//! program the verifier refuses for a CO-RE relocation the pass found unresolvable.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use pyaya_core::btf::{Btf as CoreBtf, Kind as BtfKind};
use pyaya_core::object_pass::{self, CoreFailure, Externs, KsymKind, Prepared};
use pyo3::prelude::*;

use crate::errors::{new_err, Kind};

struct Facts {
    btf: Option<Arc<CoreBtf>>,
    /// What CO-RE relocations are made against: `btf=`, else the kernel's.
    target: Option<Arc<CoreBtf>>,
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

    fn target_btf(&self) -> Option<&CoreBtf> {
        self.target.as_deref()
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

/// The object as aya should see it (`data` `None`: unchanged): libbpf's classifier sections renamed, `__ksym` and
/// `__kconfig` externs resolved against this kernel, CO-RE relocations into flexible arrays made against
/// `target_btf` (a raw blob; else the kernel's BTF), and the CO-RE relocations that target cannot satisfy.
/// `kconfig` is the kernel's config (`CONFIG_X` -> `y`) plus `LINUX_KERNEL_VERSION`, read by Python; without it,
/// every strong `__kconfig` extern is refused.
pub fn prepare(
    py: Python<'_>,
    data: &[u8],
    kconfig: Option<HashMap<String, String>>,
    target_btf: Option<&[u8]>,
) -> PyResult<Prepared> {
    if !object_pass::needs_pass(data) {
        return Ok(Prepared::default());
    }
    let externs: Externs = py
        .detach(|| object_pass::externs(data))
        .map_err(|err| new_err(Kind::Object, format!("not a valid BPF object: {err}")))?;
    let needs_btf = externs
        .ksyms
        .iter()
        .any(|ksym| ksym.kind != KsymKind::Untyped);
    let core = object_pass::has_core_relocations(data);
    let btf = if needs_btf || (core && target_btf.is_none()) {
        // Weak externs load without the kernel's BTF; strong ones then say what is missing.
        crate::btf::kernel(py, None).ok()
    } else {
        None
    };
    // A btf= blob pyaya-core cannot read is left to aya, whose error names it; CO-RE records are then aya's too.
    let target = match target_btf {
        Some(blob) if core => py.detach(|| CoreBtf::parse(blob).ok().map(Arc::new)),
        Some(_) => None,
        None if core => btf.clone(),
        None => None,
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
            btf: if needs_btf { btf } else { None },
            target,
            addresses: if untyped.is_empty() {
                HashMap::new()
            } else {
                kallsyms(&untyped)
            },
            config: kconfig.unwrap_or_default(),
        };
        object_pass::prepare_for_load(data, Some(&facts))
    })
    .map_err(|err| new_err(Kind::Load, err.0))
}

/// What the verifier's refusal of `program` means when the pass found CO-RE relocations the target BTF cannot
/// satisfy: aya poisons each such instruction with a call to helper 0xbad2310, which the verifier refuses as
/// `invalid func unknown#195896080` where it is reachable. `None` when the log shows no poisoned call or no
/// failure is known for the program (the verifier's own message then stands).
pub fn core_failure_message(program: &str, log: &str, failures: &[CoreFailure]) -> Option<String> {
    let poison = format!("unknown#{}", object_pass::CORE_POISON);
    if failures.is_empty() || !log.contains(&poison) {
        return None;
    }
    // "12: (85) call unknown#195896080": the poisoned instructions the verifier reached, by index.
    let reached: Vec<u64> = log
        .lines()
        .filter(|line| line.contains(&poison))
        .filter_map(|line| line.split(':').next()?.trim().parse().ok())
        .collect();
    let own: Vec<&CoreFailure> = failures
        .iter()
        .filter(|failure| failure.function.as_deref() == Some(program))
        .collect();
    let exact: Vec<&CoreFailure> = own
        .iter()
        .copied()
        .filter(|failure| {
            failure
                .insn_index
                .is_some_and(|index| reached.contains(&index))
        })
        .collect();
    // A poisoned call in a subprogram is counted from the program's start after aya links it in: the failures of
    // functions that are not this program are the candidates then.
    let others: Vec<&CoreFailure> = failures
        .iter()
        .filter(|failure| failure.function.as_deref() != Some(program))
        .collect();
    let chosen = if !exact.is_empty() {
        exact
    } else if !own.is_empty() {
        own
    } else {
        others
    };
    let lines: Vec<String> = chosen
        .iter()
        .map(|failure| match failure.function.as_deref() {
            Some(function) if function != program => {
                format!(
                    "program {program:?} (in function {function:?}): {}",
                    failure.message
                )
            }
            _ => format!("program {program:?}: {}", failure.message),
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// The object as aya-obj's parser should read it for inspection: sections renamed, nothing resolved.
pub fn for_inspection(data: &[u8]) -> PyResult<Option<Vec<u8>>> {
    object_pass::prepare(data, None)
        .map_err(|err| new_err(Kind::Object, format!("not a valid BPF object: {err}")))
}
