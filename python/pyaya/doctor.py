"""``pyaya doctor``: what this machine can build and run, each gap with the command that closes it.

Every check is a :class:`Check` with a status:

* ``ok``: works (the detail says what was probed);
* ``warning``: works with a caveat, or something optional is absent;
* ``missing``: a build or a run needs it and it is not there (``pyaya doctor`` exits 1);
* ``unsupported``: this kernel lacks a feature some program types need (does not fail).

Kernel checks are real probes (:mod:`pyaya.features`), not version guesses.
"""

from __future__ import annotations

import os
import resource
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass

from pyaya import features
from pyaya.errors import ToolchainError, VmError

__all__ = ["STATUSES", "Check", "failed", "run_checks"]

STATUSES = ("ok", "warning", "missing", "unsupported")


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def _privileged() -> tuple[bool, str]:
    caps = features.capabilities()
    held = [name for name, bit in features.CAPABILITIES.items() if caps >> bit & 1]
    euid = os.geteuid()
    who = "root (euid 0)" if euid == 0 else f"euid {euid}"
    return euid == 0 or {"CAP_BPF", "CAP_PERFMON"} <= set(held), f"{who}; effective: {', '.join(held) or 'none'}"


def check_privileges() -> Check:
    ok, detail = _privileged()
    if ok:
        return Check("privileges", "ok", detail)
    return Check(
        "privileges",
        "missing",
        detail + " (loading programs needs CAP_BPF and CAP_PERFMON, CAP_NET_ADMIN for networking programs)",
        "run with sudo, or: sudo setcap cap_bpf,cap_perfmon,cap_net_admin+ep $(readlink -f $(which python3))",
    )


def check_bpf_syscall() -> Check:
    call = features.probe_map_create()
    probe = features.bpf_syscall_available()
    if probe.ok:
        return Check("bpf() syscall", "ok", probe.reason)
    if call.errno in (1, 13):  # EPERM, EACCES
        return Check("bpf() syscall", "missing", probe.reason, "run as root or grant CAP_BPF")
    return Check("bpf() syscall", "missing", probe.reason, "use a kernel built with CONFIG_BPF_SYSCALL=y")


def check_btf() -> Check:
    probe = features.vmlinux_btf_available()
    if probe.ok:
        return Check("vmlinux BTF", "ok", probe.reason)
    return Check(
        "vmlinux BTF",
        "warning",
        probe.reason + "; fentry/fexit, tp_btf and lsm programs need it",
        "use a kernel built with CONFIG_DEBUG_INFO_BTF=y",
    )


def check_bpffs() -> Check:
    mount = features.bpffs_mount()
    if mount == features.BPFFS_PATH:
        return Check("bpffs", "ok", f"mounted at {mount}")
    fix = f"mount -t bpf bpf {features.BPFFS_PATH}"
    if mount is not None:
        return Check("bpffs", "warning", f"mounted at {mount}, not at {features.BPFFS_PATH} (pinning uses it)", fix)
    return Check("bpffs", "warning", f"not mounted at {features.BPFFS_PATH}; pinning maps and links needs it", fix)


def check_tracefs() -> Check:
    mount = features.tracefs_mount()
    if mount is not None:
        return Check("tracefs", "ok", f"mounted at {mount}")
    return Check(
        "tracefs",
        "missing",
        "not mounted at /sys/kernel/tracing or /sys/kernel/debug/tracing; tracepoints and probes need it",
        "mount -t tracefs nodev /sys/kernel/tracing",
    )


def check_kprobes() -> Check:
    ok, reason = features.kprobes_supported()
    if ok:
        return Check("kprobes", "ok", reason)
    return Check("kprobes", "unsupported", reason, "kprobe programs need a kernel built with CONFIG_KPROBES=y")


def check_fentry() -> Check:
    ok, reason = features.fentry_supported()
    if ok:
        return Check("fentry/fexit", "ok", reason)
    privileged, _ = _privileged()
    if not privileged:
        return Check("fentry/fexit", "warning", f"cannot probe without privilege: {reason}", "run pyaya doctor as root")
    alternatives = ["tp_btf", "raw tracepoint", "tracepoint"]
    if features.kprobes_supported().ok:
        alternatives.insert(0, "kprobe/kretprobe")
    fix = (
        f"on this kernel use {', '.join(alternatives)} programs instead; fentry/fexit need BPF trampolines that the "
        "kernel's security policy (lockdown) allows"
    )
    return Check("fentry/fexit", "unsupported", reason, fix)


# Kernel features beyond those above, each with what it is for: unsupported ones do not fail a run.
_FEATURE_CHECKS = {
    "object btf": (
        "objects load with their BTF (btf_map maps, typed data)",
        "use a kernel built with CONFIG_DEBUG_INFO_BTF=y",
    ),
    "bpf_link": ("attachments as bpf_link fds", "use kernel 5.15 or newer"),
    "lsm": ("Lsm programs", "boot with the BPF LSM enabled (lsm=...,bpf) on a kernel with CONFIG_BPF_LSM=y"),
    "tp_btf": ("BtfTracePoint programs", "use RawTracePoint or TracePoint programs on this kernel"),
    "ring buffer": ("RingBuf maps", "use PerfEventArray maps on kernels before 5.8"),
    "batch map ops": ("batched map reads and writes", "use kernel 5.6 or newer; maps are read one key at a time"),
    "tcx": ("SchedClassifier through tcx links", "use kernel 6.6 or newer; pyaya falls back to clsact (netlink)"),
    "bpf stats": ("program run counts and times", "run as root; needs kernel 5.8"),
    "usdt": ("USDT probes (UProbe.attach_usdt)", "use kernel 5.15 or newer built with CONFIG_UPROBES=y"),
}


def _feature_check(name: str) -> Check:
    purpose, fix = _FEATURE_CHECKS[name]
    report = features.probe(name)
    if report.supported:
        return Check(name, "ok", f"{report.reason}; used by {purpose}")
    privileged, _ = _privileged()
    if not privileged:
        return Check(name, "warning", f"cannot probe without privilege: {report.reason}", "run pyaya doctor as root")
    return Check(name, "unsupported", f"{report.reason}; needed for {purpose}", fix)


def _types_check(label: str, prefix: str, kinds: tuple[str, ...]) -> Check:
    refused = [kind for kind in kinds if not features.probe(f"{prefix}:{kind}").supported]
    if not refused:
        return Check(label, "ok", f"all {len(kinds)} load: {', '.join(kinds)}")
    privileged, _ = _privileged()
    detail = f"{len(kinds) - len(refused)} of {len(kinds)} load; refused: {', '.join(refused)}"
    if not privileged:
        return Check(label, "warning", f"cannot probe without privilege: {detail}", "run pyaya doctor as root")
    first = features.probe(f"{prefix}:{refused[0]}").reason
    return Check(label, "unsupported", f"{detail} ({first})", "these types need a newer or differently built kernel")


def check_features() -> list[Check]:
    """One check per kernel feature of :data:`pyaya.features.FEATURES` not covered above, plus program and map
    types."""
    checks = [_feature_check(name) for name in _FEATURE_CHECKS]
    checks.append(_types_check("program types", "program", features.PROGRAM_TYPES))
    checks.append(_types_check("map types", "map", features.MAP_TYPES))
    return checks


def check_memlock() -> Check:
    version = features.kernel_version()
    release = ".".join(map(str, version))
    if version >= (5, 11, 0):
        return Check("RLIMIT_MEMLOCK", "ok", f"not needed: kernel {release} (>= 5.11) charges BPF memory to memcg")
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if soft == resource.RLIM_INFINITY:
        return Check("RLIMIT_MEMLOCK", "ok", f"unlimited (kernel {release} < 5.11 counts BPF memory against it)")
    return Check(
        "RLIMIT_MEMLOCK",
        "warning",
        f"{soft // 1024} KiB; kernel {release} < 5.11 counts BPF maps against it, large maps may fail with EPERM",
        "ulimit -l unlimited (or LimitMEMLOCK=infinity in a systemd unit)",
    )


def check_leftovers() -> Check:
    """Netlink attachments (TC filters, XDP programs, clsact qdiscs) recorded for processes that are gone."""
    from pyaya import attachments  # noqa: PLC0415 (reads the state folder; imported only when checked)

    directory = attachments.state_dir()
    try:
        left = attachments.leftovers()
    except PermissionError as error:
        return Check("leftovers", "warning", f"cannot read {directory}: {error.strerror}", "run pyaya doctor as root")
    if not left:
        return Check("leftovers", "ok", f"no attachment recorded in {directory} belongs to a process that is gone")
    shown = "; ".join(f"{r.what} on {r.interface} (pid {r.owner.pid})" for r in left[:3])
    more = f"; and {len(left) - 3} more" if len(left) > 3 else ""
    return Check(
        "leftovers",
        "warning",
        f"{len(left)} netlink attachment(s) left by processes killed before they detached: {shown}{more}",
        "sudo pyaya cleanup (pyaya cleanup --dry-run lists them)",
    )


def _split_fix(message: str) -> tuple[str, str]:
    """A ToolchainError's first line is the problem, the rest the fix; the fix as one line."""
    first, _, rest = message.partition("\n")
    lines = [line.strip().removeprefix("- ").strip() for line in rest.splitlines()]
    fix_lines = [line for line in lines if line and not line.lower().startswith("fix")]
    return first, "; ".join(fix_lines)


def check_toolchain() -> Check:
    from pyaya import toolchain  # noqa: PLC0415 (runs rustc; imported only when checked)

    try:
        found = toolchain.resolve(cached=False)
    except ToolchainError as error:
        detail, fix = _split_fix(str(error))
        return Check("toolchain", "missing", detail, fix or "make setup")
    status = "warning" if found.notes else "ok"
    return Check("toolchain", status, found.describe() + "".join(f"; {n}" for n in found.notes))


def check_bpf_linker() -> Check:
    from pyaya import toolchain  # noqa: PLC0415

    path = toolchain.find_bpf_linker()
    if path is None:
        places = ", ".join(("PATH", *toolchain.BPF_LINKER_DIRS))
        return Check(
            "bpf-linker",
            "missing",
            f"not found (searched {places}); rustc needs it to link BPF objects",
            "cargo install bpf-linker (in a pyaya checkout: make setup)",
        )
    linker_major = toolchain.linker_llvm_major(path)
    # Compare with the rustc a build would use: the resolved toolchain's, else PATH's.
    try:
        resolved = toolchain.resolve(cached=False)
        rustc_label, rustc_major = f"{resolved.rustc_version} ({resolved.rustc})", resolved.llvm_major
    except ToolchainError:
        rustc_path = shutil.which("rustc")
        rustc = toolchain.probe_rustc(rustc_path) if rustc_path else None
        rustc_label = f"{rustc.version} ({rustc.path})" if rustc is not None else "unknown"
        rustc_major = rustc.llvm_major if rustc is not None else None
    if linker_major is None:
        return Check(
            "bpf-linker",
            "warning",
            f"{path}: could not tell which LLVM it uses",
            'if linking fails with "Invalid record", rebuild it against rustc\'s LLVM',
        )
    if rustc_major is None:
        return Check("bpf-linker", "ok", f"{path} (LLVM {linker_major}); rustc's LLVM is unknown")
    if linker_major < rustc_major:
        return Check(
            "bpf-linker",
            "missing",
            f"{path} uses LLVM {linker_major}, older than rustc {rustc_label}'s LLVM {rustc_major}: linking would "
            'fail with "Invalid record"',
            f"rebuild bpf-linker against LLVM {rustc_major} or newer: cargo install bpf-linker --force",
        )
    return Check("bpf-linker", "ok", f"{path} (LLVM {linker_major} >= LLVM {rustc_major} of rustc {rustc_label})")


def check_build_cache() -> Check:
    """Whether builds share the toolchain's folder of compiled dependencies (:mod:`pyaya.build_cache`)."""
    from pathlib import Path  # noqa: PLC0415

    from pyaya import build_cache, toolchain  # noqa: PLC0415 - runs cargo; imported only when checked

    try:
        found = toolchain.resolve(cached=False)
    except ToolchainError:
        return Check("build cache", "warning", "unknown without a toolchain", "fix the toolchain check first")
    plan = build_cache.plan(found, Path.cwd())
    if plan.cause == "cargo":
        major, minor = build_cache.MIN_CARGO
        return Check(
            "build cache",
            "warning",
            plan.reason,
            f"use cargo {major}.{minor} or newer (rustup update; Debian: apt-get install cargo-web)",
        )
    return Check("build cache", "ok", plan.reason)


def check_c_compiler() -> Check:
    """clang and the libbpf headers: what C projects (``*.bpf.c``) are built with (optional for Rust projects)."""
    from pyaya import cbuild  # noqa: PLC0415

    try:
        found = cbuild.find_compiler()
    except ToolchainError as error:
        message = str(error)
        fix = "apt-get install libbpf-dev" if "bpf_helpers.h" in message else "apt-get install clang libbpf-dev"
        return Check("C programs", "warning", f"{message.split(':', maxsplit=1)[0]}; only C projects need it", fix)
    return Check(
        "C programs",
        "ok",
        f"{found.clang} and the libbpf headers in {found.libbpf_include}: `pyaya build` builds *.bpf.c sources",
    )


def check_qemu() -> Check:
    """QEMU and a static busybox: what ``pyaya test --kernel`` boots other kernels with (optional)."""
    from pyaya import vm  # noqa: PLC0415 - only its tool lookups

    try:
        qemu = vm.qemu_binary()
        busybox = vm.busybox_binary()
    except VmError as error:
        return Check("qemu", "warning", f"{error}; only `pyaya test --kernel` needs it", vm.QEMU_FIX)
    return Check("qemu", "ok", f"{qemu} and {busybox}: `pyaya test --kernel SERIES` can boot other kernels")


CHECKS: tuple[Callable[[], Check], ...] = (
    check_privileges,
    check_bpf_syscall,
    check_btf,
    check_bpffs,
    check_tracefs,
    check_kprobes,
    check_fentry,
    check_memlock,
    check_toolchain,
    check_bpf_linker,
    check_build_cache,
    check_c_compiler,
    check_leftovers,
    check_qemu,
)


def _safe(check: Callable[[], Check]) -> Check:
    try:
        return check()
    except Exception as error:  # a probe that crashes is reported, not fatal
        name = check.__name__.removeprefix("check_").replace("_", " ")
        return Check(name, "warning", f"the check itself failed: {type(error).__name__}: {error}")


#: The checks that wait on other programs (rustc, rustup, ldd, QEMU lookups), by name: they run in a thread of their
#: own while the kernel is probed, sharing their probes' answers (toolchain and bpf-linker both resolve it).
_TOOL_CHECKS = frozenset({"check_toolchain", "check_bpf_linker", "check_build_cache", "check_c_compiler", "check_qemu"})


def _tool_checks(checks: list[Callable[[], Check]], results: dict[int, Check]) -> None:
    from pyaya.toolchain import shared_probes  # noqa: PLC0415

    with shared_probes():
        for index, check in enumerate(checks):
            if check.__name__ in _TOOL_CHECKS:
                results[index] = _safe(check)


def run_checks() -> list[Check]:
    """Run every check; the report's order is stable (:data:`CHECKS`, the kernel's features before the memlock
    limit). The toolchain's checks, which spend their time waiting for rustc and rustup, run beside the kernel's."""
    import threading  # noqa: PLC0415

    order = list(CHECKS)
    results: dict[int, Check] = {}
    worker = threading.Thread(target=_tool_checks, args=(order, results), name="pyaya-doctor-tools", daemon=True)
    worker.start()
    try:
        own = {i: _safe(check) for i, check in enumerate(order) if check.__name__ not in _TOOL_CHECKS}
        try:
            kernel = check_features()
        except Exception as error:  # a probe that crashes is reported, not fatal
            kernel = [Check("kernel features", "warning", f"the probes failed: {type(error).__name__}: {error}")]
    finally:
        worker.join()
    results.update(own)
    checks = [results[i] for i in range(len(order))]
    at = next(i for i, check in enumerate(checks) if check.name == "RLIMIT_MEMLOCK")
    return checks[:at] + kernel + checks[at:]


def failed(checks: list[Check]) -> bool:
    """True when something a build or a run needs is missing."""
    return any(check.status == "missing" for check in checks)
