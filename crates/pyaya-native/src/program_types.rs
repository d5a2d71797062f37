//! What pyaya knows of program types apart from any loaded object: a `match` over every aya program variant, the
//! ELF section each program's function is in (BTF-based types take their target from it), and which `load()`
//! calls need arguments. Below `ebpf.rs` and `programs_*.rs`, which all use it.

use std::collections::HashMap;

use crate::errors::{Deferred, Kind};

/// Runs `$body` with `$p` bound to the typed program inside any `aya::programs::Program`.
macro_rules! for_every_program {
    ($program:expr, $p:ident => $body:expr) => {
        match $program {
            aya::programs::Program::KProbe($p) => $body,
            aya::programs::Program::UProbe($p) => $body,
            aya::programs::Program::TracePoint($p) => $body,
            aya::programs::Program::SocketFilter($p) => $body,
            aya::programs::Program::ReusePortSocketFilter($p) => $body,
            aya::programs::Program::Xdp($p) => $body,
            aya::programs::Program::SkMsg($p) => $body,
            aya::programs::Program::SkSkb($p) => $body,
            aya::programs::Program::CgroupSockAddr($p) => $body,
            aya::programs::Program::SockOps($p) => $body,
            aya::programs::Program::SchedClassifier($p) => $body,
            aya::programs::Program::CgroupSkb($p) => $body,
            aya::programs::Program::CgroupSysctl($p) => $body,
            aya::programs::Program::CgroupSockopt($p) => $body,
            aya::programs::Program::LircMode2($p) => $body,
            aya::programs::Program::PerfEvent($p) => $body,
            aya::programs::Program::RawTracePoint($p) => $body,
            aya::programs::Program::Lsm($p) => $body,
            aya::programs::Program::LsmCgroup($p) => $body,
            aya::programs::Program::BtfTracePoint($p) => $body,
            aya::programs::Program::FEntry($p) => $body,
            aya::programs::Program::FExit($p) => $body,
            aya::programs::Program::FlowDissector($p) => $body,
            aya::programs::Program::Extension($p) => $body,
            aya::programs::Program::SkLookup($p) => $body,
            aya::programs::Program::SkReuseport($p) => $body,
            aya::programs::Program::CgroupSock($p) => $body,
            aya::programs::Program::CgroupDevice($p) => $body,
            aya::programs::Program::Iter($p) => $body,
        }
    };
}
pub(crate) use for_every_program;

/// The ELF section of every function symbol, by name: aya names programs after their function, and BTF-based
/// program types (`fentry/do_unlinkat`, `tp_btf/sched_switch`, `iter/task`) carry their target in the section.
pub fn program_sections(data: &[u8]) -> HashMap<String, String> {
    let Ok(elf) = pyaya_core::elf::Elf::parse(data) else {
        return HashMap::new();
    };
    elf.symbols
        .iter()
        .filter(|symbol| symbol.is_function())
        .filter_map(|symbol| Some((symbol.name.clone(), elf.section_of(symbol)?.name.clone())))
        .collect()
}

/// The call that loads a program type whose `load()` takes arguments.
const fn load_call(kind: &str) -> Option<&'static str> {
    Some(match kind.as_bytes() {
        b"BtfTracePoint" => "load(tracepoint=None) (or attach(), which loads it)",
        b"FEntry" | b"FExit" => "load(function=None) (or attach(), which loads it)",
        b"Lsm" => "load(hook=None) (or attach(), which loads it)",
        b"LsmCgroup" => "load(hook=None) (or attach(cgroup), which loads it)",
        b"Iter" => "load(iter_type=None) (or attach(), which loads it)",
        b"Extension" => "load(target_program, function)",
        _ => return None,
    })
}

/// The error of a plain `load()` on a program type that needs arguments, naming the call to use.
pub fn needs_arguments(name: &str, kind: &str) -> Deferred {
    match load_call(kind) {
        Some(call) => Deferred::Plain(
            Kind::Program,
            format!("program {name:?} is a {kind} program, whose load needs arguments: use {kind}.{call}"),
        ),
        None => Deferred::Plain(
            Kind::Unsupported,
            format!("pyaya cannot load {kind} programs (program {name:?})"),
        ),
    }
}
