//! USDT probes for Python: listing a file's probes, parsing one argument string, and `Program.attach_usdt`.
//!
//! aya 0.14 attaches uprobes with a bpf cookie but has no way to give the kernel a semaphore's offset
//! (`ref_ctr_offset`), so each location is attached here: a `perf_event_open` of the uprobe PMU (path, file
//! offset, and the semaphore's file offset in `config`'s upper bits) and a `BPF_LINK_CREATE` of the program on
//! it with the location's spec index as cookie (`perf_link.rs`). The kernel then raises the semaphore in every process that maps
//! the file (now or later) and lowers it when the perf event goes, even if this process is killed.

use std::fs;
use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use aya::programs::links::FdLink;
use aya::programs::{ProbeKind, Program as AyaProgram, ProgramError};
use pyo3::prelude::*;

use crate::ebpf::{wrong_kind, Program};
use crate::errors::{new_err, Deferred, Kind};
use crate::links::{Link, OwnedLink};
use crate::names::program_kind;
use crate::perf_link::{self, syscall_error};
use crate::sys;
use pyaya_core::usdt::{parse_argument, split_arguments, Arch, Location, Note, Notes, SPEC_SIZE};

/// The map of crates/pyaya-usdt holding the specs, by cookie.
const SPECS_MAP: &str = "PYAYA_USDT_SPECS";
const UPROBE_PMU: &str = "/sys/bus/event_source/devices/uprobe";
const BPF_MAP_TYPE_ARRAY: u32 = 2;

/// One probe as Python lists it: provider, name, the note's location, base and semaphore addresses, the
/// argument strings, the file offset a uprobe attaches at, the semaphore's file offset, and why an offset could
/// not be computed.
type ProbeRow = (
    String,
    String,
    u64,
    u64,
    u64,
    Vec<String>,
    Option<u64>,
    Option<u64>,
    Option<String>,
);

fn read_notes(path: &Path) -> Result<Notes, Deferred> {
    let data = fs::read(path).map_err(|err| {
        let kind = if err.kind() == std::io::ErrorKind::NotFound {
            Kind::NotFound
        } else {
            Kind::Object
        };
        Deferred::Plain(kind, format!("reading {}: {err}", path.display()))
    })?;
    Notes::parse(&data).map_err(|reason| {
        Deferred::Plain(
            Kind::Object,
            format!("reading the USDT probes of {}: {reason}", path.display()),
        )
    })
}

/// `(arch, machine, probes)` of the ELF file at `path`: `arch` is the name of the machine when pyaya reads its
/// argument strings (`x86_64`, `aarch64`), else None; one row per probe location, in note order.
#[pyaya_guard::guard(Object)]
#[pyfunction]
pub fn usdt_probes(
    py: Python<'_>,
    path: PathBuf,
) -> PyResult<(Option<&'static str>, String, Vec<ProbeRow>)> {
    let notes = py.detach(|| read_notes(&path))?;
    let rows = notes
        .notes
        .iter()
        .map(|note| {
            let semaphore = note.semaphore_offset.clone().transpose();
            let error = note
                .file_offset
                .as_ref()
                .err()
                .or(semaphore.as_ref().err())
                .cloned();
            (
                note.provider.clone(),
                note.name.clone(),
                note.location,
                note.base,
                note.semaphore,
                split_arguments(&note.arguments)
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                note.file_offset.clone().ok(),
                semaphore.ok().flatten(),
                error,
            )
        })
        .collect();
    Ok((notes.arch.map(Arch::name), notes.machine, rows))
}

/// One parsed argument: `(size, signed, kind, value, register, index, scale, symbol)`. `kind` is
/// `"constant"` (`value` is it), `"register"` (`register` holds it) or `"memory"` (at `register + index *
/// scale + value`, or at `symbol + value`).
type ArgumentRow = (
    u8,
    bool,
    &'static str,
    i64,
    Option<String>,
    Option<String>,
    u8,
    Option<String>,
);

/// Parses one USDT argument string (`-4@%eax`) of a probe of an `arch` binary (`x86_64`, `aarch64`).
#[pyaya_guard::guard(Object)]
#[pyfunction]
pub fn usdt_parse_argument(text: &str, arch: &str) -> PyResult<ArgumentRow> {
    let arch = Arch::from_name(arch).ok_or_else(|| {
        new_err(
            Kind::Unsupported,
            format!("USDT arguments of {arch} binaries are not supported (x86_64 and aarch64 are)"),
        )
    })?;
    let argument = parse_argument(text, arch).map_err(|err| {
        new_err(
            Kind::Unsupported,
            format!("USDT argument {:?}: {}", err.text, err.reason),
        )
    })?;
    let (size, signed) = (argument.size, argument.signed);
    Ok(match argument.location {
        Location::Constant(value) => (size, signed, "constant", value, None, None, 0, None),
        Location::Register(register) => (
            size,
            signed,
            "register",
            0,
            Some(register.name),
            None,
            0,
            None,
        ),
        Location::Memory {
            base,
            index,
            displacement,
            symbol,
        } => {
            let (index, scale) =
                index.map_or((None, 0), |(register, scale)| (Some(register.name), scale));
            (
                size,
                signed,
                "memory",
                displacement,
                base.map(|register| register.name),
                index,
                scale,
                symbol,
            )
        }
    })
}

/// One location to attach: the file, the uprobe's file offset, the semaphore's, and the spec's bytes.
struct Site {
    path: PathBuf,
    offset: u64,
    semaphore: Option<u64>,
    spec: Option<Vec<u8>>,
}

fn probe_label(provider: &str, name: &str) -> String {
    format!("{provider}:{name}")
}

/// The locations of `provider:name` in `targets`, with their specs when `with_specs` (the object has the map).
fn find_sites(
    targets: &[PathBuf],
    provider: &str,
    name: &str,
    with_specs: bool,
    context: &str,
) -> Result<Vec<Site>, Deferred> {
    let mut sites = Vec::new();
    let mut others: Vec<String> = Vec::new();
    for path in targets {
        let notes = read_notes(path)?;
        for note in &notes.notes {
            if note.provider != provider || note.name != name {
                let label = probe_label(&note.provider, &note.name);
                if !others.contains(&label) {
                    others.push(label);
                }
                continue;
            }
            sites.push(site(&notes, note, path, with_specs, context)?);
        }
    }
    if sites.is_empty() {
        let files: Vec<String> = targets.iter().map(|p| p.display().to_string()).collect();
        let listed = if others.is_empty() {
            "it has no USDT probes (no .note.stapsdt section)".to_owned()
        } else {
            others.sort();
            format!("its probes are {}", others.join(", "))
        };
        return Err(Deferred::Plain(
            Kind::NotFound,
            format!(
                "{context}: no USDT probe {} in {}; {listed} (`pyaya inspect --usdt FILE` lists them)",
                probe_label(provider, name),
                files.join(", ")
            ),
        ));
    }
    Ok(sites)
}

fn site(
    notes: &Notes,
    note: &Note,
    path: &Path,
    with_specs: bool,
    context: &str,
) -> Result<Site, Deferred> {
    let here = format!(
        "{context}: USDT probe {} at {:#x} in {}",
        probe_label(&note.provider, &note.name),
        note.location,
        path.display()
    );
    let offset = note
        .file_offset
        .clone()
        .map_err(|reason| Deferred::Plain(Kind::Object, format!("{here}: {reason}")))?;
    let semaphore = note
        .semaphore_offset
        .clone()
        .transpose()
        .map_err(|reason| Deferred::Plain(Kind::Object, format!("{here}: semaphore: {reason}")))?;
    let spec = if with_specs {
        Some(notes.encode_spec(note).map_err(|reason| {
            Deferred::Plain(
                Kind::Unsupported,
                format!("{here}: pyaya cannot read {reason}"),
            )
        })?)
    } else {
        None
    };
    Ok(Site {
        path: path.to_owned(),
        offset,
        semaphore,
        spec,
    })
}

/// What a kernel needs for USDT probes, said when its uprobe PMU is missing.
const USDT_NEEDS: &str = "USDT probes need CONFIG_UPROBES=y and kernel 4.17 or later";

/// The uprobe PMU's perf type, and the bit where `config` takes the semaphore's offset (kernel 4.20+).
fn uprobe_pmu(need_semaphore: bool) -> Result<(u32, Option<u32>), Deferred> {
    let pmu_type = perf_link::pmu_type("uprobe", USDT_NEEDS)?;
    if !need_semaphore {
        return Ok((pmu_type, None));
    }
    if !Path::new(UPROBE_PMU).join("format/ref_ctr_offset").exists() {
        return Err(Deferred::Plain(
            Kind::Unsupported,
            "this probe has a semaphore, and this kernel's uprobes cannot maintain one (no \
             /sys/bus/event_source/devices/uprobe/format/ref_ctr_offset; kernel 4.20 or later has it)"
                .to_owned(),
        ));
    }
    let shift = perf_link::config_bit("uprobe", "ref_ctr_offset", USDT_NEEDS)?;
    Ok((pmu_type, Some(shift)))
}

/// The prefix of `struct bpf_map_info` the spec map is checked with.
#[repr(C)]
#[derive(Default)]
struct MapInfo {
    map_type: u32,
    id: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
}

/// Spec slots taken in the object's spec map, given back (zeroed) when the link goes.
struct SpecSlots {
    map: OwnedFd,
    ids: Vec<u32>,
}

impl SpecSlots {
    fn release(&mut self) {
        let free = [0u8; SPEC_SIZE];
        for id in self.ids.drain(..) {
            // A map that cannot be written any more is being freed with the object: nothing to give back.
            let _ = sys::update(self.map.as_fd(), &id.to_ne_bytes(), &free, 0);
        }
    }
}

/// Where the owner pid sits in a spec (the last four bytes).
const OWNER_AT: usize = SPEC_SIZE - 4;

fn owner_alive(owner: u32) -> bool {
    owner == std::process::id() || Path::new(&format!("/proc/{owner}")).exists()
}

/// Takes one slot per distinct spec in `map` and writes the specs there; returns each spec's slot (its cookie).
/// A slot is free when zeroed or when the process that wrote it is gone (a map pinned and shared by a load
/// that was killed).
fn write_specs(
    map: OwnedFd,
    specs: &[Vec<u8>],
    context: &str,
) -> Result<(SpecSlots, Vec<u32>), Deferred> {
    let mut info = MapInfo::default();
    sys::object_info(map.as_fd(), &mut info)
        .map_err(|err| Deferred::MapIo(format!("{context}: reading map {SPECS_MAP}"), err))?;
    if info.map_type != BPF_MAP_TYPE_ARRAY
        || info.key_size != 4
        || info.value_size as usize != SPEC_SIZE
    {
        return Err(Deferred::Plain(
            Kind::Map,
            format!(
                "{context}: map {SPECS_MAP} is not the array of {SPEC_SIZE}-byte specs this pyaya writes (type {}, \
                 value size {}): build the program with the pyaya-usdt crate shipped with this pyaya",
                info.map_type, info.value_size
            ),
        ));
    }
    let mut distinct: Vec<&Vec<u8>> = Vec::new();
    let mut which = Vec::with_capacity(specs.len());
    for spec in specs {
        let position = distinct.iter().position(|known| *known == spec);
        which.push(position.unwrap_or_else(|| {
            distinct.push(spec);
            distinct.len() - 1
        }));
    }
    let mut slots = SpecSlots {
        map,
        ids: Vec::new(),
    };
    let mut value = vec![0u8; SPEC_SIZE];
    // Slot 0 stays empty: a program attached without a cookie (0) finds no spec.
    for id in 1..info.max_entries {
        if slots.ids.len() == distinct.len() {
            break;
        }
        sys::lookup(slots.map.as_fd(), &id.to_ne_bytes(), &mut value)
            .map_err(|err| Deferred::MapIo(format!("{context}: reading {SPECS_MAP}[{id}]"), err))?;
        let owner = u32::from_ne_bytes(value[OWNER_AT..].try_into().unwrap_or_default());
        if owner != 0 && owner_alive(owner) {
            continue;
        }
        let mut spec = distinct[slots.ids.len()].clone();
        spec[OWNER_AT..].copy_from_slice(&std::process::id().to_ne_bytes());
        if let Err(err) = sys::update(slots.map.as_fd(), &id.to_ne_bytes(), &spec, 0) {
            slots.release();
            return Err(Deferred::MapIo(
                format!("{context}: writing {SPECS_MAP}[{id}]"),
                err,
            ));
        }
        slots.ids.push(id);
    }
    if slots.ids.len() < distinct.len() {
        slots.release();
        return Err(Deferred::Plain(
            Kind::Map,
            format!(
                "{context}: {SPECS_MAP} has no room for {} more specs (max_entries {}, slot 0 unused); load with \
                 max_entries={{\"{SPECS_MAP}\": N}} for more",
                distinct.len(),
                info.max_entries
            ),
        ));
    }
    let cookies = which.iter().map(|position| slots.ids[*position]).collect();
    Ok((slots, cookies))
}

/// Every location of one USDT probe: one bpf_link each, and the spec slots they read.
struct UsdtLink {
    links: Vec<OwnedFd>,
    slots: Option<SpecSlots>,
}

impl Drop for UsdtLink {
    fn drop(&mut self) {
        // Detach first, so no run reads a slot after it is given back.
        self.links.clear();
        if let Some(slots) = self.slots.as_mut() {
            slots.release();
        }
    }
}

impl OwnedLink for UsdtLink {
    fn detach(self: Box<Self>) -> Result<(), ProgramError> {
        drop(self);
        Ok(())
    }

    fn into_fd_link(self: Box<Self>) -> Result<FdLink, String> {
        Err(format!(
            "a USDT link holds {} uprobe attachment(s) and the argument specs they read, which a pin cannot \
             keep; the link was detached",
            self.links.len()
        ))
    }
}

#[pyaya_guard::guard(Program)]
#[pymethods]
impl Program {
    /// Attaches a loaded UProbe program to every location of USDT probe `provider:name` in the ELF files
    /// `targets` (only in process `pid` if given), each with a cookie naming its argument spec in the object's
    /// `PYAYA_USDT_SPECS` map (when it has one); the kernel maintains the probe's semaphore. One link for all.
    #[pyo3(signature = (targets, provider, name, pid = None))]
    fn attach_usdt(
        &self,
        py: Python<'_>,
        targets: Vec<PathBuf>,
        provider: &str,
        name: &str,
        pid: Option<u32>,
    ) -> PyResult<Link> {
        let scope = pid.map_or_else(String::new, |pid| format!(" in process {pid}"));
        let context = format!(
            "attaching {:?} to USDT probe {}{scope}",
            self.name_str(),
            probe_label(provider, name)
        );
        if self.kind_str() != "UProbe" {
            return Err(wrong_kind(self.name_str(), self.kind_str(), "UProbe").into());
        }
        if pid == Some(0) {
            return Err(new_err(
                Kind::Program,
                format!(
                    "{context}: pid must be a process id (not 0); pass pid=None for every process"
                ),
            ));
        }
        let map = self.map_fd(SPECS_MAP)?;
        if map.is_none() && self.section_name().is_none() {
            // Its object's maps are not known here, so a spec map it reads could not be written.
            return Err(new_err(
                Kind::Program,
                format!(
                    "{context}: a program opened from a pin cannot be given USDT argument specs; load its object \
                     (Ebpf.load_file) and attach that program"
                ),
            ));
        }
        let (sites, pmu_type, ref_ctr_shift) = py.detach(|| {
            let sites = find_sites(&targets, provider, name, map.is_some(), &context)?;
            let (pmu_type, shift) = uprobe_pmu(sites.iter().any(|site| site.semaphore.is_some()))?;
            Ok::<_, Deferred>((sites, pmu_type, shift))
        })?;
        self.attach_with(py, move |program| {
            let AyaProgram::UProbe(uprobe) = program else {
                return Err(wrong_kind(self.name_str(), program_kind(program), "UProbe"));
            };
            if matches!(uprobe.kind(), ProbeKind::Return) {
                return Err(Deferred::Plain(
                    Kind::Program,
                    format!("{context}: it is a uretprobe; USDT probes take an entry uprobe (#[uprobe])"),
                ));
            }
            let program_fd = uprobe.fd().map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?;
            let (slots, cookies) = match map {
                Some(map) => {
                    let specs: Vec<Vec<u8>> = sites.iter().filter_map(|site| site.spec.clone()).collect();
                    let (slots, cookies) = write_specs(map, &specs, &context)?;
                    (Some(slots), cookies)
                }
                None => (None, vec![0; sites.len()]),
            };
            let mut link = UsdtLink {
                links: Vec::with_capacity(sites.len()),
                slots,
            };
            for (site, cookie) in sites.iter().zip(cookies) {
                let here = format!("{context} at offset {:#x} of {}", site.offset, site.path.display());
                let config = match (site.semaphore, ref_ctr_shift) {
                    (Some(offset), Some(shift)) => offset << shift,
                    _ => 0,
                };
                // On an error, `link` drops: what was attached detaches and the slots are given back.
                let perf = perf_link::open_probe(
                    pmu_type,
                    config,
                    site.path.as_os_str().as_bytes(),
                    site.offset,
                    pid.map_or(-1, |pid| pid as libc::c_int),
                    // Every process: pid -1 on one CPU (the probe fires on any CPU); one process: any CPU.
                    if pid.is_some() { -1 } else { 0 },
                )
                .map_err(|err| syscall_error(&here, "perf_event_open", err))?;
                let bpf_link = perf_link::link_with_cookie(program_fd.as_fd(), &perf, u64::from(cookie), &here)?;
                link.links.push(bpf_link);
            }
            Ok(Box::new(link) as Box<dyn OwnedLink>)
        })
    }
}
