//! Load and attach calls of the tracing program types: tracepoints, raw and BTF tracepoints, fentry/fexit, LSM,
//! kprobes and uprobes, perf events, iterators and extensions.

use std::fs::File;
use std::io::{self, Read as _};
use std::num::NonZeroU32;
use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use aya::programs::links::FdLink;
use aya::programs::perf_event::{
    BreakpointConfig, HardwareEvent, PerfBreakpointLength, PerfBreakpointType, PerfEventConfig,
    PerfEventLink, PerfEventScope, SamplePolicy, SoftwareEvent,
};
use aya::programs::uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeError, UProbeScope};
use aya::programs::{ProbeKind, Program as AyaProgram, ProgramError};
use aya::Btf;
use pyo3::prelude::*;

use crate::ebpf::{wrong_kind, Program};
use crate::errors::{chain_message, Deferred, Kind};
use crate::links::{Link, OwnedLink};
use crate::names::program_kind;
use crate::perf_link;
use crate::sys;

/// Turns a `take_link` result into an owned link, keeping aya's error.
pub fn owned<L: OwnedLink>(
    context: &str,
    link: Result<L, aya::programs::ProgramError>,
) -> Result<Box<dyn OwnedLink>, Deferred> {
    link.map(|link| Box::new(link) as Box<dyn OwnedLink>)
        .map_err(|err| Deferred::Program(context.to_owned(), Box::new(err)))
}

/// The kernel's BTF, parsed once per process (parsing vmlinux takes a while).
pub(crate) fn kernel_btf() -> Result<&'static Btf, Deferred> {
    static BTF: OnceLock<Btf> = OnceLock::new();
    if let Some(btf) = BTF.get() {
        return Ok(btf);
    }
    let btf = Btf::from_sys_fs().map_err(|err| {
        Deferred::Plain(
            Kind::Unsupported,
            format!(
                "this program type needs the kernel's BTF at /sys/kernel/btf/vmlinux (a kernel built with \
                 CONFIG_DEBUG_INFO_BTF=y): {}",
                chain_message(&err)
            ),
        )
    })?;
    Ok(BTF.get_or_init(|| btf))
}

/// A load error, where a name the kernel's BTF does not have becomes `NotFoundError` saying which name.
fn load_error(context: String, what: &str, target: &str, error: ProgramError) -> Deferred {
    if let ProgramError::Btf(btf_error) = &error {
        return Deferred::Plain(
            Kind::NotFound,
            format!(
                "{context}: the kernel's BTF has no {what} {target:?} ({})",
                chain_message(btf_error)
            ),
        );
    }
    Deferred::Program(context, Box::new(error))
}

/// The ELF section prefixes of each BTF-based program type, whose suffix names the target (`fentry/do_unlinkat`).
fn section_prefixes(kind: &str) -> &'static [&'static str] {
    match kind {
        "BtfTracePoint" => &["tp_btf"],
        "FEntry" => &["fentry", "fentry.s"],
        "FExit" => &["fexit", "fexit.s"],
        "Lsm" => &["lsm", "lsm.s"],
        "LsmCgroup" => &["lsm_cgroup"],
        "Iter" => &["iter", "iter.s"],
        "Extension" => &["freplace"],
        _ => &[],
    }
}

impl Program {
    /// `target` if given, else the target named by the program's ELF section (`fentry/<function>`).
    fn target_or_section(&self, target: Option<&str>, argument: &str) -> PyResult<String> {
        if let Some(target) = target {
            return Ok(target.to_owned());
        }
        let section = self.section_name();
        let from_section = section.and_then(|section| {
            let (prefix, rest) = section.split_once('/')?;
            (section_prefixes(self.kind_str()).contains(&prefix) && !rest.is_empty())
                .then(|| rest.to_owned())
        });
        from_section.ok_or_else(|| {
            Deferred::Plain(
                Kind::Program,
                format!(
                    "program {:?} does not name its {argument} in its ELF section ({}); pass {argument}=... to load()",
                    self.name_str(),
                    section.map_or_else(|| "no section known".to_owned(), |s| format!("{s:?}")),
                ),
            )
            .into()
        })
    }

    /// Loads a BTF-based program whose `load` takes a target name and the kernel's BTF.
    fn load_btf_based(
        &self,
        py: Python<'_>,
        expected: &'static str,
        what: &'static str,
        argument: &str,
        target: Option<&str>,
    ) -> PyResult<()> {
        if self.kind_str() != expected {
            return Err(wrong_kind(self.name_str(), self.kind_str(), expected).into());
        }
        let target = self.target_or_section(target, argument)?;
        let context = format!(
            "loading {expected} program {:?} on {what} {target:?}",
            self.name_str()
        );
        py.detach(|| {
            let btf = kernel_btf()?;
            self.with_program(|program| {
                let result = match program {
                    AyaProgram::BtfTracePoint(p) => p.load(&target, btf),
                    AyaProgram::FEntry(p) => p.load(&target, btf),
                    AyaProgram::FExit(p) => p.load(&target, btf),
                    AyaProgram::Lsm(p) => p.load(&target, btf),
                    AyaProgram::LsmCgroup(p) => p.load(&target, btf),
                    AyaProgram::Iter(p) => p.load(&target, btf),
                    other => {
                        return Err(wrong_kind(self.name_str(), program_kind(other), expected))
                    }
                };
                result.map_err(|err| load_error(context, what, &target, err))
            })
        })
        .map_err(|err| err.into_err(self.needs()))?;
        Ok(())
    }
}

/// A perf event name as `perf list` spells it, with the aya event it stands for.
const PERF_EVENTS: [(&str, PerfEventConfig); 28] = [
    (
        "cpu-clock",
        PerfEventConfig::Software(SoftwareEvent::CpuClock),
    ),
    (
        "task-clock",
        PerfEventConfig::Software(SoftwareEvent::TaskClock),
    ),
    (
        "page-faults",
        PerfEventConfig::Software(SoftwareEvent::PageFaults),
    ),
    (
        "faults",
        PerfEventConfig::Software(SoftwareEvent::PageFaults),
    ),
    (
        "context-switches",
        PerfEventConfig::Software(SoftwareEvent::ContextSwitches),
    ),
    (
        "cs",
        PerfEventConfig::Software(SoftwareEvent::ContextSwitches),
    ),
    (
        "cpu-migrations",
        PerfEventConfig::Software(SoftwareEvent::CpuMigrations),
    ),
    (
        "migrations",
        PerfEventConfig::Software(SoftwareEvent::CpuMigrations),
    ),
    (
        "minor-faults",
        PerfEventConfig::Software(SoftwareEvent::PageFaultsMin),
    ),
    (
        "major-faults",
        PerfEventConfig::Software(SoftwareEvent::PageFaultsMaj),
    ),
    (
        "alignment-faults",
        PerfEventConfig::Software(SoftwareEvent::AlignmentFaults),
    ),
    (
        "emulation-faults",
        PerfEventConfig::Software(SoftwareEvent::EmulationFaults),
    ),
    ("dummy", PerfEventConfig::Software(SoftwareEvent::Dummy)),
    (
        "bpf-output",
        PerfEventConfig::Software(SoftwareEvent::BpfOutput),
    ),
    (
        "cgroup-switches",
        PerfEventConfig::Software(SoftwareEvent::CgroupSwitches),
    ),
    (
        "cpu-cycles",
        PerfEventConfig::Hardware(HardwareEvent::CpuCycles),
    ),
    (
        "cycles",
        PerfEventConfig::Hardware(HardwareEvent::CpuCycles),
    ),
    (
        "instructions",
        PerfEventConfig::Hardware(HardwareEvent::Instructions),
    ),
    (
        "cache-references",
        PerfEventConfig::Hardware(HardwareEvent::CacheReferences),
    ),
    (
        "cache-misses",
        PerfEventConfig::Hardware(HardwareEvent::CacheMisses),
    ),
    (
        "branch-instructions",
        PerfEventConfig::Hardware(HardwareEvent::BranchInstructions),
    ),
    (
        "branches",
        PerfEventConfig::Hardware(HardwareEvent::BranchInstructions),
    ),
    (
        "branch-misses",
        PerfEventConfig::Hardware(HardwareEvent::BranchMisses),
    ),
    (
        "bus-cycles",
        PerfEventConfig::Hardware(HardwareEvent::BusCycles),
    ),
    (
        "stalled-cycles-frontend",
        PerfEventConfig::Hardware(HardwareEvent::StalledCyclesFrontend),
    ),
    (
        "stalled-cycles-backend",
        PerfEventConfig::Hardware(HardwareEvent::StalledCyclesBackend),
    ),
    (
        "ref-cycles",
        PerfEventConfig::Hardware(HardwareEvent::RefCpuCycles),
    ),
    (
        "ref-cpu-cycles",
        PerfEventConfig::Hardware(HardwareEvent::RefCpuCycles),
    ),
];

/// `(name, "software" | "hardware")` of every perf event name `PerfEvent.attach` accepts.
#[pyaya_guard::guard(Program)]
#[pyfunction]
pub fn perf_event_names() -> Vec<(&'static str, &'static str)> {
    PERF_EVENTS
        .iter()
        .map(|(name, config)| {
            let kind = match config {
                PerfEventConfig::Hardware(_) => "hardware",
                _ => "software",
            };
            (*name, kind)
        })
        .collect()
}

/// `PERF_TYPE_BREAKPOINT` and `HW_BREAKPOINT_X` (include/uapi/linux/perf_event.h, hw_breakpoint.h).
const PERF_TYPE_BREAKPOINT: u32 = 5;
const HW_BREAKPOINT_X: u32 = 4;

/// The per-CPU (or per-process) attachments of one `PerfEvent.attach` call, detached together.
struct PerfEventLinks(Vec<PerfEventLink>);

impl OwnedLink for PerfEventLinks {
    fn detach(self: Box<Self>) -> Result<(), ProgramError> {
        let mut first_error = None;
        for link in self.0 {
            if let Err(err) = aya::programs::Link::detach(link) {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn into_fd_link(self: Box<Self>) -> Result<FdLink, String> {
        let mut links = self.0;
        if links.len() != 1 {
            return Err(format!(
                "this PerfEvent link holds {} per-CPU attachments and a pin holds one; attach with cpus=[N] \
                 (one CPU) or pid=... to get a link that can be pinned; the link was detached",
                links.len()
            ));
        }
        let link = links.remove(0);
        FdLink::try_from(link).map_err(crate::links::not_a_bpf_link)
    }
}

/// What `scope` names to `perf_event_open`: (pid, cpu).
fn scope_target(scope: PerfEventScope) -> (libc::c_int, libc::c_int, String) {
    let cpu_of = |cpu: Option<u32>| cpu.map_or(-1, |cpu| cpu as libc::c_int);
    match scope {
        PerfEventScope::AllProcessesOneCpu { cpu } => {
            (-1, cpu as libc::c_int, format!(" on CPU {cpu}"))
        }
        PerfEventScope::OneProcess { pid, cpu } => (
            pid as libc::c_int,
            cpu_of(cpu),
            format!(" for process {pid}"),
        ),
        PerfEventScope::CallingProcess { cpu } => (0, cpu_of(cpu), " for this process".to_owned()),
    }
}

/// `PerfEvent.attach(cookie=)`: one perf event per scope, opened and linked here with the cookie.
fn perf_event_links_with_cookie(
    program: &aya::programs::PerfEvent,
    context: &str,
    config: PerfEventConfig,
    policy: SamplePolicy,
    scopes: &[PerfEventScope],
    cookie: u64,
) -> Result<Box<dyn OwnedLink>, Deferred> {
    // A breakpoint's address and length sit where `config1` and `config2` are (`bp_addr`, `bp_len`).
    let mut breakpoint = (0u32, 0u64, 0u64);
    let (type_, event) = match config {
        PerfEventConfig::Hardware(event) => (0u32, event as u64),
        PerfEventConfig::Software(event) => (1u32, event as u64),
        PerfEventConfig::Breakpoint(config) => {
            breakpoint = match config {
                BreakpointConfig::Data {
                    r#type,
                    address,
                    length,
                } => (r#type as u32, address, length as u64),
                BreakpointConfig::Instruction { address } => (
                    HW_BREAKPOINT_X,
                    address,
                    std::mem::size_of::<libc::c_long>() as u64,
                ),
            };
            (PERF_TYPE_BREAKPOINT, 0)
        }
        _ => {
            return Err(Deferred::Plain(
                Kind::Unsupported,
                format!(
                    "{context}: pyaya attaches only hardware, software and breakpoint events with a cookie"
                ),
            ))
        }
    };
    let (sample_period, flags) = match policy {
        SamplePolicy::Frequency(frequency) => (frequency, perf_link::FLAG_FREQ),
        SamplePolicy::Period(period) => (period, 0),
    };
    let program_fd = program
        .fd()
        .map_err(|err| Deferred::Program(context.to_owned(), Box::new(err)))?;
    let mut links = Vec::with_capacity(scopes.len());
    for scope in scopes {
        let (pid, cpu, place) = scope_target(*scope);
        let here = format!("{context}{place}");
        let attr = perf_link::PerfEventAttr {
            type_,
            config: event,
            sample_period,
            flags,
            bp_type: breakpoint.0,
            config1: breakpoint.1,
            config2: breakpoint.2,
            ..perf_link::PerfEventAttr::default()
        };
        // SAFETY: hardware and software events read nothing through `config1`/`config2`; a breakpoint reads
        // plain numbers there.
        // On an error, `links` drops: nothing stays attached.
        let perf = unsafe { perf_link::open(attr, pid, cpu) }
            .map_err(|err| perf_link::syscall_error(&here, "perf_event_open", err))?;
        links.push(perf_link::link_with_cookie(
            program_fd.as_fd(),
            &perf,
            cookie,
            &here,
        )?);
    }
    Ok(Box::new(perf_link::PerfLinks(links)))
}

/// The CPUs the kernel has online.
fn online_cpus() -> Result<Vec<u32>, Deferred> {
    aya::util::online_cpus().map_err(|(path, err)| {
        Deferred::Plain(
            Kind::Program,
            format!("reading the online CPUs from {path}: {err}"),
        )
    })
}

/// The file a uprobe target names, resolved as aya resolves it: a path as it is; a bare name (`libc`) through
/// the mappings of `pid`, then the ld.so cache.
pub(crate) fn resolve_uprobe_target(target: &Path, pid: Option<u32>) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt as _;
    if target.file_name() != Some(target.as_os_str()) {
        return Some(target.to_path_buf());
    }
    let name = target.as_os_str().as_bytes();
    let name = name.strip_suffix(b".so").unwrap_or(name);
    let matches = |file: &[u8], suffix_ok: &dyn Fn(&[u8]) -> bool| {
        file.strip_prefix(name).is_some_and(suffix_ok)
    };
    if let Some(pid) = pid {
        let maps = std::fs::read(format!("/proc/{pid}/maps")).unwrap_or_default();
        for line in maps.split(|byte| *byte == b'\n') {
            let Some(start) = line.iter().position(|byte| *byte == b'/') else {
                continue;
            };
            let path = Path::new(std::ffi::OsStr::from_bytes(&line[start..]));
            let file = path
                .file_name()
                .map(std::ffi::OsStr::as_bytes)
                .unwrap_or_default();
            if matches(file, &|rest| {
                rest.is_empty() || rest.starts_with(b".so") || rest.starts_with(b"-")
            }) {
                return Some(path.to_path_buf());
            }
        }
    }
    ld_so_cache()
        .into_iter()
        .find(|(key, _)| matches(key, &|rest| rest.starts_with(b".so")))
        .map(|(_, value)| PathBuf::from(std::ffi::OsStr::from_bytes(&value)))
}

/// `(library file name, path)` of every entry of /etc/ld.so.cache (glibc's "new" format, which aya reads too).
fn ld_so_cache() -> Vec<(Vec<u8>, Vec<u8>)> {
    const MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
    let Ok(data) = std::fs::read("/etc/ld.so.cache") else {
        return Vec::new();
    };
    let Some(start) = data.windows(MAGIC.len()).position(|window| window == MAGIC) else {
        return Vec::new();
    };
    let u32_at = |offset: usize| -> Option<usize> {
        let bytes = data.get(offset..offset + 4)?;
        Some(u32::from_ne_bytes(bytes.try_into().ok()?) as usize)
    };
    let string_at = |offset: usize| -> Option<Vec<u8>> {
        let rest = data.get(offset..)?;
        Some(rest[..rest.iter().position(|byte| *byte == 0)?].to_vec())
    };
    let Some(count) = u32_at(start + MAGIC.len()) else {
        return Vec::new();
    };
    // The header is 48 bytes; each entry 24 (flags, key, value, osversion, hwcap), its strings at file offsets
    // counted from the start of the new-format part.
    (0..count)
        .filter_map(|index| {
            let entry = start + 48 + index * 24;
            let key = string_at(start + u32_at(entry + 4)?)?;
            let value = string_at(start + u32_at(entry + 8)?)?;
            Some((key, value))
        })
        .collect()
}

/// Levenshtein distance, for suggesting symbols close to a missing one.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// When `symbol` is not a symbol of the file `target` resolves to, says so with the closest names; None when it is
/// (or when the file cannot be read: aya's own error then stands).
pub(crate) fn missing_uprobe_symbol(
    target: &Path,
    pid: Option<u32>,
    symbol: &str,
) -> Option<String> {
    let path = resolve_uprobe_target(target, pid)?;
    let data = std::fs::read(&path).ok()?;
    let elf = pyaya_core::elf::Elf::parse(&data).ok()?;
    let mut names: Vec<&str> = elf
        .symbols
        .iter()
        .chain(&elf.dynamic_symbols)
        .filter(|sym| sym.section.is_some() || sym.shndx == pyaya_core::elf::SHN_ABS)
        .map(|sym| sym.name.split('@').next().unwrap_or(&sym.name))
        .filter(|name| !name.is_empty())
        .collect();
    if names.contains(&symbol) {
        return None;
    }
    names.sort_unstable();
    names.dedup();
    let limit = (symbol.chars().count() / 3).max(2);
    let mut close: Vec<(usize, &str)> = names
        .iter()
        .map(|name| (edit_distance(symbol, name), *name))
        .filter(|(distance, name)| {
            *distance <= limit || (symbol.len() >= 4 && name.contains(symbol))
        })
        .collect();
    close.sort_unstable();
    let close: Vec<&str> = close.into_iter().take(5).map(|(_, name)| name).collect();
    let suggestion = if close.is_empty() {
        String::new()
    } else {
        format!(" (close: {})", close.join(", "))
    };
    let debuglink = elf
        .section(".gnu_debuglink")
        .map(|section| elf.section_data(section))
        .and_then(|bytes| bytes.split(|byte| *byte == 0).next())
        .map(|name| String::from_utf8_lossy(name).into_owned());
    let stripped = match debuglink {
        Some(name) if !path.with_file_name(&name).exists() => {
            format!("; its separate debug symbols ({name}) are not installed next to it")
        }
        _ => String::new(),
    };
    Some(format!(
        "{} has no symbol {symbol:?}{suggestion}{stripped}: list its functions with `nm -D --defined-only {}` \
         (or `nm` for a binary with a symbol table)",
        path.display(),
        path.display()
    ))
}

/// A uprobe attach error: a target or symbol that does not exist becomes `NotFoundError`, a missing symbol
/// named as such (aya reports it as a missing debuglink file when the binary has a `.gnu_debuglink`).
fn uprobe_error(context: String, error: ProgramError, target: &Path, pid: Option<u32>) -> Deferred {
    if let ProgramError::UProbeError(UProbeError::SymbolError { symbol, .. }) = &error {
        if let Some(reason) = missing_uprobe_symbol(target, pid, symbol) {
            return Deferred::Plain(Kind::NotFound, format!("{context}: {reason}"));
        }
    }
    let not_found = matches!(
        &error,
        ProgramError::UProbeError(
            UProbeError::InvalidTarget { .. } | UProbeError::SymbolError { .. }
        )
    ) || matches!(&error, ProgramError::UProbeError(UProbeError::FileError { io_error, .. }) if io_error.kind() == io::ErrorKind::NotFound);
    if not_found {
        return Deferred::Plain(
            Kind::NotFound,
            format!("{context}: {}", chain_message(&error)),
        );
    }
    Deferred::Program(context, Box::new(error))
}

const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
const BPF_ITER_CREATE: libc::c_long = 33;
const BPF_LINK_TYPE_ITER: u32 = 4;

fn owned_fd(raw: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this new fd to us, and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(raw as i32) }
}

/// Runs the iterator of the bpf_link `link_id` once and returns everything it wrote.
fn read_iterator(link_id: u32) -> Result<Vec<u8>, Deferred> {
    let link = sys::bpf(BPF_LINK_GET_FD_BY_ID, &mut [link_id, 0, 0, 0])
        .map(owned_fd)
        .map_err(|err| {
            let kind = if err.raw_os_error() == Some(libc::ENOENT) {
                Kind::Closed
            } else {
                Kind::Program
            };
            Deferred::Plain(
                kind,
                format!("reading iterator link {link_id}: the link is gone ({err}); attach again"),
            )
        })?;
    // bpf_link_info starts with type, id, prog_id.
    let mut info = [0u32; 4];
    sys::object_info(link.as_fd(), &mut info).map_err(|err| {
        Deferred::Plain(
            Kind::Program,
            format!("reading the info of link {link_id}: {err}"),
        )
    })?;
    if info[0] != BPF_LINK_TYPE_ITER {
        return Err(Deferred::Plain(
            Kind::Program,
            format!("link {link_id} is not an iterator link"),
        ));
    }
    let iterator = sys::bpf(BPF_ITER_CREATE, &mut [link.as_raw_fd() as u32, 0, 0, 0])
        .map(owned_fd)
        .map_err(|err| {
            Deferred::Plain(
                Kind::Program,
                format!("creating an iterator on link {link_id}: {err}"),
            )
        })?;
    let mut output = Vec::new();
    File::from(iterator)
        .read_to_end(&mut output)
        .map_err(|err| {
            Deferred::Plain(
                Kind::Program,
                format!("reading iterator link {link_id}: {err}"),
            )
        })?;
    Ok(output)
}

/// Runs the iterator behind the bpf_link with id `link_id` to its end and returns its output (GIL released).
#[pyaya_guard::guard(Program)]
#[pyfunction]
pub fn read_iter(py: Python<'_>, link_id: u32) -> PyResult<Vec<u8>> {
    Ok(py.detach(|| read_iterator(link_id))?)
}

#[pyaya_guard::guard(Program)]
#[pymethods]
impl Program {
    /// Attaches a TracePoint program to `category/name` (see /sys/kernel/tracing/events); its runs see `cookie`
    /// through `bpf_get_attach_cookie` when given (attached by pyaya: aya 0.14 takes no cookie here).
    #[pyo3(signature = (category, name, cookie = None))]
    fn attach_tracepoint(
        &self,
        py: Python<'_>,
        category: &str,
        name: &str,
        cookie: Option<u64>,
    ) -> PyResult<Link> {
        let context = format!(
            "attaching {:?} to tracepoint {category}/{name}",
            self.name_str()
        );
        self.attach_with(py, |program| match program {
            AyaProgram::TracePoint(p) if cookie.is_some() => {
                let id = perf_link::tracepoint_id(category, name, &context)?;
                let attr = perf_link::PerfEventAttr {
                    type_: perf_link::PERF_TYPE_TRACEPOINT,
                    config: id,
                    sample_period: 1,
                    wakeup_events: 1,
                    ..perf_link::PerfEventAttr::default()
                };
                let program_fd = p
                    .fd()
                    .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?;
                // SAFETY: a tracepoint event reads nothing through `config1`/`config2`.
                let perf = unsafe { perf_link::open(attr, -1, 0) };
                perf_link::one_link(program_fd.as_fd(), perf, cookie.unwrap_or(0), &context)
            }
            AyaProgram::TracePoint(p) => {
                let id = p
                    .attach(category, name)
                    .map_err(|error| Deferred::TracePoint {
                        context: context.clone(),
                        category: category.to_owned(),
                        name: name.to_owned(),
                        error: Box::new(error),
                    })?;
                owned(&context, p.take_link(id))
            }
            other => Err(wrong_kind(
                self.name_str(),
                program_kind(other),
                "TracePoint",
            )),
        })
    }

    /// Attaches a RawTracePoint program to the raw tracepoint `name` (e.g. `"sched_switch"`).
    #[pyo3(signature = (name, cookie = None))]
    fn attach_raw_tracepoint(
        &self,
        py: Python<'_>,
        name: &str,
        cookie: Option<u64>,
    ) -> PyResult<Link> {
        let context = format!("attaching {:?} to raw tracepoint {name}", self.name_str());
        self.attach_with(py, |program| match program {
            AyaProgram::RawTracePoint(p) if cookie.is_some() => {
                let fd = p
                    .fd()
                    .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?;
                crate::cookie_links::raw_tracepoint(fd.as_fd(), name, cookie.unwrap_or(0), &context)
            }
            AyaProgram::RawTracePoint(p) => {
                let id = p
                    .attach(name)
                    .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?;
                owned(&context, p.take_link(id))
            }
            other => Err(wrong_kind(
                self.name_str(),
                program_kind(other),
                "RawTracePoint",
            )),
        })
    }

    /// The ELF section the program was read from (e.g. `"fentry/do_unlinkat"`), or `None` for a pinned program.
    #[getter]
    fn section(&self) -> Option<String> {
        self.section_name().map(str::to_owned)
    }

    /// Whether a KProbe/UProbe program is a return probe (kretprobe/uretprobe).
    #[getter]
    fn retprobe(&self) -> PyResult<bool> {
        let name = self.name_str().to_owned();
        Ok(self.with_program(|program| match program {
            AyaProgram::KProbe(p) => Ok(matches!(p.kind(), ProbeKind::Return)),
            AyaProgram::UProbe(p) => Ok(matches!(p.kind(), ProbeKind::Return)),
            other => Err(wrong_kind(&name, program_kind(other), "KProbe or UProbe")),
        })?)
    }

    /// Loads a BtfTracePoint (tp_btf) program on `tracepoint` (default: from its section, `tp_btf/<name>`).
    #[pyo3(signature = (tracepoint = None))]
    fn load_btf_tracepoint(&self, py: Python<'_>, tracepoint: Option<&str>) -> PyResult<()> {
        self.load_btf_based(py, "BtfTracePoint", "tracepoint", "tracepoint", tracepoint)
    }

    /// Loads an FEntry program on kernel function `function` (default: from its section, `fentry/<function>`).
    #[pyo3(signature = (function = None))]
    fn load_fentry(&self, py: Python<'_>, function: Option<&str>) -> PyResult<()> {
        self.load_btf_based(py, "FEntry", "function", "function", function)
    }

    /// Loads an FExit program on kernel function `function` (default: from its section, `fexit/<function>`).
    #[pyo3(signature = (function = None))]
    fn load_fexit(&self, py: Python<'_>, function: Option<&str>) -> PyResult<()> {
        self.load_btf_based(py, "FExit", "function", "function", function)
    }

    /// Loads an Lsm program on LSM hook `hook` (default: from its section, `lsm/<hook>`).
    #[pyo3(signature = (hook = None))]
    fn load_lsm(&self, py: Python<'_>, hook: Option<&str>) -> PyResult<()> {
        self.load_btf_based(py, "Lsm", "LSM hook", "hook", hook)
    }

    /// Loads an LsmCgroup program on LSM hook `hook` (default: from its section, `lsm_cgroup/<hook>`).
    #[pyo3(signature = (hook = None))]
    fn load_lsm_cgroup(&self, py: Python<'_>, hook: Option<&str>) -> PyResult<()> {
        self.load_btf_based(py, "LsmCgroup", "LSM hook", "hook", hook)
    }

    /// Loads an Iter program for iterator type `iter_type` (default: from its section, `iter/<type>`).
    #[pyo3(signature = (iter_type = None))]
    fn load_iter(&self, py: Python<'_>, iter_type: Option<&str>) -> PyResult<()> {
        self.load_btf_based(py, "Iter", "iterator type", "iter_type", iter_type)
    }

    /// Loads an Extension program replacing function `function` of the loaded program `target`.
    #[pyo3(signature = (target, function = None))]
    fn load_extension(
        &self,
        py: Python<'_>,
        target: &Program,
        function: Option<&str>,
    ) -> PyResult<()> {
        if self.kind_str() != "Extension" {
            return Err(wrong_kind(self.name_str(), self.kind_str(), "Extension").into());
        }
        let function = self.target_or_section(function, "function")?;
        let context = format!(
            "loading Extension program {:?} to replace {function:?} in program {:?}",
            self.name_str(),
            target.name_str()
        );
        py.detach(|| {
            // The target's fd is duplicated under its object's lock, which is released before ours is taken.
            let target_fd = target.with_program(|program| {
                let fd = program.fd().map_err(|_| {
                    Deferred::Plain(
                        Kind::Program,
                        format!("{context}: the target program is not loaded; load() it first"),
                    )
                })?;
                fd.try_clone().map_err(|err| {
                    Deferred::Plain(
                        Kind::Program,
                        format!("{context}: duplicating the target's fd: {err}"),
                    )
                })
            })?;
            self.with_program(|program| match program {
                AyaProgram::Extension(p) => p
                    .load(target_fd, &function)
                    .map_err(|err| load_error(context.clone(), "function", &function, err)),
                other => Err(wrong_kind(
                    self.name_str(),
                    program_kind(other),
                    "Extension",
                )),
            })
        })
        .map_err(|err| err.into_err(self.needs()))?;
        Ok(())
    }

    /// Attaches a loaded BtfTracePoint, FEntry, FExit, Lsm or Extension program to the target it was loaded for.
    #[pyo3(signature = (cookie = None))]
    fn attach_btf(&self, py: Python<'_>, cookie: Option<u64>) -> PyResult<Link> {
        let context = format!(
            "attaching {} program {:?}",
            self.kind_str(),
            self.name_str()
        );
        self.attach_with(py, |program| {
            let error = |err| Deferred::Program(context.clone(), Box::new(err));
            if let Some(cookie) = cookie {
                use crate::cookie_links::TracingAttach;
                let (attach, fd) = match program {
                    AyaProgram::BtfTracePoint(p) => (TracingAttach::RawTp, p.fd()),
                    AyaProgram::FEntry(p) => (TracingAttach::FEntry, p.fd()),
                    AyaProgram::FExit(p) => (TracingAttach::FExit, p.fd()),
                    AyaProgram::Lsm(p) => (TracingAttach::Lsm, p.fd()),
                    other => {
                        return Err(Deferred::Plain(
                            Kind::Unsupported,
                            format!(
                                "{context}: {} programs take no bpf cookie (the kernel has none for them)",
                                program_kind(other)
                            ),
                        ))
                    }
                };
                let fd = fd.map_err(error)?;
                return crate::cookie_links::tracing(fd.as_fd(), attach, cookie, &context);
            }
            match program {
                AyaProgram::BtfTracePoint(p) => {
                    let id = p.attach().map_err(error)?;
                    owned(&context, p.take_link(id))
                }
                AyaProgram::FEntry(p) => {
                    let id = p.attach().map_err(error)?;
                    owned(&context, p.take_link(id))
                }
                AyaProgram::FExit(p) => {
                    let id = p.attach().map_err(error)?;
                    owned(&context, p.take_link(id))
                }
                AyaProgram::Lsm(p) => {
                    let id = p.attach().map_err(error)?;
                    owned(&context, p.take_link(id))
                }
                AyaProgram::Extension(p) => {
                    let id = p.attach().map_err(error)?;
                    owned(&context, p.take_link(id))
                }
                other => Err(wrong_kind(
                    self.name_str(),
                    program_kind(other),
                    "BtfTracePoint, FEntry, FExit, Lsm or Extension",
                )),
            }
        })
    }

    /// Attaches a loaded LsmCgroup program to the cgroup at `cgroup` (a path under the cgroup v2 mount).
    fn attach_lsm_cgroup(&self, py: Python<'_>, cgroup: PathBuf) -> PyResult<Link> {
        let context = format!(
            "attaching LsmCgroup program {:?} to cgroup {}",
            self.name_str(),
            cgroup.display()
        );
        let file = File::open(&cgroup).map_err(|err| {
            crate::errors::new_err(
                Kind::NotFound,
                format!("{context}: cannot open the cgroup: {err}"),
            )
        })?;
        self.attach_with(py, |program| match program {
            AyaProgram::LsmCgroup(p) => {
                let id = p
                    .attach(&file)
                    .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?;
                owned(&context, p.take_link(id))
            }
            other => Err(wrong_kind(
                self.name_str(),
                program_kind(other),
                "LsmCgroup",
            )),
        })
    }

    /// Attaches a loaded Iter program; returns the link and its kernel id, which `read_iter` runs.
    fn attach_iter(&self, py: Python<'_>) -> PyResult<(Link, u32)> {
        let context = format!("attaching Iter program {:?}", self.name_str());
        let mut link_id = 0;
        let link = self.attach_with(py, |program| match program {
            AyaProgram::Iter(p) => {
                let id = p
                    .attach()
                    .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?;
                let link = p
                    .take_link(id)
                    .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?;
                let fd_link = FdLink::try_from(link)
                    .map_err(|err| Deferred::Plain(Kind::Program, format!("{context}: {err}")))?;
                link_id = fd_link
                    .info()
                    .map_err(|err| {
                        Deferred::Plain(
                            Kind::Program,
                            format!("{context}: {}", chain_message(&err)),
                        )
                    })?
                    .id();
                Ok(Box::new(fd_link) as Box<dyn OwnedLink>)
            }
            other => Err(wrong_kind(self.name_str(), program_kind(other), "Iter")),
        })?;
        Ok((link, link_id))
    }

    /// Attaches a KProbe program (kprobe or kretprobe) to kernel function `function`, `offset` bytes in.
    /// Its runs see `cookie` through `bpf_get_attach_cookie` when given (attached by pyaya through the kprobe
    /// PMU: aya 0.14 takes no cookie here).
    #[pyo3(signature = (function, offset = 0, cookie = None))]
    fn attach_kprobe(
        &self,
        py: Python<'_>,
        function: &str,
        offset: u64,
        cookie: Option<u64>,
    ) -> PyResult<Link> {
        let context = format!(
            "attaching {:?} to kernel function {function}+{offset}",
            self.name_str()
        );
        self.attach_with(py, |program| match program {
            AyaProgram::KProbe(p) if cookie.is_some() => {
                let needs =
                    "kprobes with a bpf cookie need CONFIG_KPROBES=y and kernel 5.15 or later";
                let pmu = perf_link::pmu_type("kprobe", needs)?;
                let config = if matches!(p.kind(), ProbeKind::Return) {
                    1u64 << perf_link::config_bit("kprobe", "retprobe", needs)?
                } else {
                    0
                };
                let program_fd = p
                    .fd()
                    .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?;
                let perf = perf_link::open_probe(pmu, config, function.as_bytes(), offset, -1, 0);
                perf_link::one_link(program_fd.as_fd(), perf, cookie.unwrap_or(0), &context)
            }
            AyaProgram::KProbe(p) => {
                let id = p
                    .attach(function, offset)
                    .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?;
                owned(&context, p.take_link(id))
            }
            other => Err(wrong_kind(self.name_str(), program_kind(other), "KProbe")),
        })
    }

    /// Attaches a UProbe program (uprobe or uretprobe) to `symbol` (+`offset`) of `target`, or to file offset
    /// `offset` when `symbol` is None; only in process `pid` if given; its runs see `cookie` through
    /// `bpf_get_attach_cookie` when given.
    #[pyo3(signature = (target, symbol = None, offset = 0, pid = None, cookie = None))]
    fn attach_uprobe(
        &self,
        py: Python<'_>,
        target: PathBuf,
        symbol: Option<&str>,
        offset: u64,
        pid: Option<u32>,
        cookie: Option<u64>,
    ) -> PyResult<Link> {
        let place = match symbol {
            Some(symbol) if offset > 0 => format!("{symbol}+{offset:#x}"),
            Some(symbol) => symbol.to_owned(),
            None => format!("offset {offset:#x}"),
        };
        let scope_text = pid.map_or_else(String::new, |pid| format!(" in process {pid}"));
        let context = format!(
            "attaching {:?} to {place} of {}{scope_text}",
            self.name_str(),
            target.display()
        );
        let scope = match pid {
            None => UProbeScope::AllProcesses,
            Some(pid) => UProbeScope::OneProcess(NonZeroU32::new(pid).ok_or_else(|| {
                crate::errors::new_err(
                    Kind::Program,
                    format!("{context}: pid must be a process id (not 0); pass pid=None for every process"),
                )
            })?),
        };
        self.attach_with(py, |program| match program {
            AyaProgram::UProbe(p) => {
                let location = match symbol {
                    Some(symbol) if offset > 0 => {
                        UProbeAttachLocation::SymbolOffset(symbol, offset)
                    }
                    Some(symbol) => UProbeAttachLocation::Symbol(symbol),
                    None => UProbeAttachLocation::AbsoluteOffset(offset),
                };
                let id = p
                    .attach(UProbeAttachPoint { location, cookie }, &target, scope)
                    .map_err(|err| uprobe_error(context.clone(), err, &target, pid))?;
                owned(&context, p.take_link(id))
            }
            other => Err(wrong_kind(self.name_str(), program_kind(other), "UProbe")),
        })
    }

    /// Attaches a PerfEvent program to perf event `event` (a `perf list` name, see `perf_event_names`), sampling
    /// every `sample_period` events or `sample_frequency` times a second; once per CPU in `cpus` (default: every
    /// online CPU), or for process `pid` only. All attachments come back as one link. Its runs see `cookie`
    /// through `bpf_get_attach_cookie` when given (attached by pyaya: aya 0.14 takes no cookie here).
    #[pyo3(signature = (event, sample_period = None, sample_frequency = None, cpus = None, pid = None, cookie = None))]
    #[allow(clippy::too_many_arguments, reason = "the Python signature")]
    fn attach_perf_event(
        &self,
        py: Python<'_>,
        event: &str,
        sample_period: Option<u64>,
        sample_frequency: Option<u64>,
        cpus: Option<Vec<u32>>,
        pid: Option<u32>,
        cookie: Option<u64>,
    ) -> PyResult<Link> {
        let context = format!("attaching {:?} to perf event {event}", self.name_str());
        let config = PERF_EVENTS
            .iter()
            .find(|(name, _)| *name == event)
            .map(|(_, config)| *config)
            .ok_or_else(|| {
                let names: Vec<_> = PERF_EVENTS.iter().map(|(name, _)| *name).collect();
                crate::errors::new_err(
                    Kind::NotFound,
                    format!(
                        "{context}: no perf event named {event:?}; known: {}",
                        names.join(", ")
                    ),
                )
            })?;
        let policy = match (sample_period, sample_frequency) {
            (Some(_), Some(_)) => {
                return Err(crate::errors::new_err(
                    Kind::Program,
                    format!("{context}: give sample_period or sample_frequency, not both"),
                ))
            }
            (Some(0), None) | (None, Some(0)) => {
                return Err(crate::errors::new_err(
                    Kind::Program,
                    format!("{context}: the sample period or frequency must be at least 1"),
                ))
            }
            (Some(period), None) => SamplePolicy::Period(period),
            (None, Some(frequency)) => SamplePolicy::Frequency(frequency),
            (None, None) => SamplePolicy::Frequency(99),
        };
        self.attach_perf(py, &context, config, policy, cpus, pid, cookie)
    }

    /// Attaches a PerfEvent program to a hardware breakpoint at `address`: `access` is "r", "w", "rw" (a data
    /// breakpoint over `length` bytes: 1, 2, 4 or 8) or "x" (an instruction breakpoint; `length` is ignored, the
    /// kernel takes `sizeof(long)`). The program runs every `sample_period` hits; placement as
    /// `attach_perf_event`'s.
    #[pyo3(signature = (address, access, length, sample_period, cpus = None, pid = None, cookie = None))]
    #[allow(clippy::too_many_arguments, reason = "the Python signature")]
    fn attach_breakpoint(
        &self,
        py: Python<'_>,
        address: u64,
        access: &str,
        length: u32,
        sample_period: u64,
        cpus: Option<Vec<u32>>,
        pid: Option<u32>,
        cookie: Option<u64>,
    ) -> PyResult<Link> {
        let context = format!(
            "attaching {:?} to a breakpoint ({access}) at {address:#x}",
            self.name_str()
        );
        let invalid = |message: String| {
            crate::errors::new_err(Kind::InvalidArgument, format!("{context}: {message}"))
        };
        let length = match length {
            1 => PerfBreakpointLength::Len1,
            2 => PerfBreakpointLength::Len2,
            4 => PerfBreakpointLength::Len4,
            8 => PerfBreakpointLength::Len8,
            other => return Err(invalid(format!("length {other}: use 1, 2, 4 or 8 bytes"))),
        };
        let data = |r#type| BreakpointConfig::Data {
            r#type,
            address,
            length,
        };
        let breakpoint = match access {
            "r" => data(PerfBreakpointType::Read),
            "w" => data(PerfBreakpointType::Write),
            "rw" => data(PerfBreakpointType::ReadWrite),
            "x" => BreakpointConfig::Instruction { address },
            other => {
                return Err(invalid(format!(
                    "access {other:?}: use \"r\", \"w\", \"rw\" or \"x\""
                )))
            }
        };
        if sample_period == 0 {
            return Err(invalid("sample_period must be at least 1".to_owned()));
        }
        self.attach_perf(
            py,
            &context,
            PerfEventConfig::Breakpoint(breakpoint),
            SamplePolicy::Period(sample_period),
            cpus,
            pid,
            cookie,
        )
    }
}

impl Program {
    /// One perf event of `config` per CPU in `cpus` (default: every online CPU), or for process `pid` only (0:
    /// this one), the program attached to each; all in one link, and nothing attached when one fails.
    #[allow(
        clippy::too_many_arguments,
        reason = "the options of one perf_event_open"
    )]
    fn attach_perf(
        &self,
        py: Python<'_>,
        context: &str,
        config: PerfEventConfig,
        policy: SamplePolicy,
        cpus: Option<Vec<u32>>,
        pid: Option<u32>,
        cookie: Option<u64>,
    ) -> PyResult<Link> {
        self.attach_with(py, |program| match program {
            AyaProgram::PerfEvent(p) => {
                let scopes: Vec<PerfEventScope> = match (pid, cpus) {
                    (Some(0), None) => vec![PerfEventScope::CallingProcess { cpu: None }],
                    (Some(0), Some(cpus)) => cpus
                        .into_iter()
                        .map(|cpu| PerfEventScope::CallingProcess { cpu: Some(cpu) })
                        .collect(),
                    (Some(pid), None) => vec![PerfEventScope::OneProcess { pid, cpu: None }],
                    (Some(pid), Some(cpus)) => cpus
                        .into_iter()
                        .map(|cpu| PerfEventScope::OneProcess {
                            pid,
                            cpu: Some(cpu),
                        })
                        .collect(),
                    (None, cpus) => cpus
                        .map_or_else(online_cpus, Ok)?
                        .into_iter()
                        .map(|cpu| PerfEventScope::AllProcessesOneCpu { cpu })
                        .collect(),
                };
                if scopes.is_empty() {
                    return Err(Deferred::Plain(
                        Kind::Program,
                        format!("{context}: cpus is empty; give at least one CPU or None for all"),
                    ));
                }
                if let Some(cookie) = cookie {
                    return perf_event_links_with_cookie(
                        p, context, config, policy, &scopes, cookie,
                    );
                }
                let mut links = Vec::with_capacity(scopes.len());
                for scope in scopes {
                    let attached = p
                        .attach(config, scope, policy, false)
                        .and_then(|id| p.take_link(id));
                    match attached {
                        Ok(link) => links.push(link),
                        Err(err) => {
                            // Nothing stays attached when one CPU fails.
                            drop(links);
                            let place = match scope {
                                PerfEventScope::AllProcessesOneCpu { cpu } => {
                                    format!(" on CPU {cpu}")
                                }
                                PerfEventScope::OneProcess { pid, .. } => {
                                    format!(" for process {pid}")
                                }
                                PerfEventScope::CallingProcess { .. } => {
                                    " for this process".to_owned()
                                }
                            };
                            return Err(Deferred::Program(
                                format!("{context}{place}"),
                                Box::new(err),
                            ));
                        }
                    }
                }
                Ok(Box::new(PerfEventLinks(links)) as Box<dyn OwnedLink>)
            }
            other => Err(wrong_kind(
                self.name_str(),
                program_kind(other),
                "PerfEvent",
            )),
        })
    }
}
