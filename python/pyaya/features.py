"""Kernel feature probes: real system calls and real files, no guessing from version numbers.

Each probe answers ``(ok, reason)`` in the kernel's own words where there are any, so that ``pyaya doctor`` can
report them and the kernel test suite can skip with the probed reason::

    ok, reason = features.kprobes_supported()
    if not ok:
        pytest.skip(reason)

Probes that need ``bpf()`` create at most one tiny map or program and close its fd before returning.
"""

from __future__ import annotations

import errno
import gzip
import os
import platform
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from pyaya import _native

if TYPE_CHECKING:
    from pyaya.btf import Kind

__all__ = [
    "BTF_FALLBACKS",
    "CAPABILITIES",
    "FEATURES",
    "MAP_TYPES",
    "PROGRAM_TYPES",
    "REQUIREMENTS",
    "BpfCall",
    "FeatureReport",
    "KernelFeatures",
    "Probe",
    "batch_ops_supported",
    "bpf_syscall_available",
    "bpffs_mount",
    "btf_program_supported",
    "capabilities",
    "fentry_supported",
    "fexit_supported",
    "helper_known",
    "helper_name",
    "helper_number",
    "helper_supported",
    "iter_supported",
    "kernel_config",
    "kernel_features",
    "kernel_version",
    "kprobes_supported",
    "lsm_cgroup_supported",
    "lsm_supported",
    "map_type_supported",
    "mounts",
    "perf_lost_count_supported",
    "probe",
    "probe_all",
    "program_type_supported",
    "requirement",
    "stats_supported",
    "tcx_supported",
    "tp_btf_supported",
    "tracefs_mount",
    "vmlinux_btf_available",
]

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")
BPFFS_PATH = Path("/sys/fs/bpf")
TRACEFS_PATHS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
KPROBE_PMU = Path("/sys/bus/event_source/devices/kprobe")
LSM_LIST = Path("/sys/kernel/security/lsm")

CAPABILITIES = {"CAP_NET_ADMIN": 12, "CAP_SYS_ADMIN": 21, "CAP_PERFMON": 38, "CAP_BPF": 39}


class Probe(NamedTuple):
    """A probe's answer: ``ok, reason = probe()``."""

    ok: bool
    reason: str


class BpfCall(NamedTuple):
    """What one ``bpf()`` call returned: a result (fd) or an errno, and the verifier log if one was asked for."""

    result: int
    errno: int
    log: str = ""

    @property
    def error(self) -> str:
        """``EPERM (Operation not permitted)`` style text; empty on success."""
        if self.result >= 0:
            return ""
        return f"{errno.errorcode.get(self.errno, str(self.errno))} ({os.strerror(self.errno)})"


# -- bpf() -------------------------------------------------------------------------------------------------------
# The system calls are the native module's (aya-obj's generated bpf_attr); these functions word the kernel's answer.


def _call(error: int, result: int = 0) -> BpfCall:
    """A :class:`BpfCall` from a native probe's errno (0: the call worked and returned ``result``)."""
    return BpfCall(result, 0) if error == 0 else BpfCall(-1, error)


def probe_map_create() -> BpfCall:
    """``bpf(BPF_MAP_CREATE)`` of a one-entry array map; the fd is closed before returning (``result`` is 0 on
    success, not the fd)."""
    return _call(_native.map_create_errno())


def bpf_syscall_available() -> Probe:
    """Whether this process can use ``bpf()``: a real ``BPF_MAP_CREATE`` of a tiny array map."""
    call = probe_map_create()
    if call.result >= 0:
        return Probe(True, "bpf(BPF_MAP_CREATE) of a 1-entry array map succeeded")
    if call.errno in (errno.EPERM, errno.EACCES):
        return Probe(False, f"bpf(BPF_MAP_CREATE) failed: {call.error}; run as root or grant CAP_BPF")
    if call.errno == errno.ENOSYS:
        return Probe(False, f"bpf() is not available on {platform.machine()}: {call.error} (CONFIG_BPF_SYSCALL off?)")
    return Probe(False, f"bpf(BPF_MAP_CREATE) failed: {call.error}")


# -- files and mounts --------------------------------------------------------------------------------------------


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts(path: str | Path = "/proc/self/mounts") -> list[tuple[str, str, str]]:
    """``(source, mount point, fs type)`` for each line of ``/proc/self/mounts``; empty if unreadable."""
    try:
        text = Path(path).read_text()
    except OSError:
        return []
    result = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            result.append((_unescape(fields[0]), _unescape(fields[1]), fields[2]))
    return result


def bpffs_mount() -> Path | None:
    """Where bpffs is mounted, ``/sys/fs/bpf`` preferred; None when it is not mounted anywhere."""
    found = [Path(point) for _, point, fstype in mounts() if fstype == "bpf"]
    if BPFFS_PATH in found:
        return BPFFS_PATH
    return found[0] if found else None


def tracefs_mount() -> Path | None:
    """Where tracefs is mounted, ``/sys/kernel/tracing`` preferred; None when it is not mounted."""
    found = [Path(point) for _, point, fstype in mounts() if fstype == "tracefs"]
    for preferred in TRACEFS_PATHS:
        if preferred in found:
            return preferred
    return found[0] if found else None


def vmlinux_btf_available() -> Probe:
    """Whether the kernel exposes its BTF at ``/sys/kernel/btf/vmlinux`` (needed for fentry, tp_btf, CO-RE)."""
    if not VMLINUX_BTF.exists():
        return Probe(False, f"{VMLINUX_BTF} does not exist (kernel built without CONFIG_DEBUG_INFO_BTF)")
    if not os.access(VMLINUX_BTF, os.R_OK):
        return Probe(False, f"{VMLINUX_BTF} exists but is not readable by this user")
    return Probe(True, f"{VMLINUX_BTF} ({VMLINUX_BTF.stat().st_size // 1024} KiB)")


# -- kernel facts ------------------------------------------------------------------------------------------------


def kernel_version(release: str | None = None) -> tuple[int, int, int]:
    """``(major, minor, patch)`` of the running kernel (``uname -r``), missing parts as 0."""
    match = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", release or platform.release())
    if match is None:
        return (0, 0, 0)
    major, minor, patch = (int(g) if g else 0 for g in match.groups())
    return (major, minor, patch)


@cache
def kernel_config() -> tuple[dict[str, str], str] | None:
    """The kernel's build config as ``({"CONFIG_X": "y", ...}, source path)``: /proc/config.gz, else
    /boot/config-$(uname -r); None when neither is readable. Options that are "not set" map to ``"n"``."""
    candidates = (Path("/proc/config.gz"), Path(f"/boot/config-{platform.release()}"))
    for path in candidates:
        try:
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        except (OSError, EOFError, gzip.BadGzipFile):
            continue
        config: dict[str, str] = {}
        for line in raw.decode("utf-8", errors="replace").splitlines():
            if line.startswith("CONFIG_"):
                key, _, value = line.partition("=")
                config[key] = value
            elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
                config[line[2:].split()[0]] = "n"
        return config, str(path)
    return None


def capabilities(path: str | Path = "/proc/self/status") -> int:
    """This process's effective capability bits (``CapEff``), 0 if unknown."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return 0


# -- program types -----------------------------------------------------------------------------------------------


def kprobes_supported() -> Probe:
    """Whether kprobes can be attached: the tracefs ``kprobe_events`` file or the ``kprobe`` PMU, and
    ``CONFIG_KPROBES`` where the kernel config is readable."""
    tracefs = tracefs_mount()
    events = tracefs / "kprobe_events" if tracefs is not None else None
    has_events = events is not None and events.exists()
    has_pmu = KPROBE_PMU.exists()
    config = kernel_config()
    setting = config[0].get("CONFIG_KPROBES") if config is not None else None
    reasons = []
    if config is not None:
        state = "=y" if setting == "y" else "is not set" if setting in (None, "n") else f"={setting}"
        reasons.append(f"CONFIG_KPROBES {state} in {config[1]}")
    if events is not None:
        reasons.append(f"{events} {'exists' if has_events else 'does not exist'}")
    else:
        reasons.append("tracefs is not mounted")
    reasons.append(f"{KPROBE_PMU} {'exists' if has_pmu else 'does not exist'}")
    reason = "; ".join(reasons)
    if has_events or has_pmu:
        return Probe(True, reason)
    if setting == "y" and tracefs is None:
        return Probe(True, reason + " (mount tracefs to use them)")
    return Probe(False, reason)


def _vmlinux_type_id(name: str, kind: Kind) -> int | None:
    from pyaya.btf import Btf  # noqa: PLC0415 (parsing vmlinux is only needed by these probes)
    from pyaya.errors import PyayaError  # noqa: PLC0415

    try:
        found = Btf.vmlinux().find_all(name, kind)
    except PyayaError:
        return None
    return found[0].id if found else None


def _tracing_probe(label: str, kind: str, btf_name: str, btf_kind: str) -> Probe:
    """A 2-instruction program of the BTF-based type ``kind`` (a pyaya class name) on vmlinux's ``btf_name``,
    loaded and then attached the way that type attaches (which builds the trampoline), by the native module; every
    fd is closed at once. The reason carries the kernel's answer."""
    from pyaya.btf import Kind  # noqa: PLC0415 (parsing vmlinux is only needed by these probes)

    btf = vmlinux_btf_available()
    if not btf.ok:
        return Probe(False, f"{label} needs vmlinux BTF: {btf.reason}")
    type_id = _vmlinux_type_id(btf_name, Kind[btf_kind])
    if type_id is None:
        return Probe(False, f"vmlinux BTF has no {btf_kind} {btf_name!r} to probe with")
    load_errno, log, attach_errno = _native.btf_program_errno(kind, type_id)
    if load_errno:
        load = _call(load_errno)
        verifier = log.strip().splitlines()
        tail = f": {verifier[-1]}" if verifier else ""
        hint = ""
        if load.errno in (errno.EPERM, errno.EACCES):
            caps = capabilities()
            needed = (1 << CAPABILITIES["CAP_BPF"]) | (1 << CAPABILITIES["CAP_PERFMON"])
            if caps & needed == needed:
                hint = (
                    " although this process has CAP_BPF and CAP_PERFMON: a security module (e.g. lockdown) or the"
                    " kernel's policy refuses tracing programs"
                )
            else:
                hint = "; run as root or grant CAP_BPF and CAP_PERFMON"
        return Probe(False, f"BPF_PROG_LOAD of a {label} program on {btf_name} failed: {load.error}{tail}{hint}")
    if attach_errno is None:
        return Probe(True, f"a {label} program on {btf_name} loaded")
    if attach_errno:
        link = _call(attach_errno)
        detail = "ENOTSUPP (no BPF trampoline on this architecture)" if link.errno == _ENOTSUPP else link.error
        return Probe(False, f"a {label} program on {btf_name} loaded but attaching it failed: {detail}")
    return Probe(True, f"a {label} program on {btf_name} loaded and attached")


#: The kernel-internal errno ``ENOTSUPP`` (not ``ENOTSUP``), which Python's :mod:`errno` does not name.
_ENOTSUPP = 524


def fentry_supported(target: str = "bpf_fentry_test1") -> Probe:
    """Whether fentry programs load and attach (a real fentry on vmlinux's ``target``; BPF trampolines)."""
    return _tracing_probe("fentry", "FEntry", target, "FUNC")


def fexit_supported(target: str = "bpf_fentry_test1") -> Probe:
    """Whether fexit programs load and attach (a real fexit on vmlinux's ``target``)."""
    return _tracing_probe("fexit", "FExit", target, "FUNC")


def iter_supported(iter_type: str = "task") -> Probe:
    """Whether BPF iterators of ``iter_type`` load and attach (``BPF_LINK_CREATE``)."""
    return _tracing_probe("iterator", "Iter", f"bpf_iter_{iter_type}", "FUNC")


def btf_program_supported(kind: str, target: str | None = None) -> Probe:
    """Whether programs of the BTF-based type ``kind`` (``"FEntry"``, ``"FExit"``, ``"BtfTracePoint"``, ``"Lsm"``,
    ``"LsmCgroup"``, ``"Iter"``) load and attach here, on ``target`` (a kernel function, tracepoint, LSM hook or
    iterator type; a default every kernel has when None). The reason carries the kernel's answer and what is missing."""
    probes: dict[str, Callable[..., Probe]] = {
        "FEntry": fentry_supported,
        "FExit": fexit_supported,
        "BtfTracePoint": tp_btf_supported,
        "Lsm": lsm_supported,
        "LsmCgroup": lsm_cgroup_supported,
        "Iter": iter_supported,
    }
    if kind not in probes:
        raise ValueError(f"{kind!r} is not a BTF-based program type: one of {', '.join(probes)}")
    if target is None:
        return probes[kind]()
    if kind in ("Lsm", "LsmCgroup") and not target.startswith("bpf_lsm_"):
        target = f"bpf_lsm_{target}"
    return probes[kind](target)


def tp_btf_supported(tracepoint: str = "sched_switch") -> Probe:
    """Whether BTF-enabled tracepoints (``tp_btf``) load and attach: a real one on ``tracepoint``."""
    return _tracing_probe("tp_btf", "BtfTracePoint", f"btf_trace_{tracepoint}", "TYPEDEF")


def lsm_supported(hook: str = "bpf_lsm_bpf") -> Probe:
    """Whether BPF LSM programs work: ``bpf`` among the active LSMs, then a real program on ``hook``."""
    try:
        active = LSM_LIST.read_text().strip()
    except OSError as error:
        # Without securityfs the list is unknown: the program probe alone answers.
        loaded = _tracing_probe("lsm", "Lsm", hook, "FUNC")
        return Probe(loaded.ok, f"{loaded.reason} ({LSM_LIST}: {error.strerror})")
    if "bpf" not in active.split(","):
        return Probe(False, f"the BPF LSM is not active (active LSMs: {active}); boot with lsm={active},bpf")
    return _tracing_probe("lsm", "Lsm", hook, "FUNC")


def lsm_cgroup_supported(hook: str = "bpf_lsm_socket_create") -> Probe:
    """Whether cgroup BPF LSM programs (``lsm_cgroup``, kernel 6.0) load: the BPF LSM active, then a real load
    with the ``BPF_LSM_CGROUP`` attach type on ``hook`` (attaching needs a cgroup of the caller's)."""
    lsm = lsm_supported()
    if not lsm.ok:
        return lsm
    loaded = _tracing_probe("lsm_cgroup", "LsmCgroup", hook, "FUNC")
    if not loaded.ok and "EINVAL" in loaded.reason:
        return Probe(False, f"{loaded.reason} (the BPF_LSM_CGROUP attach type needs kernel 6.0)")
    return loaded


def uprobe_multi_supported() -> Probe:
    """Whether multi-point uprobes (``uprobe.multi``, kernel 6.6) attach: libbpf's probe, a program loaded for
    ``BPF_TRACE_UPROBE_MULTI`` and a link on ``/``, which such a kernel refuses with EBADF (no ELF file)."""
    if not (UPROBE_PMU / "type").exists():
        return Probe(False, f"no uprobe PMU ({UPROBE_PMU}): the kernel lacks CONFIG_UPROBES")
    loaded, linked = _native.uprobe_multi_errno()
    if loaded:
        return Probe(False, f"BPF_PROG_LOAD for BPF_TRACE_UPROBE_MULTI failed: {errno.errorcode.get(loaded, loaded)}")
    if linked == errno.EBADF:
        return Probe(True, "BPF_LINK_CREATE of a uprobe_multi link reached the file check (EBADF on '/')")
    name = errno.errorcode.get(linked or 0, linked)
    return Probe(False, f"BPF_LINK_CREATE of a uprobe_multi link failed with {name}: these links need kernel 6.6")


def kprobe_multi_supported() -> Probe:
    """Whether multi-point kprobes (``kprobe.multi``: kernel 5.18 built with CONFIG_FPROBE) attach: kprobes, then
    a program loaded for ``BPF_TRACE_KPROBE_MULTI`` linked for a moment on ``bpf_fentry_test1``."""
    kprobes = _kprobe()
    if not kprobes.ok:
        return kprobes
    loaded, linked = _native.kprobe_multi_errno()
    if loaded:
        return Probe(False, f"BPF_PROG_LOAD for BPF_TRACE_KPROBE_MULTI failed: {errno.errorcode.get(loaded, loaded)}")
    if linked == 0:
        return Probe(True, "a kprobe_multi link on bpf_fentry_test1 was made (and closed)")
    name = errno.errorcode.get(linked or 0, linked)
    return Probe(False, f"BPF_LINK_CREATE of a kprobe_multi link failed with {name}: these need 5.18 and CONFIG_FPROBE")


#: What :func:`requirement` knows beyond :data:`FEATURES`: each name with its probe.
REQUIREMENTS: dict[str, Callable[[], Probe]] = {
    "fentry": fentry_supported,
    "fexit": fexit_supported,
    "lsm_cgroup": lsm_cgroup_supported,
    "iter": iter_supported,
    # An Extension (freplace) program runs through a BPF trampoline as fentry does; a real freplace probe would
    # need a target program with BTF of its own.
    "extension": fentry_supported,
    "uprobe_multi": uprobe_multi_supported,
    "kprobe_multi": kprobe_multi_supported,
}


def requirement(name: str) -> Probe:
    """The (cached) probe behind a test's ``@pytest.mark.needs(name)``: a :data:`FEATURES` name (``"kprobes"``,
    ``"lsm"``, ``"tp_btf"``...), one of :data:`REQUIREMENTS` (``"fentry"``, ``"lsm_cgroup"``, ``"extension"``...),
    ``"program:<Type>"``, ``"map:<Type>"``, ``"helper:<name>"`` (:func:`helper_known`) or
    ``"helper:<Type>:<name>"`` (:func:`helper_supported`). Raises KeyError for an unknown name."""
    if name in REQUIREMENTS:
        return _requirement(name)
    if name.startswith("helper:"):
        return _helper_requirement(name)
    if name not in FEATURES and not name.startswith(("program:", "map:")):
        known = ", ".join([*FEATURES, *REQUIREMENTS])
        raise KeyError(
            f"no feature {name!r}; known: {known}, program:<Type>, map:<Type>, helper:<name>, helper:<Type>:<name>"
        )
    report = probe(name)
    return Probe(report.supported, report.reason)


@cache
def _requirement(name: str) -> Probe:
    return REQUIREMENTS[name]()


@cache
def _helper_requirement(name: str) -> Probe:
    """``helper:<name>`` (the kernel has the helper) or ``helper:<Type>:<name>`` (programs of that type may call it)."""
    from pyaya.errors import NotFoundError  # noqa: PLC0415

    parts = name.split(":")
    try:
        if len(parts) == 2:
            return helper_known(parts[1])
        if len(parts) == 3:
            return helper_supported(parts[1], parts[2])
    except NotFoundError as error:
        raise KeyError(str(error)) from None
    raise KeyError(f"{name!r}: write helper:<name> or helper:<ProgramType>:<name>")


# -- map operations and kernel facilities --------------------------------------------------------------------------


def batch_ops_supported() -> Probe:
    """Whether batched map operations exist (kernel 5.6): ``BPF_MAP_LOOKUP_BATCH`` on an empty hash map."""
    create_errno, batch_errno = _native.lookup_batch_errno()
    created = _call(create_errno)
    if created.result < 0:
        return Probe(False, f"bpf(BPF_MAP_CREATE) of a hash map failed: {created.error}")
    call = _call(batch_errno)
    if call.result >= 0 or call.errno == errno.ENOENT:  # ENOENT: the (empty) map was walked to its end
        return Probe(True, "BPF_MAP_LOOKUP_BATCH on an empty hash map walked it (ENOENT at the end)")
    return Probe(False, f"BPF_MAP_LOOKUP_BATCH failed: {call.error} (batched map operations need kernel 5.6)")


def tcx_supported() -> Probe:
    """Whether tcx (TC through bpf_link, kernel 6.6) exists: ``BPF_PROG_QUERY`` of ``BPF_TCX_INGRESS`` on lo."""
    query_errno, count = _native.tcx_query_errno()
    call = _call(query_errno)
    if call.result >= 0:
        return Probe(True, f"BPF_PROG_QUERY of tcx ingress on lo answered ({count} programs attached)")
    if call.errno in (errno.EPERM, errno.EACCES):
        return Probe(False, f"BPF_PROG_QUERY of tcx ingress failed: {call.error}; run as root (CAP_NET_ADMIN)")
    return Probe(False, f"BPF_PROG_QUERY of tcx ingress on lo failed: {call.error} (tcx needs kernel 6.6)")


def stats_supported() -> Probe:
    """Whether ``BPF_ENABLE_STATS`` (run counts and times of every program, kernel 5.8) works; the fd that keeps
    statistics on is closed at once."""
    call = _call(_native.enable_stats_errno())
    if call.result >= 0:
        return Probe(True, "BPF_ENABLE_STATS(BPF_STATS_RUN_TIME) returned an fd")
    if call.errno in (errno.EPERM, errno.EACCES):
        return Probe(False, f"BPF_ENABLE_STATS failed: {call.error}; it needs CAP_SYS_ADMIN")
    return Probe(False, f"BPF_ENABLE_STATS failed: {call.error} (needs kernel 5.8)")


def perf_lost_count_supported() -> Probe:
    """Whether perf events count the samples they drop (``PERF_FORMAT_LOST``, kernel 6.0): then a
    :class:`~pyaya.PerfEventArray`'s ``lost`` is exact at any moment, even when no sample follows a burst of
    losses (without it, the kernel reports a CPU's losses ahead of that CPU's next sample). Opens and closes one
    BPF output perf event."""
    from pyaya.errors import PyayaError  # noqa: PLC0415

    try:
        supported = _native.perf_lost_count_supported()
    except PyayaError as error:
        return Probe(False, f"opening a BPF output perf event failed: {error}")
    if supported:
        return Probe(True, "perf_event_open accepted read_format PERF_FORMAT_LOST: lost samples are read exactly")
    return Probe(
        False,
        "perf_event_open refused read_format PERF_FORMAT_LOST (needs kernel 6.0): a perf buffer's lost samples "
        "are known only from the records the kernel writes ahead of that CPU's next sample",
    )


# -- the whole report ----------------------------------------------------------------------------------------------


class FeatureReport(NamedTuple):
    """One feature: ``name``, whether it is ``supported``, and the ``reason`` in the kernel's words."""

    name: str
    supported: bool
    reason: str


def _native_probe(what: str, call: Callable[[], bool]) -> Probe:
    from pyaya.errors import PyayaError  # noqa: PLC0415

    try:
        ok = call()
    except PyayaError as error:
        return Probe(False, f"the probe for {what} failed: {error}")
    return Probe(ok, f"the kernel {'accepted' if ok else 'refused'} {what} (aya's probe)")


def program_type_supported(kind: str) -> Probe:
    """Whether the kernel loads programs of a type (a pyaya class name such as ``"Xdp"``), by aya's probe."""
    return _native_probe(f"a minimal {kind} program", lambda: _native.program_supported(kind))


def map_type_supported(kind: str) -> Probe:
    """Whether the kernel creates maps of a type (a pyaya map type name such as ``"RingBuf"``), by aya's probe."""
    return _native_probe(f"a small {kind} map", lambda: _native.map_supported(kind))


def helper_number(helper: int | str) -> int:
    """The number (``enum bpf_func_id``) of a helper named as the verifier names it (``"bpf_get_func_ret"``), with
    or without ``bpf_``; a number is checked and returned. Raises :class:`~pyaya.NotFoundError` for a helper aya's
    kernel headers do not have."""
    from pyaya.errors import NotFoundError  # noqa: PLC0415

    if isinstance(helper, int):
        if not 0 < helper < len(_native.HELPERS):
            raise NotFoundError(f"no BPF helper number {helper}: helpers are numbered 1 to {len(_native.HELPERS) - 1}")
        return helper
    name = helper.removeprefix("bpf_")
    try:
        return _native.HELPERS.index(name, 1)
    except ValueError:
        import difflib  # noqa: PLC0415

        close = difflib.get_close_matches(name, _native.HELPERS[1:], n=3)
        hint = f"; did you mean {', '.join('bpf_' + c for c in close)}?" if close else ""
        raise NotFoundError(f"no BPF helper {helper!r} (enum bpf_func_id){hint}") from None


def helper_name(number: int) -> str:
    """The helper's name as the verifier writes it (``"bpf_get_func_ret"`` for 184)."""
    return "bpf_" + _native.HELPERS[helper_number(number)]


def helper_supported(program_kind: str, helper: int | str) -> Probe:
    """Whether programs of ``program_kind`` (a pyaya program class name: ``"CgroupSockopt"``) may call a helper
    (its name, ``"bpf_get_current_pid_tgid"``, or number). aya cannot probe this for fentry, fexit, tp_btf, LSM and
    extension programs (their probe needs an attach target): for those, :func:`helper_known` says whether the
    kernel has the helper at all."""
    number = helper_number(helper)
    what = f"a {program_kind} program calling {helper_name(number)}"
    return _native_probe(what, lambda: _native.helper_supported(program_kind, number))


def helper_known(helper: int | str) -> Probe:
    """Whether this kernel has a helper at all, whichever program types may call it (kernels older than the
    helper refuse any call to it with "invalid func")."""
    from pyaya.errors import PyayaError  # noqa: PLC0415

    number = helper_number(helper)
    what = f"a call of {helper_name(number)}"
    try:
        known = _native.helper_known(number)
    except PyayaError as error:
        return Probe(False, f"the probe for {what} failed: {error}")
    release = os.uname().release
    if known:
        return Probe(True, f"the kernel ({release}) knows {helper_name(number)}")
    return Probe(False, f"the kernel ({release}) has no {helper_name(number)}: a later kernel added it")


class KernelFeatures(NamedTuple):
    """What aya's loader detected about this kernel (its ``aya::features()``, probed once per process): each field
    is one BTF_LOAD, BPF_PROG_LOAD or BPF_MAP_CREATE the kernel accepted or refused. Where a BTF kind is missing,
    aya rewrites the object's BTF before loading it (see :data:`BTF_FALLBACKS`), so objects still load."""

    bpf_name: bool
    """Programs and maps carry their names (``bpf_attr.prog_name``; kernel 4.15)."""
    probe_read_kernel: bool
    """``bpf_probe_read_kernel`` exists (5.5); aya falls back to ``bpf_probe_read`` otherwise."""
    perf_link: bool
    """Perf-event attachments are ``bpf_link`` fds (5.15), so they end with the process."""
    global_data: bool
    """``.data``/``.rodata``/``.bss`` maps (5.2): Rust globals need it."""
    cookie: bool
    """``bpf_get_attach_cookie`` (5.15)."""
    cpumap_prog_id: bool
    """CPU map entries can run a program (5.9)."""
    devmap_prog_id: bool
    """Device map entries can run a program (5.8)."""
    btf: bool
    """The kernel loads object BTF at all (BTF_LOAD, 4.18); without it objects load without their BTF."""
    btf_func: bool
    """``BTF_KIND_FUNC``/``FUNC_PROTO`` (5.0)."""
    btf_func_global: bool
    """Global linkage of ``BTF_KIND_FUNC`` (5.6)."""
    btf_datasec: bool
    """``BTF_KIND_VAR``/``DATASEC`` (5.2)."""
    btf_datasec_zero: bool
    """aya's probe of an empty ``DATASEC``. It loads one of size 0, which kernels refuse ("size == 0", 6.18
    included), so this is False everywhere and aya gives every empty section a filler variable: harmless."""
    btf_float: bool
    """``BTF_KIND_FLOAT`` (5.13)."""
    btf_decl_tag: bool
    """``BTF_KIND_DECL_TAG`` (5.16)."""
    btf_type_tag: bool
    """``BTF_KIND_TYPE_TAG`` (5.17)."""
    btf_enum64: bool
    """``BTF_KIND_ENUM64`` (6.0)."""


#: What aya does to an object's BTF when the kernel lacks a kind (aya-obj's ``fixup_and_sanitize_btf``).
BTF_FALLBACKS: dict[str, str] = {
    "btf_func": "FUNC becomes TYPEDEF and FUNC_PROTO an ENUM",
    "btf_func_global": "global FUNCs become static",
    "btf_datasec": "VAR becomes INT and DATASEC a STRUCT",
    "btf_datasec_zero": "empty DATASECs get a filler variable (aya's probe answers no on every kernel)",
    "btf_float": "FLOAT becomes a STRUCT of its size",
    "btf_decl_tag": "DECL_TAG becomes INT",
    "btf_type_tag": "TYPE_TAG becomes CONST",
    "btf_enum64": "ENUM64 becomes a UNION of its size",
}


@cache
def kernel_features() -> KernelFeatures:
    """What aya's loader found this kernel accepts (probed on first call, then cached by aya and here)."""
    found = _native.kernel_features()
    return KernelFeatures(**{name: bool(found.get(name, False)) for name in KernelFeatures._fields})


def _object_btf() -> Probe:
    found = kernel_features()
    if not found.btf:
        return Probe(False, "the kernel refused aya's BTF_LOAD probe: objects load without their BTF")
    kinds = {name: getattr(found, name) for name in BTF_FALLBACKS}
    accepted = ", ".join(name.removeprefix("btf_") for name, ok in kinds.items() if ok)
    missing = [f"{name.removeprefix('btf_')} ({BTF_FALLBACKS[name]})" for name, ok in kinds.items() if not ok]
    if missing:
        return Probe(True, f"BTF_LOAD works; aya rewrites what this kernel lacks: {'; '.join(missing)}")
    return Probe(True, f"BTF_LOAD works; kinds accepted: {accepted}")


def _bpf_link() -> Probe:
    if kernel_features().perf_link:
        return Probe(True, "BPF_LINK_CREATE of a perf event link works (links are fds: detached on exit)")
    return Probe(False, "BPF_LINK_CREATE of a perf event link failed: tracing attachments fall back to perf event fds")


UPROBE_PMU = Path("/sys/bus/event_source/devices/uprobe")


def usdt_supported() -> Probe:
    """Whether ``UProbe.attach_usdt`` can work: a uprobe PMU, perf event bpf_links and ``bpf_get_attach_cookie``
    in uprobe programs (kernel 5.15+), and the uprobe reference counter that maintains semaphores (4.20+)."""
    if not (UPROBE_PMU / "type").exists():
        return Probe(False, f"no uprobe PMU ({UPROBE_PMU}): the kernel lacks CONFIG_UPROBES")
    link = _bpf_link()
    if not link.ok:
        return link
    cookie = helper_supported("KProbe", "bpf_get_attach_cookie")
    if not cookie.ok:
        return Probe(False, f"uprobe programs cannot call bpf_get_attach_cookie (kernel 5.15+): {cookie.reason}")
    if not (UPROBE_PMU / "format" / "ref_ctr_offset").exists():
        return Probe(True, "uprobes with bpf cookies work, but not semaphores (no ref_ctr_offset: kernel 4.20+)")
    return Probe(True, "uprobes with bpf cookies and semaphore reference counting (ref_ctr_offset)")


def bpf_cookie_supported() -> Probe:
    """Whether tracing attachments can carry a bpf cookie (``cookie=`` of uprobes, kprobes, tracepoints, perf
    events): perf event bpf_links and ``bpf_get_attach_cookie``, both kernel 5.15."""
    link = _bpf_link()
    if not link.ok:
        return Probe(False, f"bpf cookies ride on perf event bpf_links (kernel 5.15+): {link.reason}")
    if not kernel_features().cookie:
        return Probe(False, "aya's probe of bpf_get_attach_cookie failed: bpf cookies need kernel 5.15 or later")
    return Probe(True, "perf event bpf_links and bpf_get_attach_cookie work")


def _kprobe() -> Probe:
    loads = program_type_supported("KProbe")
    if not loads.ok:
        return loads
    attach = kprobes_supported()
    return Probe(attach.ok, f"kprobe programs load; attaching: {attach.reason}")


#: The program and map types ``probe_all`` (and so ``pyaya doctor``) reports, in its order: names from the native
#: module's one table of each (``_native.PROGRAM_TYPES``, ``_native.MAP_TYPES``; tests/unit/test_type_tables.py).
PROGRAM_TYPES = (
    "TracePoint",
    "RawTracePoint",
    "KProbe",
    "PerfEvent",
    "Xdp",
    "SchedClassifier",
    "SocketFilter",
    "CgroupSkb",
    "CgroupSock",
    "CgroupSockAddr",
    "CgroupSockopt",
    "CgroupSysctl",
    "CgroupDevice",
    "SockOps",
    "SkMsg",
    "SkSkb",
    "SkLookup",
    "FlowDissector",
)
MAP_TYPES = (
    "HashMap",
    "Array",
    "PerCpuHashMap",
    "PerCpuArray",
    "LruHashMap",
    "PerCpuLruHashMap",
    "LpmTrie",
    "PerfEventArray",
    "StackTraceMap",
    "ProgramArray",
    "Queue",
    "Stack",
    "BloomFilter",
    "SockMap",
    "SockHash",
    "DevMap",
    "CpuMap",
    "XskMap",
    "RingBuf",
)

FEATURES: dict[str, Callable[[], Probe]] = {
    "bpf": bpf_syscall_available,
    "btf": vmlinux_btf_available,
    "object btf": _object_btf,
    "bpf_link": _bpf_link,
    "kprobes": _kprobe,
    "fentry/fexit": fentry_supported,
    "lsm": lsm_supported,
    "tp_btf": tp_btf_supported,
    "ring buffer": lambda: map_type_supported("RingBuf"),
    "batch map ops": batch_ops_supported,
    "tcx": tcx_supported,
    "bpf stats": stats_supported,
    "usdt": usdt_supported,
    "bpf cookies": bpf_cookie_supported,
    "perf lost count": perf_lost_count_supported,
}
"""The features pyaya's program and map types depend on, by name, each with its probe."""


@cache
def probe(name: str) -> FeatureReport:
    """The (cached) answer for one feature: a :data:`FEATURES` name, ``"program:Xdp"`` or ``"map:RingBuf"``."""
    kind, _, what = name.partition(":")
    if kind == "program" and what:
        ok, reason = program_type_supported(what)
    elif kind == "map" and what:
        ok, reason = map_type_supported(what)
    elif name in FEATURES:
        try:
            ok, reason = FEATURES[name]()
        except OSError as error:
            ok, reason = False, f"the probe failed: {error}"
    else:
        raise KeyError(f"no feature {name!r}; known: {', '.join(FEATURES)}, program:<Type>, map:<Type>")
    return FeatureReport(name, ok, reason)


def probe_all() -> list[FeatureReport]:
    """Every feature of :data:`FEATURES`, then each program type and map type; cached per process."""
    names = [*FEATURES, *(f"program:{kind}" for kind in PROGRAM_TYPES), *(f"map:{kind}" for kind in MAP_TYPES)]
    return [probe(name) for name in names]
