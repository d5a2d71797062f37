//! Loading multi-point probes (`uprobe.multi`, `kprobe.multi` sections), which aya 0.14 cannot: aya-obj 0.3 has no
//! such sections (the object pass renames them to plain `uprobe`/`kprobe` ones, so aya prepares them as single
//! probes) and aya's `UProbe`/`KProbe::load` pass no `expected_attach_type`, which the kernel requires to be
//! `BPF_TRACE_UPROBE_MULTI`/`BPF_TRACE_KPROBE_MULTI` for a multi link.
//!
//! So at `Ebpf.load` pyaya relocates those programs' instructions itself, as aya does, with aya-obj: the object
//! aya loaded is parsed again, CO-RE relocated when it has CO-RE records, its map references pointed at the fds of
//! the maps aya created for this `Ebpf`, its calls linked. `Program.load` then runs `BPF_PROG_LOAD` (`sys.rs`)
//! with the multi attach type, and hands the fd to aya as a `UProbe`/`KProbe` opened from a momentary pin in bpffs
//! (aya makes typed programs from pins only), so pin, info, unload and the object's close work as for any program.
//!
//! The load passes no BTF, hence no func_info or line_info: aya keeps the object's BTF fd private. Programs load
//! the same without them, except those using callbacks (`bpf_loop`, `bpf_for_each_map_elem`, timers), which the
//! verifier refuses as "missing btf func_info": that refusal is reported as such (`load`). Verifier logs then name
//! instructions, not source lines. aya's helper sanitizing for old kernels is skipped too: multi links need 5.18
//! (kprobe) or 6.6 (uprobe), which have every helper aya would replace.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::os::fd::{AsFd as _, AsRawFd as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use aya::programs::{KProbe, ProbeKind, Program as AyaProgram, ProgramError, UProbe};
use aya::Ebpf as AyaEbpf;
use aya_obj::generated::bpf_insn;
use pyaya_core::object_pass::{multi_probe, MultiProbe};

use crate::errors::{chain_message, Deferred, Kind};
use crate::sys;

/// A multi-point probe's instructions, relocated for the maps of its `Ebpf`, ready for `BPF_PROG_LOAD`.
pub struct MultiCode {
    pub probe: MultiProbe,
    instructions: Vec<bpf_insn>,
    license: CString,
    kernel_version: u32,
}

// SAFETY: `bpf_insn` is plain data (the kernel's instruction struct); nothing in it points anywhere.
unsafe impl Send for MultiCode {}

/// The program kind pyaya gives a program of ELF section `section`: `UProbeMulti`/`KProbeMulti` for multi-point
/// probes, `None` for the others (aya's kind stands).
pub fn kind_of_section(section: &str) -> Option<&'static str> {
    multi_probe(section).map(|probe| {
        if probe.kernel {
            "KProbeMulti"
        } else {
            "UProbeMulti"
        }
    })
}

fn object_error(what: &str, error: &(dyn std::error::Error + 'static)) -> Deferred {
    Deferred::Plain(
        Kind::Object,
        format!(
            "preparing the object's multi-point probes: {what}: {}",
            chain_message(error)
        ),
    )
}

/// The relocated code of every multi-point probe of the object `data` (the bytes aya loaded into `ebpf`), by
/// program name; `sections` is each function's original ELF section. Empty, without parsing anything, when the
/// object has no multi-point probe.
pub fn relocate(
    data: &[u8],
    sections: &HashMap<String, String>,
    ebpf: &AyaEbpf,
    target_btf: Option<&aya::Btf>,
) -> Result<HashMap<String, MultiCode>, Deferred> {
    let multi: Vec<(&String, MultiProbe)> = ebpf
        .programs()
        .filter_map(|(name, _)| {
            let (name, section) = sections.get_key_value(name)?;
            Some((name, multi_probe(section)?))
        })
        .collect();
    if multi.is_empty() {
        return Ok(HashMap::new());
    }
    let mut object =
        aya_obj::Object::parse(data).map_err(|err| object_error("parsing it again", &err))?;
    if object.has_btf_relocations() {
        // The same target aya relocated the other programs against: `btf=`, else the kernel's.
        let kernel;
        let btf = match target_btf {
            Some(btf) => btf,
            None => {
                kernel = aya::Btf::from_sys_fs().map_err(|err| {
                    object_error("reading the kernel's BTF for its CO-RE relocations", &err)
                })?;
                &kernel
            }
        };
        object
            .relocate_btf(btf)
            .map_err(|err| object_error("CO-RE relocations", &err))?;
    }
    let text_sections: HashSet<usize> = object.functions.keys().map(|(index, _)| *index).collect();
    let maps = std::mem::take(&mut object.maps);
    let fds: Vec<(&str, i32, &aya_obj::Map)> = maps
        .iter()
        .filter_map(|(name, map)| {
            let created = ebpf.map(name)?;
            let fd = crate::maps::map_data(created).fd().as_fd().as_raw_fd();
            Some((name.as_str(), fd, map))
        })
        .collect();
    object
        .relocate_maps(fds.into_iter(), &text_sections)
        .map_err(|err| object_error("map relocations", &err))?;
    object
        .relocate_calls(&text_sections)
        .map_err(|err| object_error("call relocations", &err))?;
    let mut code = HashMap::new();
    for (name, probe) in multi {
        let Some(program) = object.programs.get(name.as_str()) else {
            continue;
        };
        let Some(function) = object.functions.get(&program.function_key()) else {
            continue;
        };
        code.insert(
            name.clone(),
            MultiCode {
                probe,
                instructions: function.instructions.clone(),
                license: program.license.clone(),
                kernel_version: program.kernel_version.unwrap_or(0),
            },
        );
    }
    Ok(code)
}

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const BPFFS: &str = "/sys/fs/bpf";
static HANDOVER_PINS: AtomicU64 = AtomicU64::new(0);

/// Loads program `name` from `code` with its multi attach type, as the aya program that then holds its fd.
pub fn load(name: &str, code: &MultiCode) -> Result<AyaProgram, Deferred> {
    let context = format!("loading program {name:?}");
    let attach_type = if code.probe.kernel {
        sys::BPF_TRACE_KPROBE_MULTI
    } else {
        sys::BPF_TRACE_UPROBE_MULTI
    };
    let flags = if code.probe.sleepable {
        sys::BPF_F_SLEEPABLE
    } else {
        0
    };
    // SAFETY: `bpf_insn` is a plain 8-byte C struct (no padding), so a slice of them is a slice of u64 words.
    let words = unsafe {
        std::slice::from_raw_parts(
            code.instructions.as_ptr().cast::<u64>(),
            code.instructions.len(),
        )
    };
    let fd = sys::load_kprobe_program(
        words,
        &code.license,
        code.kernel_version,
        name,
        attach_type,
        flags,
    )
    .map_err(|(io_error, log)| {
        if log.contains("missing btf func_info") {
            return Deferred::Plain(
                Kind::Unsupported,
                format!(
                    "{context}: the program passes a callback (bpf_loop, bpf_for_each_map_elem, a timer...), which \
                     the kernel verifies only with the object's BTF func_info, and pyaya loads multi-point probes \
                     (uprobe.multi, kprobe.multi) without BTF; move the callback's work into the program itself, \
                     or attach it as a plain uprobe/kprobe once per function"
                ),
            );
        }
        if matches!(io_error.raw_os_error(), Some(libc::EINVAL)) && log.is_empty() {
            return Deferred::Plain(
                Kind::Unsupported,
                format!(
                    "{context}: the kernel refused its multi-point attach type ({io_error}): {} need kernel {} or \
                     later",
                    if code.probe.kernel {
                        "kprobe.multi programs"
                    } else {
                        "uprobe.multi programs"
                    },
                    if code.probe.kernel { "5.18" } else { "6.6" }
                ),
            );
        }
        Deferred::Program(
            context.clone(),
            Box::new(ProgramError::LoadError {
                io_error,
                verifier_log: aya_obj::VerifierLog::new(log),
            }),
        )
    })?;
    // aya opens typed programs only from bpffs pins: pinned here for the moment it takes, then unpinned.
    if sys::filesystem_type(std::path::Path::new(BPFFS)).ok() != Some(BPF_FS_MAGIC) {
        return Err(Deferred::Plain(
            Kind::Unsupported,
            format!(
                "{context}: pyaya hands multi-point probes to aya through a momentary pin in bpffs, which is not \
                 mounted at {BPFFS}: mount it with `mount -t bpf bpf {BPFFS}`"
            ),
        ));
    }
    // bpffs refuses names with a dot.
    let path = PathBuf::from(format!(
        "{BPFFS}/pyaya-multi-{}-{}",
        std::process::id(),
        HANDOVER_PINS.fetch_add(1, Ordering::Relaxed)
    ));
    sys::pin_object(fd.as_fd(), &path).map_err(|err| {
        Deferred::Plain(
            Kind::Program,
            format!("{context}: pinning it at {} for aya: {err}", path.display()),
        )
    })?;
    let kind = if code.probe.retprobe {
        ProbeKind::Return
    } else {
        ProbeKind::Entry
    };
    let opened = if code.probe.kernel {
        KProbe::from_pin(&path, kind).map(AyaProgram::KProbe)
    } else {
        UProbe::from_pin(&path, kind).map(AyaProgram::UProbe)
    };
    let mut program = match opened {
        Ok(program) => program,
        Err(err) => {
            let _ = std::fs::remove_file(&path);
            return Err(Deferred::Program(context, Box::new(err)));
        }
    };
    // Removes the pin and aya's memory of it, so `unpin()` later has nothing stale to remove.
    let unpinned = match &mut program {
        AyaProgram::KProbe(p) => p.unpin(),
        AyaProgram::UProbe(p) => p.unpin(),
        _ => Ok(()),
    };
    unpinned.map_err(|err| {
        Deferred::Plain(
            Kind::Program,
            format!(
                "{context}: removing its momentary pin {}: {err}",
                path.display()
            ),
        )
    })?;
    Ok(program)
}
