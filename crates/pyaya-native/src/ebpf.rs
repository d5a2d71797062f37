//! `Ebpf`: one loaded object, owning its programs, maps, links and log reader; `Program` and `Link` refer back to it.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use aya::maps::{Map as AyaMap, MapData};
use aya::programs::{Program as AyaProgram, ProgramError};
use aya::{Ebpf as AyaEbpf, EbpfLoader};
use aya_log::EbpfLogger;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{self, new_err, Deferred, Kind};
use crate::links::{is_attached, runs_program, Link, OwnedLink, SharedLink};
use crate::load_options;
use crate::logs::LogQueue;
use crate::map_shared::{self, LogOwner, Owner};
use crate::maps::{self, MapSlot};
use crate::multi_load::{self, MultiCode};
use crate::names::program_kind;
use crate::perf::{PerfShared, PerfState};
use crate::pinning;

/// Everything a loaded object holds in the kernel. Dropping it closes every fd: programs unload, links detach.
struct LoadedObject {
    ebpf: AyaEbpf,
    /// Maps handed to Python, by name; aya no longer knows them once taken.
    taken_maps: Vec<(String, Py<PyAny>, MapSlot)>,
    /// The attachments each program keeps, by program name: attach-and-forget works as in aya, and `unload()` or
    /// `close()` let go of them, which detaches those no `Link` handle holds.
    links: Vec<(String, SharedLink)>,
    logger: Option<EbpfLogger<LogQueue>>,
    /// Programs opened from a pin in bpffs (`Program.from_pin`), owned here like the object's own programs.
    pinned_programs: HashMap<String, AyaProgram>,
    /// Perf event arrays whose buffers were opened at load, by name, until Python asks for them.
    perf_arrays: Vec<(String, PerfArrayAtLoad)>,
    /// The relocated code of the object's multi-point probes, which pyaya loads itself (`multi_load.rs`).
    multi_code: HashMap<String, MultiCode>,
    /// Multi-point probes pyaya loaded, as aya programs holding their fds: these stand for aya's own (never
    /// loaded) program of the same name.
    multi_loaded: HashMap<String, AyaProgram>,
}

/// A perf event array taken from aya at load: its buffers open (and in its slots), or the map itself when they
/// could not be opened (the error is raised when Python asks for the map, which opens them again).
enum PerfArrayAtLoad {
    Open(PerfShared, map_shared::Shape),
    Failed(MapData),
}

/// Opens the buffers of every perf event array of `ebpf` before any program can run, so that no sample finds a
/// slot without a buffer (aya opens them only when asked, with `PerfEventArray::open`).
fn open_perf_arrays(ebpf: &mut AyaEbpf) -> Vec<(String, PerfArrayAtLoad)> {
    let names: Vec<String> = ebpf
        .maps()
        .filter(|(_, map)| matches!(map, AyaMap::PerfEventArray(_)))
        .map(|(name, _)| name.to_owned())
        .collect();
    let mut arrays = Vec::with_capacity(names.len());
    for name in names {
        let Some(AyaMap::PerfEventArray(data)) = ebpf.take_map(&name) else {
            continue;
        };
        let Ok(shape) = map_shared::shape_of(&name, &data) else {
            arrays.push((name, PerfArrayAtLoad::Failed(data)));
            continue;
        };
        let array = match PerfState::open(&name, data) {
            Ok(state) => PerfArrayAtLoad::Open(PerfShared::new(state), shape),
            Err(failed) => PerfArrayAtLoad::Failed(failed.1),
        };
        arrays.push((name, array));
    }
    arrays
}

impl LoadedObject {
    fn program_mut(&mut self, name: &str) -> Option<&mut AyaProgram> {
        if let Some(program) = self.multi_loaded.get_mut(name) {
            return Some(program);
        }
        match self.ebpf.program_mut(name) {
            Some(program) => Some(program),
            None => self.pinned_programs.get_mut(name),
        }
    }
}

/// Streams refer to their object weakly (for its log records), so that an object and its maps make no reference cycle:
/// dropping the last Python handle of an object frees it at once, without the garbage collector.
#[pyclass(module = "pyaya._native", frozen, weakref)]
pub struct Ebpf {
    state: Mutex<Option<LoadedObject>>,
    log_queue: LogQueue,
    log_handler: Mutex<Option<Py<PyAny>>>,
    /// A duplicate of the log ring buffer's fd, so waits on event streams also wake for log records.
    log_wake_fd: Option<OwnedFd>,
    /// ELF section of each program (e.g. `fentry/do_unlinkat`), where BTF-based loads find their default target.
    sections: HashMap<String, String>,
    /// Where `pin_maps` pinned each map, so its handle reports the pin (and `unpin()` can remove it).
    map_pins: HashMap<String, PathBuf>,
    /// The CO-RE relocations the object pass found the target BTF cannot satisfy (aya poisons their
    /// instructions), named in the error of a program the verifier refuses for one.
    core_failures: Vec<pyaya_core::object_pass::CoreFailure>,
}

impl Ebpf {
    fn lock(&self) -> MutexGuard<'_, Option<LoadedObject>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The pyaya kind of program `name`: aya's, except for multi-point probes, which aya prepares as plain ones.
    fn kind_of(&self, name: &str, program: &AyaProgram) -> &'static str {
        self.sections
            .get(name)
            .and_then(|section| multi_load::kind_of_section(section))
            .unwrap_or_else(|| program_kind(program))
    }

    /// Loads the multi-point probe `name` from its relocated code, with its multi attach type.
    fn load_multi(&self, name: &str) -> Result<(), Deferred> {
        self.with_object(|object| {
            if object
                .multi_loaded
                .get(name)
                .is_some_and(|program| program.fd().is_ok())
            {
                return Err(Deferred::Program(
                    format!("loading program {name:?}"),
                    Box::new(ProgramError::AlreadyLoaded),
                ));
            }
            let code = object.multi_code.get(name).ok_or_else(|| {
                Deferred::Plain(Kind::NotFound, format!("no program named {name:?}"))
            })?;
            let program = multi_load::load(name, code)?;
            object.multi_loaded.insert(name.to_owned(), program);
            Ok(())
        })
        .map_err(|error| self.explain_core_failure(name, error))
    }

    /// Runs `f` on the loaded object, or fails with `ClosedError`. Errors are deferred (see `Deferred`), so this
    /// is safe with the GIL released.
    fn with_object<T>(
        &self,
        f: impl FnOnce(&mut LoadedObject) -> Result<T, Deferred>,
    ) -> Result<T, Deferred> {
        let mut guard = self.lock();
        let object = guard
            .as_mut()
            .ok_or_else(|| Deferred::Plain(Kind::Closed, "the eBPF object is closed".into()))?;
        f(object)
    }

    fn with_program<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut AyaProgram) -> Result<T, Deferred>,
    ) -> Result<T, Deferred> {
        self.with_object(|object| {
            let program = object.program_mut(name).ok_or_else(|| {
                Deferred::Plain(Kind::NotFound, format!("no program named {name:?}"))
            })?;
            f(program)
        })
        .map_err(|error| self.explain_core_failure(name, error))
    }

    /// A verifier refusal of program `name` caused by a CO-RE relocation the target BTF cannot satisfy, said as
    /// libbpf says it (the type, the field, the program) instead of the verifier's `invalid func unknown#...`.
    fn explain_core_failure(&self, name: &str, error: Deferred) -> Deferred {
        if self.core_failures.is_empty() {
            return error;
        }
        let program_error = match &error {
            Deferred::Program(_, program_error)
            | Deferred::TracePoint {
                error: program_error,
                ..
            } => program_error,
            _ => return error,
        };
        let ProgramError::LoadError { verifier_log, .. } = &**program_error else {
            return error;
        };
        let log = verifier_log.to_string();
        match crate::object_pass::core_failure_message(name, &log, &self.core_failures) {
            Some(message) => Deferred::Plain(Kind::Load, message),
            None => error,
        }
    }

    /// The `Owner` its map handles keep: this object, and its logs through `LogOwner`.
    fn owner_of(slf: &Bound<'_, Self>) -> PyResult<Owner> {
        Owner::new(slf.as_any(), |object| {
            object
                .cast::<Self>()
                .ok()
                .map(|ebpf| ebpf.get() as &dyn LogOwner)
        })
    }

    pub fn wake_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.log_wake_fd.as_ref().map(|fd| fd.as_fd())
    }

    /// Reads pending log records and passes each to the handler (level, target, message).
    pub fn flush_logs_inner(&self, py: Python<'_>) -> PyResult<usize> {
        py.detach(|| {
            if let Some(object) = self.lock().as_mut() {
                if let Some(logger) = object.logger.as_mut() {
                    logger.flush();
                }
            }
        });
        let records = self.log_queue.take();
        let count = records.len();
        let handler = self
            .log_handler
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|h| h.clone_ref(py));
        if let Some(handler) = handler {
            for record in records {
                handler.call1(py, (record.level, record.target, record.message))?;
            }
        }
        Ok(count)
    }
}

#[pyaya_guard::guard(Object)]
#[pymethods]
impl Ebpf {
    /// Loads an object from its bytes: creates its maps and prepares (but does not load) its programs.
    ///
    /// `log_level` (aya-log's numbering: 0 off, 1 error ... 5 trace) is written into the object's
    /// `AYA_LOG_LEVEL` global, so records above it are never sent by the kernel; objects without aya-log
    /// statements have no such global and load unchanged. `pin_maps` pins every map by name into that bpffs
    /// folder, reusing pins of the same shape. `target_btf` (a raw BTF blob) replaces the kernel's BTF for CO-RE
    /// relocations, as libbpf's `btf_custom_path` does. The programs named in `extensions` are prepared as
    /// Extension (freplace) programs whatever their section says (aya's `EbpfLoader::extension`).
    #[staticmethod]
    #[pyo3(signature = (
        data, *, globals = None, max_entries = None, log_level = None, pin_maps = None, target_btf = None,
        kconfig = None, extensions = None
    ))]
    #[allow(clippy::too_many_arguments, reason = "Python's keyword arguments")]
    fn load(
        py: Python<'_>,
        data: &[u8],
        globals: Option<HashMap<String, Vec<u8>>>,
        max_entries: Option<HashMap<String, u32>>,
        log_level: Option<u8>,
        pin_maps: Option<PathBuf>,
        target_btf: Option<Vec<u8>>,
        kconfig: Option<HashMap<String, String>>,
        extensions: Option<Vec<String>>,
    ) -> PyResult<Self> {
        pyaya_core::elf::check_for_aya(data)
            .map_err(|err| new_err(Kind::Object, format!("not a valid BPF object: {err}")))?;
        // pyaya's object pass: what aya refuses in libbpf-style objects, rewritten before aya sees them.
        let prepared = crate::object_pass::prepare(py, data, kconfig, target_btf.as_deref())?;
        let core_failures = prepared.core_failures;
        let prepared = prepared.data;
        let original = data;
        let rewritten = prepared.is_some();
        let data = prepared.as_deref().unwrap_or(data);
        let globals = globals.unwrap_or_default();
        let max_entries = max_entries.unwrap_or_default();
        let log_queue = LogQueue::default();
        let queue = log_queue.clone();
        let (ebpf, logger, sections, map_pins, perf_arrays, multi_code) = py.detach(move || {
            // The object as given was checked above; a rewritten one is checked again as aya will see it.
            if rewritten {
                pyaya_core::elf::check_for_aya(data).map_err(|err| {
                    Deferred::Plain(Kind::Object, format!("not a valid BPF object: {err}"))
                })?;
            }
            let utf8 = pyaya_core::elf::utf8_btf_strings(data);
            let data = utf8.as_deref().unwrap_or(data);
            let object = aya_obj::Object::parse(data).map_err(|err| {
                Deferred::Plain(
                    Kind::Object,
                    format!("not a valid BPF object: {}", errors::chain_message(&err)),
                )
            })?;
            load_options::check(&object, data, &globals, &max_entries)?;
            let extensions = extensions.unwrap_or_default();
            load_options::check_extensions(&object, &extensions)?;
            let target_btf = target_btf
                .map(|blob| {
                    aya_obj::btf::Btf::parse(&blob, object::Endianness::default()).map_err(|err| {
                        Deferred::Plain(
                            Kind::InvalidArgument,
                            format!(
                                "btf= is not BTF aya can use: {}",
                                errors::chain_message(&err)
                            ),
                        )
                    })
                })
                .transpose()?;
            let pins = match &pin_maps {
                Some(directory) => Some(pinning::pin_paths(&object, directory, &max_entries)?),
                None => None,
            };
            let pinned: Vec<String> = pins
                .iter()
                .flat_map(|pins| pins.paths.iter().map(|(name, _)| name.clone()))
                .collect();
            // Declared before the loader, which borrows its paths; its pins go once aya holds the maps.
            let ahead = crate::globals::create_ahead(&object, &pinned);
            drop(object);
            let mut loader =
                if target_btf.is_none() && !pyaya_core::object_pass::has_core_relocations(data) {
                    loader_without_kernel_btf()
                } else {
                    EbpfLoader::new()
                };
            if let Some(btf) = &target_btf {
                loader.btf(Some(btf));
            }
            for (name, path) in &ahead.paths {
                loader.map_pin_path(name.as_str(), path.as_path());
            }
            if let Some(level) = &log_level {
                // Not required to exist: only objects with aya-log statements have it.
                loader.override_global(aya_log::LEVEL, level, false);
            }
            for (name, value) in &globals {
                loader.override_global(name.as_str(), value.as_slice(), true);
            }
            for (name, entries) in &max_entries {
                loader.map_max_entries(name.as_str(), *entries);
            }
            for name in &extensions {
                loader.extension(name.as_str());
            }
            for (name, path) in pins.iter().flat_map(|pins| &pins.paths) {
                loader.map_pin_path(name.as_str(), path.as_path());
            }
            // aya may panic after it created (and pinned) maps, in its relocation code: the pins made by this
            // load go either way, and the panic is reported as the guard would.
            let loaded = pyaya_core::panic::catch(|| loader.load(data));
            let mut ebpf = loaded
                .map_err(|panic| Deferred::Panic(Kind::Object, "Ebpf.load", panic))
                .and_then(|result| result.map_err(|err| Deferred::Ebpf(Box::new(err))))
                .inspect_err(|_| {
                    if let Some(pins) = &pins {
                        pins.remove_new();
                    }
                })?;
            if let Some(pins) = &pins {
                pins.set_modes()?;
            }
            let sections = crate::program_types::program_sections(original);
            // Before any map is taken from aya: every map fd is still there to relocate against.
            let multi_code = multi_load::relocate(data, &sections, &ebpf, target_btf.as_ref())?;
            let logger = match EbpfLogger::init_with_logger(&mut ebpf, queue) {
                Ok(logger) => Some(logger),
                // An object without aya-log statements has no AYA_LOGS map: nothing to read.
                Err(aya_log::Error::MapNotFound) => None,
                Err(err) => {
                    return Err(Deferred::Plain(
                        Kind::Load,
                        format!(
                            "reading the object's aya-log records failed: {}",
                            errors::chain_message(&err)
                        ),
                    ))
                }
            };
            let perf_arrays = open_perf_arrays(&mut ebpf);
            let map_pins: HashMap<String, PathBuf> = pins
                .map(|pins| pins.paths.into_iter().collect())
                .unwrap_or_default();
            Ok::<_, Deferred>((ebpf, logger, sections, map_pins, perf_arrays, multi_code))
        })?;
        let log_wake_fd = match &logger {
            Some(logger) => Some(logger.as_fd().try_clone_to_owned().map_err(|err| {
                new_err(
                    Kind::Load,
                    format!("duplicating the log ring buffer fd: {err}"),
                )
            })?),
            None => None,
        };
        Ok(Self {
            state: Mutex::new(Some(LoadedObject {
                ebpf,
                taken_maps: Vec::new(),
                links: Vec::new(),
                logger,
                pinned_programs: HashMap::new(),
                perf_arrays,
                multi_code,
                multi_loaded: HashMap::new(),
            })),
            log_queue,
            log_handler: Mutex::new(None),
            log_wake_fd,
            sections,
            map_pins,
            core_failures,
        })
    }

    /// `(name, type)` of every program in the object, sorted by name.
    fn programs(&self) -> PyResult<Vec<(String, &'static str)>> {
        self.with_object(|object| {
            let mut list: Vec<_> = object
                .ebpf
                .programs()
                .map(|(name, program)| (name.to_owned(), self.kind_of(name, program)))
                .collect();
            list.sort();
            Ok(list)
        })
        .map_err(PyErr::from)
    }

    /// The data section `section` (`.bss`, `.data`, `.rodata`...) as a `GlobalArea`: memory-mapped where the
    /// kernel allows it. `NotFoundError` when the object has no such section.
    fn global_area(&self, py: Python<'_>, section: &str) -> PyResult<crate::globals::GlobalArea> {
        py.detach(|| {
            self.with_object(|object| {
                let map = object.ebpf.map(section).ok_or_else(|| {
                    Deferred::Plain(
                        Kind::NotFound,
                        format!("the object has no data section {section:?}"),
                    )
                })?;
                let data = maps::map_data(map);
                let info = data.info().map_err(|err| {
                    Deferred::Plain(Kind::Map, format!("reading {section}'s map info: {err}"))
                })?;
                let fd = data.fd().as_fd().try_clone_to_owned().map_err(|err| {
                    Deferred::Plain(Kind::Map, format!("duplicating {section}'s fd: {err}"))
                })?;
                // BPF_F_RDONLY_PROG: aya's .rodata, which it froze after writing the initial data.
                let frozen = info.map_flags() & (1 << 7) != 0;
                Ok(crate::globals::GlobalArea::open(
                    fd,
                    info.value_size() as usize,
                    frozen,
                    section,
                ))
            })
        })
        .map_err(PyErr::from)
    }

    /// `(name, type)` of every map in the object, including those already handed out, sorted by name.
    fn maps(&self) -> PyResult<Vec<(String, &'static str)>> {
        self.with_object(|object| {
            let mut list: Vec<_> = object
                .ebpf
                .maps()
                .map(|(name, map)| (name.to_owned(), maps::map_kind_of(map)))
                .collect();
            list.extend(
                object
                    .taken_maps
                    .iter()
                    .map(|(name, _, slot)| (name.clone(), slot.kind())),
            );
            list.extend(
                object
                    .perf_arrays
                    .iter()
                    .map(|(name, _)| (name.clone(), "PerfEventArray")),
            );
            list.sort();
            Ok(list)
        })
        .map_err(PyErr::from)
    }

    /// A handle on one program.
    fn program(slf: &Bound<'_, Self>, name: &str) -> PyResult<Program> {
        let kind = slf.get().with_object(|object| {
            let this = slf.get();
            object
                .ebpf
                .program(name)
                .map(|program| this.kind_of(name, program))
                .ok_or_else(|| {
                    let mut names: Vec<_> =
                        object.ebpf.programs().map(|(n, _)| n.to_owned()).collect();
                    names.sort();
                    Deferred::Plain(
                        Kind::NotFound,
                        format!(
                            "no program named {name:?}; the object has: {}",
                            names.join(", ")
                        ),
                    )
                })
        })?;
        Ok(Program {
            ebpf: slf.clone().unbind(),
            name: name.to_owned(),
            kind,
        })
    }

    /// The map named `name`: a `RingBuf` for ring buffers, a `Map` for everything else. The same object each time.
    fn map(slf: &Bound<'_, Self>, name: &str) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        this.with_object(|object| {
            if let Some((_, existing, _)) = object.taken_maps.iter().find(|(n, _, _)| n == name) {
                return Ok(existing.clone_ref(py));
            }
            let at_load = object
                .perf_arrays
                .iter()
                .position(|(n, _)| n == name)
                .map(|index| object.perf_arrays.remove(index).1);
            let wake_on_logs = this.log_wake_fd.is_some();
            let owner = Ebpf::owner_of(slf).map_err(Deferred::from)?;
            let (handle, slot) = match at_load {
                Some(PerfArrayAtLoad::Open(shared, shape)) => {
                    maps::wrap_perf(py, Some(owner), name, shared, wake_on_logs, shape)?
                }
                Some(PerfArrayAtLoad::Failed(data)) => {
                    maps::wrap_data(py, Some(owner), name, data, wake_on_logs)?
                }
                None => match object.ebpf.take_map(name) {
                    Some(map) => maps::wrap(py, owner, name, map, wake_on_logs)?,
                    None => return Err(not_found(object, name)),
                },
            };
            if let Some(path) = this.map_pins.get(name) {
                maps::set_pinned_path(handle.bind(py), path.clone())?;
            }
            object
                .taken_maps
                .push((name.to_owned(), handle.clone_ref(py), slot));
            Ok(handle)
        })
        .map_err(PyErr::from)
    }

    /// Sets the callable that receives aya-log records as `(level, target, message)`; `None` drops them.
    fn set_log_handler(&self, handler: Option<Py<PyAny>>) {
        *self
            .log_handler
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = handler;
    }

    /// Reads pending aya-log records into the log handler; returns how many there were.
    fn flush_logs(&self, py: Python<'_>) -> PyResult<usize> {
        self.flush_logs_inner(py)
    }

    /// Whether the object is still loaded.
    #[getter]
    fn closed(&self) -> bool {
        self.lock().is_none()
    }

    /// Detaches every link no `Link` handle holds, unloads every program and closes every map. Safe to call more
    /// than once.
    fn close(&self, py: Python<'_>) {
        let object = self.lock().take();
        if let Some(object) = object {
            for (_, _, slot) in &object.taken_maps {
                slot.close();
            }
            // Letting go of the links detaches those no handle holds (a pinned one stays pinned); the object's drop
            // then unloads its programs: the kernel keeps a program while a link still holds it.
            py.detach(move || drop(object));
        }
    }
}

/// One program of a loaded object, by name.
#[pyclass(module = "pyaya._native", frozen)]
pub struct Program {
    ebpf: Py<Ebpf>,
    name: String,
    kind: &'static str,
}

macro_rules! for_loadable {
    ($program:expr, $p:ident => $body:expr, $other:ident => $fallback:expr) => {
        match $program {
            AyaProgram::TracePoint($p) => $body,
            AyaProgram::RawTracePoint($p) => $body,
            AyaProgram::KProbe($p) => $body,
            AyaProgram::UProbe($p) => $body,
            AyaProgram::SocketFilter($p) => $body,
            AyaProgram::Xdp($p) => $body,
            AyaProgram::SchedClassifier($p) => $body,
            AyaProgram::CgroupSkb($p) => $body,
            AyaProgram::CgroupSysctl($p) => $body,
            AyaProgram::SockOps($p) => $body,
            AyaProgram::SkMsg($p) => $body,
            AyaProgram::PerfEvent($p) => $body,
            AyaProgram::SkLookup($p) => $body,
            AyaProgram::FlowDissector($p) => $body,
            AyaProgram::CgroupDevice($p) => $body,
            AyaProgram::CgroupSock($p) => $body,
            AyaProgram::CgroupSockAddr($p) => $body,
            AyaProgram::CgroupSockopt($p) => $body,
            AyaProgram::SkSkb($p) => $body,
            AyaProgram::SkReuseport($p) => $body,
            AyaProgram::ReusePortSocketFilter($p) => $body,
            AyaProgram::LircMode2($p) => $body,
            $other => $fallback,
        }
    };
}

#[pyaya_guard::guard(Program)]
#[pymethods]
impl Program {
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The program's type, e.g. `"TracePoint"`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind
    }

    /// Whether the program's object is closed (then nothing else about the program can be asked).
    #[getter]
    fn closed(&self) -> bool {
        self.ebpf.get().lock().is_none()
    }

    /// Whether the program is loaded into the kernel.
    #[getter]
    fn loaded(&self) -> PyResult<bool> {
        self.ebpf
            .get()
            .with_program(&self.name, |program| Ok(program.fd().is_ok()))
            .map_err(PyErr::from)
    }

    /// Verifies and loads the program into the kernel (the GIL is released meanwhile).
    fn load(&self, py: Python<'_>) -> PyResult<()> {
        let context = format!("loading program {:?}", self.name);
        if matches!(self.kind, "UProbeMulti" | "KProbeMulti") {
            py.detach(|| self.ebpf.get().load_multi(&self.name))
                .map_err(|err| err.into_err(self.needs()))?;
            return Ok(());
        }
        py.detach(|| {
            self.ebpf.get().with_program(&self.name, |program| {
                let result = for_loadable!(program, p => p.load(), other => {
                    return Err(crate::program_types::needs_arguments(&self.name, program_kind(other)))
                });
                result.map_err(|err| Deferred::Program(context, Box::new(err)))
            })
        })
        .map_err(|err| err.into_err(self.needs()))?;
        Ok(())
    }

    /// Unloads the program, detaching the links no `Link` handle holds (those held stay attached, and keep the
    /// program in the kernel, until they are detached or dropped).
    fn unload(&self, py: Python<'_>) -> PyResult<()> {
        let context = format!("unloading program {:?}", self.name);
        py.detach(|| {
            self.ebpf.get().with_object(|object| {
                let (kept, others) = std::mem::take(&mut object.links)
                    .into_iter()
                    .partition(|(program, _)| *program == self.name);
                object.links = others;
                drop::<Vec<(String, SharedLink)>>(kept);
                Ok(())
            })?;
            self.ebpf.get().with_program(&self.name, |program| {
                let result = crate::program_types::for_every_program!(program, p => p.unload());
                result.map_err(|err| Deferred::Program(context, Box::new(err)))
            })
        })?;
        Ok(())
    }

    /// Makes `link` (attached by this object, another one, or opened from a pin) run this program instead of
    /// its current one, atomically (`BPF_LINK_UPDATE`, aya's `attach_to_link`): no packet or event meets no
    /// program. With `replacing`, only while the link still runs that program. The link then belongs to this
    /// program (its `links`, its `unload()`), and `link.program` names it.
    #[pyo3(signature = (link, *, replacing = None))]
    fn attach_to_link(
        &self,
        py: Python<'_>,
        link: &Link,
        replacing: Option<&Program>,
    ) -> PyResult<()> {
        const REPLACEABLE: [&str; 12] = [
            "Xdp",
            "SchedClassifier",
            "CgroupSkb",
            "CgroupSock",
            "CgroupSockAddr",
            "CgroupSockopt",
            "CgroupSysctl",
            "CgroupDevice",
            "SockOps",
            "SkLookup",
            "FlowDissector",
            "LsmCgroup",
        ];
        if !REPLACEABLE.contains(&self.kind) {
            return Err(new_err(
                Kind::Unsupported,
                format!(
                    "attaching {:?} to an existing link: the kernel replaces the program of XDP, tcx, cgroup, \
                     sock_ops, sk_lookup, flow dissector and lsm_cgroup links only, not of a {} program's; \
                     detach the old link and attach this program",
                    self.name, self.kind
                ),
            ));
        }
        let expected = match replacing {
            Some(old) => Some(
                old.with_program(|program| {
                    program
                        .fd()
                        .and_then(|fd| fd.as_fd().try_clone_to_owned().map_err(ProgramError::from))
                        .map_err(|err| {
                            Deferred::Program(
                                format!("replacing: program {:?}", old.name),
                                Box::new(err),
                            )
                        })
                })
                .map_err(PyErr::from)?,
            ),
            None => None,
        };
        let context = format!("attaching {:?} to an existing link", self.name);
        py.detach(|| {
            self.ebpf.get().with_object(|object| {
                let program = object.program_mut(&self.name).ok_or_else(|| {
                    Deferred::Plain(Kind::NotFound, format!("no program named {:?}", self.name))
                })?;
                let fd = program
                    .fd()
                    .and_then(|fd| fd.as_fd().try_clone_to_owned().map_err(ProgramError::from))
                    .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?;
                let id = program
                    .info()
                    .map_err(|err| Deferred::Program(context.clone(), Box::new(err)))?
                    .id();
                link.replace_program(
                    fd.as_fd(),
                    &self.name,
                    id,
                    expected.as_ref().map(AsFd::as_fd),
                )?;
                let shared = link.state();
                object
                    .links
                    .retain(|(_, kept)| !Arc::ptr_eq(kept, shared) && is_attached(kept));
                object.links.push((self.name.clone(), shared.clone()));
                Ok(())
            })
        })
        .map_err(|err| err.into_err(self.needs()))?;
        Ok(())
    }

    /// New handles on the attachments this program keeps (those not detached), oldest first.
    fn links(&self) -> PyResult<Vec<Link>> {
        self.ebpf
            .get()
            .with_object(|object| {
                // A link another program took over (`attach_to_link`) is no longer this program's.
                let own_id = object
                    .program_mut(&self.name)
                    .and_then(|program| program.info().ok())
                    .map(|info| info.id());
                Ok(object
                    .links
                    .iter()
                    .filter(|(program, link)| {
                        *program == self.name && is_attached(link) && runs_program(link, own_id)
                    })
                    .map(|(program, link)| Link::shared(program, link.clone()))
                    .collect())
            })
            .map_err(PyErr::from)
    }

    /// The kernel's view of the loaded program: id, tag, type, name, run count and run time.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let context = format!("reading info of program {:?}", self.name);
        let info = self.ebpf.get().with_program(&self.name, |program| {
            program
                .info()
                .map_err(|err| Deferred::Program(context, Box::new(err)))
        })?;
        program_info_dict(py, &info)
    }
}

/// Everything the kernel's `bpf_prog_info` says about a program, under bpftool's names where it has them; a field
/// the kernel leaves out (an older kernel, or one that hides it) is `None`.
fn program_info_dict<'py>(
    py: Python<'py>,
    info: &aya::programs::ProgramInfo,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("id", info.id())?;
    dict.set_item("tag", format!("{:016x}", info.tag()))?;
    dict.set_item("type", info.program_type() as u32)?;
    dict.set_item("name", info.name_as_str().unwrap_or_default())?;
    dict.set_item("run_count", info.run_count())?;
    dict.set_item("run_time_ns", info.run_time().as_nanos() as u64)?;
    dict.set_item("bytes_jited", info.size_jitted())?;
    dict.set_item("bytes_xlated", info.size_translated())?;
    let loaded_at = info
        .loaded_at()
        .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|since| since.as_secs_f64());
    dict.set_item("loaded_at", loaded_at)?;
    dict.set_item("uid", info.created_by_uid())?;
    dict.set_item("map_ids", info.map_ids().ok().flatten())?;
    dict.set_item("btf_id", info.btf_id())?;
    dict.set_item("verified_insns", info.verified_instruction_count())?;
    dict.set_item("bytes_memlock", info.memory_locked().ok())?;
    dict.set_item("gpl_compatible", info.gpl_compatible())?;
    Ok(dict)
}

impl Program {
    pub fn name_str(&self) -> &str {
        &self.name
    }

    /// Runs `f` on this program inside its object (see `Ebpf::with_object`).
    pub fn with_program<T>(
        &self,
        f: impl FnOnce(&mut AyaProgram) -> Result<T, Deferred>,
    ) -> Result<T, Deferred> {
        self.ebpf.get().with_program(&self.name, f)
    }

    /// Attaches through `attach`, which runs with the GIL released on this program and returns aya's owned link
    /// (`take_link`); the result is registered with the object so that closing it detaches the link.
    pub fn attach_with(
        &self,
        py: Python<'_>,
        attach: impl FnOnce(&mut AyaProgram) -> Result<Box<dyn OwnedLink>, Deferred> + Send,
    ) -> PyResult<Link> {
        let link = py
            .detach(|| {
                self.ebpf.get().with_object(|object| {
                    let program = object.program_mut(&self.name).ok_or_else(|| {
                        Deferred::Plain(Kind::NotFound, format!("no program named {:?}", self.name))
                    })?;
                    let owned = attach(program)?;
                    let (link, shared) = Link::new(&self.name, owned);
                    object.links.retain(|(_, kept)| is_attached(kept));
                    object.links.push((self.name.clone(), shared));
                    Ok(link)
                })
            })
            .map_err(|err| err.into_err(self.needs()))?;
        Ok(link)
    }

    /// The capabilities loading and attaching this program's type needs (named in permission errors).
    pub fn needs(&self) -> errors::Needs {
        errors::Needs::for_program(self.kind)
    }

    /// A duplicate of the fd of the object's map `name`, whether aya still holds it or it was handed to Python;
    /// `None` when the object has no such map (or it was closed).
    pub fn map_fd(&self, name: &str) -> Result<Option<OwnedFd>, Deferred> {
        self.ebpf.get().with_object(|object| {
            let duplicate = if let Some(map) = object.ebpf.map(name) {
                Some(maps::map_data(map).fd().as_fd().try_clone_to_owned())
            } else {
                object
                    .taken_maps
                    .iter()
                    .find(|(taken, _, _)| taken == name)
                    .and_then(|(_, _, slot)| slot.duplicate_fd())
            };
            duplicate.transpose().map_err(|err| {
                Deferred::Plain(
                    Kind::Map,
                    format!("duplicating the fd of map {name:?}: {err}"),
                )
            })
        })
    }

    #[allow(dead_code, reason = "for maps that store program fds (ProgramArray)")]
    /// Runs `f` with the loaded program's fd (e.g. to store it in a ProgramArray), holding the object's lock.
    pub fn with_fd<T>(
        &self,
        f: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> Result<T, Deferred>,
    ) -> Result<T, Deferred> {
        let name = self.name.clone();
        self.with_program(|program| {
            let fd = program.fd().map_err(|_| {
                Deferred::Plain(
                    Kind::Program,
                    format!("program {name:?} is not loaded; call load() first"),
                )
            })?;
            f(fd.as_fd())
        })
    }
}

/// "No map named ...", listing the maps the object has.
fn not_found(object: &LoadedObject, name: &str) -> Deferred {
    let mut names: Vec<_> = object.ebpf.maps().map(|(n, _)| n.to_owned()).collect();
    names.extend(object.taken_maps.iter().map(|(n, _, _)| n.clone()));
    names.extend(object.perf_arrays.iter().map(|(n, _)| n.clone()));
    names.sort();
    Deferred::Plain(
        Kind::NotFound,
        format!(
            "no map named {name:?}; the object has: {}",
            names.join(", ")
        ),
    )
}

pub fn wrong_kind(name: &str, actual: &str, expected: &str) -> Deferred {
    Deferred::Plain(
        Kind::Program,
        format!("program {name:?} is a {actual} program, not a {expected}"),
    )
}

/// `(id, name, type)` of every program loaded in the kernel, whoever loaded it.
#[pyaya_guard::guard(Program)]
#[pyfunction]
pub fn loaded_programs(py: Python<'_>) -> PyResult<Vec<(u32, String, u32)>> {
    py.detach(|| {
        let mut list = Vec::new();
        for info in aya::programs::loaded_programs() {
            let info = match info {
                Ok(info) => info,
                // Unloaded between being listed and being opened (the kernel frees programs asynchronously).
                Err(err) if errors::errno_of(&err) == Some(libc::ENOENT) => continue,
                Err(err) => {
                    return Err(Deferred::Program(
                        "listing loaded programs".into(),
                        Box::new(err),
                    ))
                }
            };
            list.push((
                info.id(),
                info.name_as_str().unwrap_or_default().to_owned(),
                info.program_type() as u32,
            ));
        }
        Ok::<_, Deferred>(list)
    })
    .map_err(PyErr::from)
}

/// `(id, program id, type)` of every bpf_link in the kernel, whoever made it; the type as aya names it
/// (`"Xdp"`, `"Tcx"`, `"PerfEvent"`, ...).
#[pyaya_guard::guard(Program)]
#[pyfunction]
pub fn loaded_links(py: Python<'_>) -> PyResult<Vec<(u32, u32, String)>> {
    py.detach(|| {
        let mut list = Vec::new();
        for info in aya::programs::loaded_links() {
            let info = match info {
                Ok(info) => info,
                // Freed between being listed and being opened (ENOENT), or still being set up or torn down: the
                // kernel answers EAGAIN for a link whose id is not yet (or no longer) published.
                Err(err) if matches!(errors::errno_of(&err), Some(libc::ENOENT | libc::EAGAIN)) => {
                    continue
                }
                Err(err) => {
                    return Err(Deferred::Plain(
                        if errors::errno_of(&err) == Some(libc::EPERM) {
                            Kind::PermissionDenied
                        } else {
                            Kind::Program
                        },
                        format!(
                            "listing bpf_links: {} (needs root or CAP_SYS_ADMIN)",
                            errors::chain_message(&err)
                        ),
                    ))
                }
            };
            let kind = info
                .link_type()
                .map_or_else(|_| "Unknown".to_owned(), |kind| format!("{kind:?}"));
            list.push((info.id(), info.program_id(), kind));
        }
        Ok::<_, Deferred>(list)
    })
    .map_err(PyErr::from)
}

/// `(id, name, type number)` of every map in the kernel, whoever created it.
#[pyaya_guard::guard(Map)]
#[pyfunction]
pub fn loaded_maps(py: Python<'_>) -> PyResult<Vec<(u32, String, u32)>> {
    py.detach(|| {
        let mut list = Vec::new();
        for info in aya::maps::loaded_maps() {
            let info = match info {
                Ok(info) => info,
                // Freed between being listed and being opened.
                Err(err) if errors::errno_of(&err) == Some(libc::ENOENT) => continue,
                Err(err) => {
                    return Err(Deferred::Plain(
                        if errors::errno_of(&err) == Some(libc::EPERM) {
                            Kind::PermissionDenied
                        } else {
                            Kind::Map
                        },
                        format!(
                            "listing maps: {} (needs root or CAP_SYS_ADMIN)",
                            errors::chain_message(&err)
                        ),
                    ))
                }
            };
            list.push((
                info.id(),
                info.name_as_str().unwrap_or_default().to_owned(),
                info.map_type().map_or(u32::MAX, |kind| kind as u32),
            ));
        }
        Ok::<_, Deferred>(list)
    })
    .map_err(PyErr::from)
}

/// Waits until every BPF program run that started before the call has finished (an RCU grace period), so that
/// after detaching, a program's effects on maps are final. Returns False when the kernel cannot say (no
/// `membarrier`); the caller then waits a little itself.
#[pyaya_guard::guard(Program)]
#[pyfunction]
pub fn wait_for_running_programs(py: Python<'_>) -> PyResult<bool> {
    py.detach(crate::sys::rcu_grace_period)
        .map_err(|err| errors::from_map_io("waiting for running BPF programs (membarrier)", &err))
}

// --- programs opened from a pin, and section names (used by programs_common.rs and programs_tracing.rs) ---

/// The smallest ELF object aya parses: a 64-bit little-endian eBPF relocatable file with no sections. aya's `Ebpf`
/// can only be made from an object, and a program opened from a pin needs an owner whose close and unload paths
/// are those of every other program.
const EMPTY_OBJECT: [u8; 64] = {
    let mut header = [0u8; 64];
    let ident = [0x7f, b'E', b'L', b'F', 2, 1, 1];
    let mut i = 0;
    while i < ident.len() {
        header[i] = ident[i];
        i += 1;
    }
    header[16] = 1; // e_type = ET_REL
    header[18] = 247; // e_machine = EM_BPF
    header[20] = 1; // e_version
    header[52] = 64; // e_ehsize
    header[58] = 64; // e_shentsize
    header
};

/// A loader that has not read the kernel's BTF. aya 0.14's `EbpfLoader::new()` parses `/sys/kernel/btf/vmlinux`
/// (~20 ms and ~16 MiB here) for CO-RE relocations, its only use of it, and offers no constructor without: for an
/// object without CO-RE relocations that parse is built on a thread whose root is `/sys/kernel/btf`, where the path
/// does not exist, so aya's parse finds no file. Where the thread cannot change its root, the parse happens and is
/// dropped.
fn loader_without_kernel_btf() -> EbpfLoader<'static> {
    crate::sys::with_private_root(std::path::Path::new("/sys/kernel/btf"), EbpfLoader::new)
        .unwrap_or_else(|| {
            let mut loader = EbpfLoader::new();
            loader.btf(None);
            loader
        })
}

impl Ebpf {
    /// An object holding only `program`, opened from a pin under the name `name`.
    pub fn for_pinned_program(name: &str, program: AyaProgram) -> Result<Self, Deferred> {
        let ebpf = loader_without_kernel_btf()
            .load(&EMPTY_OBJECT)
            .map_err(|err| Deferred::Ebpf(Box::new(err)))?;
        let mut pinned_programs = HashMap::new();
        pinned_programs.insert(name.to_owned(), program);
        Ok(Self {
            state: Mutex::new(Some(LoadedObject {
                ebpf,
                taken_maps: Vec::new(),
                links: Vec::new(),
                logger: None,
                pinned_programs,
                perf_arrays: Vec::new(),
                multi_code: HashMap::new(),
                multi_loaded: HashMap::new(),
            })),
            log_queue: LogQueue::default(),
            log_handler: Mutex::new(None),
            log_wake_fd: None,
            sections: HashMap::new(),
            map_pins: HashMap::new(),
            core_failures: Vec::new(),
        })
    }
}

impl Program {
    pub fn new(ebpf: Py<Ebpf>, name: &str, kind: &'static str) -> Self {
        Self {
            ebpf,
            name: name.to_owned(),
            kind,
        }
    }

    pub const fn kind_str(&self) -> &'static str {
        self.kind
    }

    /// The ELF section the program came from (e.g. `fentry/do_unlinkat`); `None` for a program opened from a pin.
    pub fn section_name(&self) -> Option<&str> {
        self.ebpf.get().sections.get(&self.name).map(String::as_str)
    }
}
// --- end of programs opened from a pin ---

impl LogOwner for Ebpf {
    fn wake_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        Self::wake_fd(self)
    }

    fn flush_logs(&self, py: Python<'_>) -> PyResult<usize> {
        self.flush_logs_inner(py)
    }
}
