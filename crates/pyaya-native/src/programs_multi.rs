//! Attach calls of multi-point probes (loaded by `multi_load.rs`): one `uprobe_multi` link on many functions of a
//! file, one `kprobe_multi` link on many kernel functions, each location with its own bpf cookie. aya 0.14 makes
//! neither link.

use std::ffi::CString;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};

use aya::programs::{ProbeKind, Program as AyaProgram};
use pyo3::prelude::*;

use crate::ebpf::{wrong_kind, Program};
use crate::errors::{new_err, Deferred, Kind};
use crate::links::{Link, OwnedLink};
use crate::names::program_kind;
use crate::perf_link::PerfLinks;
use crate::sys;
use pyaya_core::names::glob_match;

/// `(name, file offset)` of the functions of the ELF file at `path` that `wanted` picks, found as aya finds a
/// uprobe's symbol: `.symtab` and `.dynsym`, versioned names (`malloc@@GLIBC_2.2.5`) by their base name, each
/// address made a file offset through its section (`value - sh_addr + sh_offset`), which is what the kernel takes
/// for executables (PIE or not) and shared libraries alike. One entry per offset (a function is in both tables).
fn functions_of(path: &Path, wanted: &dyn Fn(&str) -> bool) -> Result<Vec<(String, u64)>, String> {
    let data = std::fs::read(path).map_err(|err| format!("reading {}: {err}", path.display()))?;
    let elf = pyaya_core::elf::Elf::parse(&data).map_err(|err| {
        format!(
            "{} is not an ELF file pyaya can read: {err}",
            path.display()
        )
    })?;
    const STT_FUNC: u8 = 2;
    const STT_GNU_IFUNC: u8 = 10;
    let mut found: Vec<(String, u64)> = Vec::new();
    for symbol in elf.symbols.iter().chain(&elf.dynamic_symbols) {
        if !matches!(symbol.kind, STT_FUNC | STT_GNU_IFUNC) || symbol.value == 0 {
            continue;
        }
        let name = symbol.name.split('@').next().unwrap_or(&symbol.name);
        if name.is_empty() || !wanted(name) {
            continue;
        }
        let Some(section) = elf.section_of(symbol) else {
            continue;
        };
        let Some(offset) = symbol
            .value
            .checked_sub(section.address)
            .and_then(|within| within.checked_add(section.offset))
        else {
            continue;
        };
        if !found.iter().any(|(_, known)| *known == offset) {
            found.push((name.to_owned(), offset));
        }
    }
    Ok(found)
}

/// The kernel functions ftrace can probe whose names match `pattern`, from `available_filter_functions`, as
/// libbpf expands a kprobe.multi pattern (the kernel's own pattern lookup would need every name in its
/// tracefs list anyway, and says nothing about which matched). Names listed twice (static functions of several
/// files) are given once: the kernel resolves each name to its first address.
fn kernel_functions_matching(pattern: &str, context: &str) -> Result<Vec<String>, Deferred> {
    let lists = [
        "/sys/kernel/tracing/available_filter_functions",
        "/sys/kernel/debug/tracing/available_filter_functions",
    ];
    let text = lists
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .ok_or_else(|| {
            Deferred::Plain(
                Kind::Unsupported,
                format!(
                    "{context}: expanding a pattern needs tracefs's available_filter_functions (mount it with \
                     `mount -t tracefs nodev /sys/kernel/tracing`; a kernel without ftrace has none), or pass \
                     functions=[...]"
                ),
            )
        })?;
    let mut names: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for line in text.lines() {
        let Some(name) = line.split_ascii_whitespace().next() else {
            continue;
        };
        // ftrace's placeholder for entries it could not resolve, which libbpf skips too.
        if name.starts_with("__ftrace_invalid_address__") || !glob_match(name, pattern) {
            continue;
        }
        if seen.insert(name.to_owned()) {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// The answer to a refused `BPF_LINK_CREATE` of a multi link, in words.
fn link_error(context: &str, err: &std::io::Error, kernel: bool) -> Deferred {
    let (what, since) = if kernel {
        ("kprobe_multi links", "5.18 (CONFIG_FPROBE=y)")
    } else {
        ("uprobe_multi links", "6.6")
    };
    match err.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => Deferred::Plain(
            Kind::PermissionDenied,
            format!(
                "{context}: BPF_LINK_CREATE: {err} (needs root, or CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN)"
            ),
        ),
        Some(libc::EOPNOTSUPP) | Some(crate::sys::ENOTSUPP) => Deferred::Plain(
            Kind::Unsupported,
            format!("{context}: BPF_LINK_CREATE: {err}: {what} need kernel {since}"),
        ),
        Some(libc::ESRCH) => Deferred::Plain(
            Kind::NotFound,
            format!("{context}: BPF_LINK_CREATE: {err}: no such process"),
        ),
        Some(libc::ENOENT) => Deferred::Plain(
            Kind::NotFound,
            format!(
                "{context}: BPF_LINK_CREATE: {err}: a function is not in /proc/kallsyms or cannot be probed \
                 (see /sys/kernel/tracing/available_filter_functions)"
            ),
        ),
        _ => Deferred::Plain(
            Kind::Program,
            format!("{context}: BPF_LINK_CREATE: {err}"),
        ),
    }
}

fn invalid(message: String) -> PyErr {
    new_err(Kind::InvalidArgument, message)
}

/// `cookies` checked against the number of locations (`None`: no cookies).
fn cookies_for(cookies: Option<Vec<u64>>, count: usize, context: &str) -> PyResult<Vec<u64>> {
    match cookies {
        None => Ok(Vec::new()),
        Some(cookies) if cookies.len() == count => Ok(cookies),
        Some(cookies) => Err(invalid(format!(
            "{context}: {} cookies for {count} locations: give one cookie per function (or offset), in their order",
            cookies.len()
        ))),
    }
}

#[pyaya_guard::guard(Program)]
#[pymethods]
impl Program {
    /// Attaches a loaded UProbeMulti program to many places of the file `target` in one `uprobe_multi` link: the
    /// functions named in `functions`, or those matching the glob `pattern`, or the file offsets `offsets`;
    /// only in process `pid` if given; each location's runs read its entry of `cookies` through
    /// `bpf_get_attach_cookie`. Returns the link and the `(name, file offset)` of every location (names empty for
    /// offsets).
    #[pyo3(signature = (target, functions = None, pattern = None, offsets = None, pid = None, cookies = None))]
    #[allow(clippy::too_many_arguments, reason = "the Python signature")]
    fn attach_uprobe_multi(
        &self,
        py: Python<'_>,
        target: PathBuf,
        functions: Option<Vec<String>>,
        pattern: Option<String>,
        offsets: Option<Vec<u64>>,
        pid: Option<u32>,
        cookies: Option<Vec<u64>>,
    ) -> PyResult<(Link, Vec<(String, u64)>)> {
        let scope = pid.map_or_else(String::new, |pid| format!(" in process {pid}"));
        let context = format!(
            "attaching {:?} to {} of {}{scope}",
            self.name_str(),
            match (&functions, &pattern) {
                (Some(functions), _) => format!("{} functions", functions.len()),
                (_, Some(pattern)) => format!("the functions matching {pattern:?}"),
                _ => "offsets".to_owned(),
            },
            target.display()
        );
        if self.kind_str() != "UProbeMulti" {
            return Err(wrong_kind(self.name_str(), self.kind_str(), "UProbeMulti").into());
        }
        if pid == Some(0) {
            return Err(invalid(format!(
                "{context}: pid must be a process id (not 0); pass pid=None for every process"
            )));
        }
        let path =
            crate::programs_tracing::resolve_uprobe_target(&target, pid).ok_or_else(|| {
                new_err(
                    Kind::NotFound,
                    format!(
                    "{context}: no library {} found (looked in the ld.so cache{}); pass its path",
                    target.display(),
                    if pid.is_some() { " and the process's mappings" } else { "" }
                ),
                )
            })?;
        let locations: Vec<(String, u64)> = match (functions, pattern, offsets) {
            (Some(functions), None, None) => {
                if functions.is_empty() {
                    return Err(invalid(format!("{context}: functions is empty: name at least one")));
                }
                let found = functions_of(&path, &|name| functions.iter().any(|f| f == name))
                    .map_err(|err| new_err(Kind::NotFound, format!("{context}: {err}")))?;
                let mut ordered = Vec::with_capacity(functions.len());
                for function in &functions {
                    match found.iter().find(|(name, _)| name == function) {
                        Some(location) => ordered.push(location.clone()),
                        None => {
                            let reason = crate::programs_tracing::missing_uprobe_symbol(&path, pid, function)
                                .unwrap_or_else(|| format!("{} has no function {function:?}", path.display()));
                            return Err(new_err(Kind::NotFound, format!("{context}: {reason}")));
                        }
                    }
                }
                ordered
            }
            (None, Some(pattern), None) => {
                let mut found = functions_of(&path, &|name| glob_match(name, &pattern))
                    .map_err(|err| new_err(Kind::NotFound, format!("{context}: {err}")))?;
                if found.is_empty() {
                    return Err(new_err(
                        Kind::NotFound,
                        format!(
                            "{context}: no function of {} matches {pattern:?} (list them with `nm -D \
                             --defined-only {}`, or `nm` for a binary with a symbol table)",
                            path.display(),
                            path.display()
                        ),
                    ));
                }
                found.sort();
                found
            }
            (None, None, Some(offsets)) => {
                if offsets.is_empty() {
                    return Err(invalid(format!("{context}: offsets is empty: give at least one")));
                }
                offsets.into_iter().map(|offset| (String::new(), offset)).collect()
            }
            _ => {
                return Err(invalid(format!(
                    "{context}: give exactly one of functions=[...], pattern=\"glob*\" or offsets=[...]"
                )))
            }
        };
        let cookies = cookies_for(cookies, locations.len(), &context)?;
        let c_path = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| invalid(format!("{context}: the path holds a NUL byte")))?;
        let file_offsets: Vec<u64> = locations.iter().map(|(_, offset)| *offset).collect();
        let link = self.attach_with(py, |program| match program {
            AyaProgram::UProbe(p) => {
                let fd = p
                    .fd()
                    .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?;
                let retprobe = matches!(p.kind(), ProbeKind::Return);
                let link = sys::link_uprobe_multi(
                    fd.as_fd(),
                    &c_path,
                    &file_offsets,
                    &cookies,
                    pid.unwrap_or(0),
                    retprobe,
                )
                .map_err(|err| link_error(&context, &err, false))?;
                Ok(Box::new(PerfLinks(vec![link])) as Box<dyn OwnedLink>)
            }
            other => Err(wrong_kind(
                self.name_str(),
                program_kind(other),
                "UProbeMulti",
            )),
        })?;
        Ok((link, locations))
    }

    /// Attaches a loaded KProbeMulti program to many kernel functions in one `kprobe_multi` link: those named in
    /// `functions`, or those matching the glob `pattern` in tracefs's `available_filter_functions`; each
    /// function's runs read its entry of `cookies` through `bpf_get_attach_cookie`. Returns the link and the
    /// functions attached.
    #[pyo3(signature = (functions = None, pattern = None, cookies = None))]
    fn attach_kprobe_multi(
        &self,
        py: Python<'_>,
        functions: Option<Vec<String>>,
        pattern: Option<String>,
        cookies: Option<Vec<u64>>,
    ) -> PyResult<(Link, Vec<String>)> {
        let context = format!(
            "attaching {:?} to {}",
            self.name_str(),
            match (&functions, &pattern) {
                (Some(functions), _) => format!("{} kernel functions", functions.len()),
                (_, Some(pattern)) => format!("the kernel functions matching {pattern:?}"),
                _ => "kernel functions".to_owned(),
            }
        );
        if self.kind_str() != "KProbeMulti" {
            return Err(wrong_kind(self.name_str(), self.kind_str(), "KProbeMulti").into());
        }
        let names = match (functions, pattern) {
            (Some(functions), None) if functions.is_empty() => {
                return Err(invalid(format!(
                    "{context}: functions is empty: name at least one"
                )))
            }
            (Some(functions), None) => functions,
            (None, Some(pattern)) => {
                let names = py.detach(|| kernel_functions_matching(&pattern, &context))?;
                if names.is_empty() {
                    return Err(new_err(
                        Kind::NotFound,
                        format!(
                            "{context}: no kernel function in available_filter_functions matches {pattern:?}"
                        ),
                    ));
                }
                names
            }
            _ => {
                return Err(invalid(format!(
                    "{context}: give exactly one of functions=[...] or pattern=\"glob*\""
                )))
            }
        };
        let cookies = cookies_for(cookies, names.len(), &context)?;
        let symbols: Vec<CString> = names
            .iter()
            .map(|name| CString::new(name.as_str()))
            .collect::<Result<_, _>>()
            .map_err(|_| invalid(format!("{context}: a function name holds a NUL byte")))?;
        let link = self.attach_with(py, |program| match program {
            AyaProgram::KProbe(p) => {
                let fd = p
                    .fd()
                    .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?;
                let retprobe = matches!(p.kind(), ProbeKind::Return);
                let link = sys::link_kprobe_multi(fd.as_fd(), &symbols, &cookies, retprobe)
                    .map_err(|err| link_error(&context, &err, true))?;
                Ok(Box::new(PerfLinks(vec![link])) as Box<dyn OwnedLink>)
            }
            other => Err(wrong_kind(
                self.name_str(),
                program_kind(other),
                "KProbeMulti",
            )),
        })?;
        Ok((link, names))
    }
}
