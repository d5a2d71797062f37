"""Kernel feature probes: real system calls and real files, no guessing from version numbers.

Each probe answers ``(ok, reason)`` in the kernel's own words where there are any, so that ``pyaya doctor`` can
report them and the kernel test suite can skip with the probed reason::

    ok, reason = features.kprobes_supported()
    if not ok:
        pytest.skip(reason)

Probes that need ``bpf()`` create at most one tiny map or program and close its fd before returning.
"""

from __future__ import annotations

import ctypes
import errno
import gzip
import os
import platform
import re
from functools import cache
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "CAPABILITIES",
    "BpfCall",
    "Probe",
    "bpf_syscall_available",
    "bpffs_mount",
    "btf_program_supported",
    "capabilities",
    "fentry_supported",
    "kernel_config",
    "kernel_version",
    "kprobes_supported",
    "mounts",
    "tracefs_mount",
    "vmlinux_btf_available",
]

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")
BPFFS_PATH = Path("/sys/fs/bpf")
TRACEFS_PATHS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
KPROBE_PMU = Path("/sys/bus/event_source/devices/kprobe")

CAPABILITIES = {"CAP_NET_ADMIN": 12, "CAP_SYS_ADMIN": 21, "CAP_PERFMON": 38, "CAP_BPF": 39}

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "arm64": 280, "riscv64": 280, "loongarch64": 280, "s390x": 351}
_BPF_MAP_CREATE = 0
_BPF_PROG_LOAD = 5
_BPF_RAW_TRACEPOINT_OPEN = 17
_BPF_MAP_TYPE_ARRAY = 2
_BPF_PROG_TYPE_TRACING = 26
_BPF_TRACE_FENTRY = 24
_ATTR_SIZE = 128
_LOG_SIZE = 4096
# r0 = 0; exit
_RETURN_ZERO = bytes.fromhex("b7000000000000009500000000000000")


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


@cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> BpfCall:
    number = _SYS_BPF.get(platform.machine())
    if number is None:
        return BpfCall(-1, errno.ENOSYS)
    ctypes.set_errno(0)
    result = _libc().syscall(ctypes.c_long(number), ctypes.c_long(cmd), ctypes.byref(attr), ctypes.c_uint(len(attr)))
    return BpfCall(int(result), ctypes.get_errno() if result < 0 else 0)


def _close(call: BpfCall) -> None:
    if call.result >= 0:
        os.close(call.result)


def probe_map_create() -> BpfCall:
    """``bpf(BPF_MAP_CREATE)`` of a one-entry array map; the fd is closed before returning (``result`` is stale)."""
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    ctypes.memmove(attr, (ctypes.c_uint32 * 4)(_BPF_MAP_TYPE_ARRAY, 4, 4, 1), 16)
    call = _bpf(_BPF_MAP_CREATE, attr)
    _close(call)
    return call


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


def _vmlinux_func_id(name: str) -> int | None:
    from pyaya.btf import Btf, Kind  # noqa: PLC0415 (parsing vmlinux is only needed by this probe)
    from pyaya.errors import PyayaError  # noqa: PLC0415

    try:
        found = Btf.vmlinux().find_all(name, Kind.FUNC)
    except PyayaError:
        return None
    return found[0].id if found else None


def fentry_supported(target: str = "bpf_fentry_test1") -> Probe:
    """Whether fentry programs load and attach: ``BPF_PROG_LOAD`` of a 2-instruction ``BPF_PROG_TYPE_TRACING``
    program with ``BPF_TRACE_FENTRY`` on vmlinux's ``target``, then ``BPF_RAW_TRACEPOINT_OPEN`` to attach it
    (which builds the trampoline); both fds are closed at once. The reason carries the kernel's answer."""
    return btf_program_supported("FEntry", target)


# The BTF-based program types: (kernel program type, attach type, BTF name of the target, its BTF kind, default
# target, what the target is called). The numbers are the kernel's enum bpf_prog_type / bpf_attach_type.
_BTF_PROGRAMS = {
    "FEntry": (_BPF_PROG_TYPE_TRACING, _BPF_TRACE_FENTRY, "{}", "FUNC", "bpf_fentry_test1", "a fentry program on"),
    "FExit": (_BPF_PROG_TYPE_TRACING, 25, "{}", "FUNC", "bpf_fentry_test1", "a fexit program on"),
    "BtfTracePoint": (_BPF_PROG_TYPE_TRACING, 23, "btf_trace_{}", "TYPEDEF", "sched_switch", "a tp_btf program on"),
    "Lsm": (29, 27, "bpf_lsm_{}", "FUNC", "file_open", "an lsm program on hook"),
    "Iter": (_BPF_PROG_TYPE_TRACING, 28, "bpf_iter_{}", "FUNC", "task", "an iterator program of type"),
}
_BPF_LINK_CREATE = 28


def _vmlinux_type_id(name: str, kind: str) -> int | None:
    from pyaya.btf import Btf, Kind  # noqa: PLC0415 (parsing vmlinux is only needed by these probes)
    from pyaya.errors import PyayaError  # noqa: PLC0415

    try:
        found = Btf.vmlinux().find_all(name, Kind[kind])
    except PyayaError:
        return None
    return found[0].id if found else None


def btf_program_supported(kind: str, target: str | None = None) -> Probe:
    """Whether programs of the BTF-based type ``kind`` (``"FEntry"``, ``"FExit"``, ``"BtfTracePoint"``, ``"Lsm"``,
    ``"Iter"``) load and attach here: ``BPF_PROG_LOAD`` of a 2-instruction program on ``target`` (a kernel function,
    tracepoint, LSM hook or iterator type; a default that every kernel has when None), then an attach
    (``BPF_RAW_TRACEPOINT_OPEN``, or ``BPF_LINK_CREATE`` for iterators); every fd is closed at once. The reason
    carries the kernel's answer and, for a refusal, what is missing."""
    prog_type, attach_type, btf_name, btf_kind, default, what = _BTF_PROGRAMS[kind]
    target = target or default
    btf = vmlinux_btf_available()
    if not btf.ok:
        return Probe(False, f"{kind} programs need vmlinux BTF: {btf.reason}")
    type_id = _vmlinux_type_id(btf_name.format(target), btf_kind)
    if type_id is None:
        return Probe(False, f"vmlinux BTF has no {btf_kind} {btf_name.format(target)!r} to probe with")
    insns = ctypes.create_string_buffer(_RETURN_ZERO, len(_RETURN_ZERO))
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(_LOG_SIZE)
    name = b"pyaya_probe"
    attr = ctypes.create_string_buffer(_ATTR_SIZE)

    def put(
        buffer: ctypes.Array[ctypes.c_char],
        offset: int,
        ctype: type[ctypes.c_uint32] | type[ctypes.c_uint64],
        value: int,
    ) -> None:
        ctype.from_buffer(buffer, offset).value = value

    put(attr, 0, ctypes.c_uint32, prog_type)
    put(attr, 4, ctypes.c_uint32, len(_RETURN_ZERO) // 8)
    put(attr, 8, ctypes.c_uint64, ctypes.addressof(insns))
    put(attr, 16, ctypes.c_uint64, ctypes.addressof(license_))
    put(attr, 24, ctypes.c_uint32, 1)  # log_level
    put(attr, 28, ctypes.c_uint32, _LOG_SIZE)
    put(attr, 32, ctypes.c_uint64, ctypes.addressof(log))
    ctypes.memmove(ctypes.addressof(attr) + 48, name, len(name))
    put(attr, 68, ctypes.c_uint32, attach_type)
    put(attr, 108, ctypes.c_uint32, type_id)
    load = _bpf(_BPF_PROG_LOAD, attr)
    if load.result < 0:
        verifier = log.value.decode("utf-8", errors="replace").strip().splitlines()
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
        return Probe(False, f"BPF_PROG_LOAD of {what} {target} failed: {load.error}{tail}{hint}")
    try:
        open_attr = ctypes.create_string_buffer(_ATTR_SIZE)
        if kind == "Iter":
            put(open_attr, 0, ctypes.c_uint32, load.result)  # link_create.prog_fd; target_fd = 0
            put(open_attr, 8, ctypes.c_uint32, attach_type)
            link = _bpf(_BPF_LINK_CREATE, open_attr)
        else:
            put(open_attr, 8, ctypes.c_uint32, load.result)  # raw_tracepoint.prog_fd; name = NULL
            link = _bpf(_BPF_RAW_TRACEPOINT_OPEN, open_attr)
        _close(link)
    finally:
        _close(load)
    if link.result < 0:
        detail = "ENOTSUPP (no BPF trampoline on this architecture)" if link.errno == 524 else link.error
        return Probe(False, f"{what[0].upper()}{what[1:]} {target} loaded but attaching it failed: {detail}")
    trampoline = " (BPF trampoline works)" if kind in ("FEntry", "FExit", "Lsm") else ""
    return Probe(True, f"{what[0].upper()}{what[1:]} {target} loaded and attached{trampoline}")
