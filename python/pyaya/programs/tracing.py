"""Tracing program types: tracepoints, raw and BTF tracepoints, fentry/fexit, LSM, kprobes, uprobes, perf events,
iterators and extensions."""

from __future__ import annotations

import enum
import errno as errno_codes
import os
from collections.abc import Iterable

from pyaya import _args, _native
from pyaya.errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    PermissionDeniedError,
    ProgramError,
    UnsupportedError,
    VerifierError,
)
from pyaya.programs._base import Link, Program, register

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal, NoReturn

    from pyaya.programs._base import PinnedT

__all__ = [
    "BtfTracePoint",
    "Extension",
    "FEntry",
    "FExit",
    "Iter",
    "IterLink",
    "KProbe",
    "KProbeMulti",
    "Lsm",
    "LsmCgroup",
    "PerfEvent",
    "PerfEventKind",
    "RawTracePoint",
    "TracePoint",
    "UProbe",
    "UProbeMulti",
]


def _perf_placement(cpus: Iterable[int] | None, pid: int | None) -> list[int] | None:
    """``cpus`` as a checked list (None: every online CPU), and ``pid`` checked: where a perf event is opened."""
    cpu_list = None
    if cpus is not None:
        cpu_list = _args.integers(
            cpus, "cpus", expected="an iterable of CPU numbers", item="a CPU in cpus", high=_args.U32
        )
        if not cpu_list:
            raise InvalidArgumentError("cpus is empty: give at least one CPU, or None for every online CPU")
    if pid is not None:
        _args.integer(pid, "pid", low=0, high=2**31 - 1)
    return cpu_list


def _cookie(cookie: int | None, what: str) -> int | None:
    """``cookie`` checked (a u64), and refused with the probed reason where this kernel cannot pass one: a bpf
    cookie rides on a perf event bpf_link and is read with ``bpf_get_attach_cookie``, both kernel 5.15."""
    if cookie is None:
        return None
    _args.integer(cookie, "cookie", high=_args.U64)
    from pyaya import features  # noqa: PLC0415 - probes only when a cookie is asked for

    probe = features.bpf_cookie_supported()
    if not probe.ok:
        raise UnsupportedError(
            f"cannot attach {what} with a bpf cookie: {probe.reason}; attach without cookie=, or on a newer kernel"
        )
    return cookie


@register
class TracePoint(Program):
    """A program attached to a kernel tracepoint (``/sys/kernel/tracing/events/<category>/<name>``).

    Kernel 4.7 or later. Needs tracefs mounted.

    >>> prog = bpf.programs["execwatch"]  # doctest: +SKIP
    >>> link = prog.attach("syscalls", "sys_enter_execve")  # doctest: +SKIP
    """

    kind = "TracePoint"

    def attach(self, category: str | None = None, name: str | None = None, *, cookie: int | None = None) -> Link:
        """Attach to tracepoint ``category/name``, loading the program first if needed; without them, to the one
        its ELF section names (``SEC("tp/syscalls/sys_enter_openat")``, ``#[tracepoint(category = ..., name =
        ...)]``'s ``tracepoint/syscalls/sys_enter_openat``), as libbpf's ``bpf_program__attach`` does.

        With ``cookie`` (a u64), the program's runs through this link read it with ``bpf_get_attach_cookie``
        (kernel 5.15+), so one program attached to several tracepoints can tell them apart."""
        if category is None and name is None:
            category, name = self._section_target()
        elif category is None or name is None:
            raise InvalidArgumentError(
                f"give the tracepoint's category and name together (attach({category or name!r}, ...) names one), "
                "or neither to take them from the program's ELF section"
            )
        for value, what in ((category, "category"), (name, "name")):
            if "/" in _args.string(value, f"tracepoint {what}"):
                raise InvalidArgumentError(
                    f"tracepoint {what} {value!r} holds a '/': pass the category and the name apart, "
                    'e.g. attach("syscalls", "sys_enter_execve")'
                )
        _cookie(cookie, f"{self.name!r} to tracepoint {category}/{name}")
        self._ensure_loaded()
        try:
            native = self._native.attach_tracepoint(category, name, cookie)
        except ProgramError as error:
            if error.errno != errno_codes.EEXIST:
                raise
            raise ProgramError(
                f"{self.name!r} is already attached to tracepoint {category}/{name}: the kernel runs a program once "
                "per tracepoint; detach that link first, or load the object again for a second attachment",
                error.errno,
            ) from error
        return self._attached(native)

    def _section_target(self) -> tuple[str, str]:
        section = self._native.section or ""
        prefix, _, rest = section.partition("/")
        category, _, name = rest.partition("/")
        if prefix not in ("tracepoint", "tp") or not category or not name or "/" in name:
            raise InvalidArgumentError(
                f"program {self.name!r} does not name its tracepoint in its ELF section ({section!r}): pass "
                'attach(category, name), e.g. attach("syscalls", "sys_enter_execve"), or name it in the section '
                '(#[tracepoint(category = "syscalls", name = "sys_enter_execve")], C: SEC("tp/syscalls/...")).'
            )
        return category, name


@register
class RawTracePoint(Program):
    """A program attached to a raw tracepoint (its arguments are the tracepoint's raw arguments).

    Kernel 4.17 or later.

    >>> bpf.programs["sched"].attach("sched_switch")  # doctest: +SKIP
    """

    kind = "RawTracePoint"

    def attach(self, name: str | None = None, *, cookie: int | None = None) -> Link:
        """Attach to the raw tracepoint ``name``, loading the program first if needed; without it, to the one
        its ELF section names (``raw_tp/sched_switch``, ``raw_tracepoint/...``; ``#[raw_tracepoint(tracepoint =
        ...)]`` writes it). With ``cookie`` (a u64), the program's runs through this link read it with
        ``bpf_get_attach_cookie`` (kernel 6.10+; older kernels raise :class:`~pyaya.UnsupportedError` saying
        so)."""
        if name is None:
            section = self._native.section or ""
            prefix, _, name = section.partition("/")
            if prefix not in ("raw_tp", "raw_tracepoint") or not name or "/" in name:
                raise InvalidArgumentError(
                    f"program {self.name!r} does not name its raw tracepoint in its ELF section ({section!r}): "
                    'pass attach(name), e.g. attach("sys_enter"), or name it in the section '
                    '(#[raw_tracepoint(tracepoint = "sys_enter")], C: SEC("raw_tp/sys_enter"))'
                )
        _args.string(name, "raw tracepoint name")
        if cookie is not None:
            _args.integer(cookie, "cookie", high=_args.U64)
        self._ensure_loaded()
        return self._attached(self._native.attach_raw_tracepoint(name, cookie))


# -- BTF-based programs --------------------------------------------------------------------------------------------


def _explain_refusal(program: Program, target: str | None, error: PermissionDeniedError) -> NoReturn:
    """Re-raise a load refused with EPERM, saying what is missing here (probed) and what would fix it."""
    from pyaya import features  # noqa: PLC0415 - probes (ctypes, gzip) only when explaining a refusal

    kind = program.kind
    # Extension programs run through BPF trampolines like FEntry programs, which the probe can load without a
    # target program of its own.
    if kind == "Extension":
        probe = features.btf_program_supported("FEntry")
    else:
        probe = features.btf_program_supported(kind, target)
    caps = features.capabilities()
    needed = (1 << features.CAPABILITIES["CAP_BPF"]) | (1 << features.CAPABILITIES["CAP_PERFMON"])
    if caps & needed != needed:
        raise PermissionDeniedError(
            f"{error}\nprobed: {probe.reason}\nwhat would fix it: run as root, or grant CAP_BPF and CAP_PERFMON",
            error.errno,
        ) from error
    config = features.kernel_config()
    lsms = config[0].get("CONFIG_LSM", "").strip('"') if config else ""
    blocker = (
        f"the lockdown LSM is built in (CONFIG_LSM={lsms}) and this kernel's policy refuses {kind} programs"
        if "lockdown" in lsms.split(",")
        else f"a security module or this kernel's policy refuses {kind} programs"
    )
    if kind in ("FEntry", "FExit", "Lsm", "LsmCgroup", "Extension"):
        blocker += " (they run through a BPF trampoline)"
    working = ["TracePoint", "RawTracePoint"]
    if kind != "BtfTracePoint" and features.btf_program_supported("BtfTracePoint").ok:
        working.append("BtfTracePoint")
    working.append("UProbe")
    raise PermissionDeniedError(
        f"loading {kind} program {program.name!r} on {target or '?'}: the kernel refused it (EPERM) although this "
        f"process has CAP_BPF and CAP_PERFMON: {blocker}\n"
        f"probed: {probe.reason}\n"
        "what would fix it: a kernel that allows these programs (lockdown off or in 'none' mode, no security policy "
        f"denying BPF tracing); here, use {', '.join(working[:-1])} or {working[-1]} instead",
        error.errno,
    ) from error


class _BtfProgram(Program):
    """A program loaded against a target named in the kernel's BTF, by default the one in its ELF section."""

    _what: str = ""

    def _load_native(self, target: str | None) -> None:
        raise NotImplementedError

    def _load_explained(self, target: str | None) -> None:
        _args.optional_string(target, "the load target")
        try:
            self._load_native(target)
        except PermissionDeniedError as error:
            _explain_refusal(self, target or self._section_target(), error)

    def _section_target(self) -> str | None:
        section = self._native.section
        if section is None or "/" not in section:
            return None
        return section.split("/", 1)[1] or None

    def attach(self, *, cookie: int | None = None) -> Link:
        """Attach to the target it was loaded for, loading it first (target from its ELF section) if needed.

        With ``cookie`` (a u64), the program's runs through this link read it with ``bpf_get_attach_cookie``, so
        one program attached twice (or programs sharing code) can tell the attachments apart: fentry, fexit and
        LSM programs from kernel 6.0, tp_btf from 6.10 (older kernels raise :class:`~pyaya.UnsupportedError`
        saying so)."""
        if cookie is not None:
            _args.integer(cookie, "cookie", high=_args.U64)
        if not self._native.loaded:
            self._load_explained(None)
        return self._attached(self._native.attach_btf(cookie))


@register
class BtfTracePoint(_BtfProgram):
    """A tp_btf program: a raw tracepoint whose arguments are typed from the kernel's BTF.

    Kernel 5.5 or later, with BTF (``/sys/kernel/btf/vmlinux``).

    >>> prog = bpf.programs["sched_switch"]  # #[btf_tracepoint(function = "sched_switch")]  # doctest: +SKIP
    >>> link = prog.attach()  # doctest: +SKIP
    """

    kind = "BtfTracePoint"

    def load(self, tracepoint: str | None = None) -> None:
        """Load for the tracepoint ``tracepoint`` (e.g. ``"sched_switch"``); None takes it from the ELF section
        (``tp_btf/<name>``)."""
        self._load_explained(tracepoint)

    def _load_native(self, target: str | None) -> None:
        self._native.load_btf_tracepoint(target)


@register
class FEntry(_BtfProgram):
    """A program run on entry to a kernel function, with its typed arguments (a BPF trampoline, no kprobe).

    Kernel 5.5 or later, with BTF and BPF trampolines (x86-64, arm64 since 6.0).

    >>> prog = bpf.programs["unlink"]  # #[fentry(function = "do_unlinkat")]  # doctest: +SKIP
    >>> link = prog.attach()  # doctest: +SKIP
    """

    kind = "FEntry"

    def load(self, function: str | None = None) -> None:
        """Load for kernel function ``function``; None takes it from the ELF section (``fentry/<function>``)."""
        self._load_explained(function)

    def _load_native(self, target: str | None) -> None:
        self._native.load_fentry(target)


@register
class FExit(_BtfProgram):
    """A program run on return from a kernel function, seeing its arguments and return value.

    Kernel 5.5 or later, with BTF and BPF trampolines.

    >>> prog = bpf.programs["unlink_ret"]  # #[fexit(function = "do_unlinkat")]  # doctest: +SKIP
    >>> link = prog.attach()  # doctest: +SKIP
    """

    kind = "FExit"

    def load(self, function: str | None = None) -> None:
        """Load for kernel function ``function``; None takes it from the ELF section (``fexit/<function>``)."""
        self._load_explained(function)

    def _load_native(self, target: str | None) -> None:
        self._native.load_fexit(target)


@register
class Lsm(_BtfProgram):
    """A BPF LSM program on a security hook; a non-zero return denies the operation.

    Kernel 5.7 or later, built with CONFIG_BPF_LSM=y and ``bpf`` in the active LSMs (``lsm=`` boot option).

    >>> prog = bpf.programs["file_open"]  # #[lsm(hook = "file_open")]  # doctest: +SKIP
    >>> link = prog.attach()  # doctest: +SKIP
    """

    kind = "Lsm"

    def load(self, hook: str | None = None) -> None:
        """Load for LSM hook ``hook`` (e.g. ``"file_open"``); None takes it from the ELF section (``lsm/<hook>``)."""
        self._load_explained(hook)

    def _load_native(self, target: str | None) -> None:
        self._native.load_lsm(target)


@register
class LsmCgroup(_BtfProgram):
    """A BPF LSM program that applies to the tasks of one cgroup.

    Kernel 6.0 or later, with CONFIG_BPF_LSM=y.

    >>> prog = bpf.programs["socket_create"]  # #[lsm_cgroup(hook = "socket_create")]  # doctest: +SKIP
    >>> link = prog.attach("/sys/fs/cgroup/unified/my.slice")  # doctest: +SKIP
    """

    kind = "LsmCgroup"

    def load(self, hook: str | None = None) -> None:
        """Load for LSM hook ``hook``; None takes it from the ELF section (``lsm_cgroup/<hook>``)."""
        self._load_explained(hook)

    def _load_native(self, target: str | None) -> None:
        self._native.load_lsm_cgroup(target)

    def attach(self, cgroup: str | os.PathLike[str]) -> Link:  # type: ignore[override]
        """Attach to the cgroup at ``cgroup`` (a folder under the cgroup v2 mount), loading first if needed."""
        folder = _args.path(cgroup, "cgroup")
        if not self._native.loaded:
            self._load_explained(None)
        return self._attached(self._native.attach_lsm_cgroup(folder))


class IterLink(Link):
    """The link of an :class:`Iter` program; :meth:`read` runs the iterator and returns what it wrote."""

    def __init__(self, native: _native.Link, link_id: int) -> None:
        super().__init__(native)
        self.link_id = link_id

    def read(self) -> bytes:
        """Run the iterator once, from the start, and return its whole output."""
        return bytes(_native.read_iter(self.link_id))


@register
class Iter(_BtfProgram):
    """A BPF iterator: a program the kernel runs over every object of a kind (tasks, maps, sockets, ...), writing
    into a seq_file that :meth:`IterLink.read` returns.

    Kernel 5.8 or later, with BTF.

    >>> link = bpf.programs["dump_tasks"].attach()  # link_section = "iter/task"  # doctest: +SKIP
    >>> print(link.read().decode())  # doctest: +SKIP
    """

    kind = "Iter"

    def load(self, iter_type: str | None = None) -> None:
        """Load for iterator type ``iter_type`` (e.g. ``"task"``, ``"bpf_map"``); None takes it from the ELF section
        (``iter/<type>``)."""
        self._load_explained(iter_type)

    def _load_native(self, target: str | None) -> None:
        self._native.load_iter(target)

    def attach(self) -> IterLink:  # type: ignore[override]  # iterator links take no bpf cookie
        """Create the iterator link, loading first if needed; :meth:`IterLink.read` runs it."""
        if not self._native.loaded:
            self._load_explained(None)
        native, link_id = self._native.attach_iter()
        return IterLink(native, link_id)


@register
class Extension(Program):
    """A program that replaces a global function of another loaded program (``freplace``).

    Kernel 5.6 or later; the target program must carry BTF. The kernel checks the replacement's return value
    against the range of the target program's type (a RawTracePoint's is [0, 0]): targets of types that may return
    anything (TracePoint, SocketFilter, ...) can be replaced by functions returning any value.

    >>> ext = bpf.programs["new_decision"]  # doctest: +SKIP
    >>> ext.load(other.programs["xdp_main"], "decide")  # doctest: +SKIP
    >>> link = ext.attach()  # doctest: +SKIP
    """

    kind = "Extension"

    def load(self, target_program: Program, function: str | None = None) -> None:  # type: ignore[override]
        """Load to replace ``function`` of ``target_program`` (which must be loaded); None takes the function from
        the ELF section (``freplace/<function>``)."""
        if not isinstance(target_program, Program):
            raise InvalidArgumentTypeError(
                "target_program must be a pyaya Program (e.g. other.programs[NAME]), "
                f"not {type(target_program).__name__}"
            )
        _args.optional_string(function, "function")
        try:
            self._native.load_extension(target_program._native, function)
        except PermissionDeniedError as error:
            _explain_refusal(self, function or (self._native.section or "").partition("/")[2] or None, error)
        except VerifierError as error:
            if "At program exit the register R0" not in error.log or "should have been in" not in error.log:
                raise
            # The kernel verifies a replacement as a main program of the target's type (resolve_prog_type), so a
            # global function returning any u64 may be refused for returning what the target type's programs may
            # not (a RawTracePoint's range is [0, 0]).
            raise VerifierError(
                f"{error.args[0]}: the kernel checks a replacement's return value against the range of the target "
                f"program's type ({target_program.kind}), not of the replaced function; replace functions of a "
                "program whose type allows any return value (a TracePoint, say) or return a value in that range",
                error.log,
                error.errno,
            ) from error

    def attach(self) -> Link:
        """Replace the function named at :meth:`load`; detaching puts the original back."""
        if not self._native.loaded:
            raise ProgramError(f"Extension program {self.name!r} is not loaded: call load(target_program, function)")
        return self._attached(self._native.attach_btf())


# -- probes --------------------------------------------------------------------------------------------------------


@register
class KProbe(Program):
    """A kprobe or kretprobe on a kernel function (``retprobe`` says which; the ELF section decides).

    Kernel 4.1 or later, built with CONFIG_KPROBES=y.

    >>> prog = bpf.programs["tcp_connect"]  # #[kprobe]  # doctest: +SKIP
    >>> link = prog.attach("tcp_connect")  # doctest: +SKIP
    """

    kind = "KProbe"

    @property
    def retprobe(self) -> bool:
        """True for a kretprobe (runs on return), False for a kprobe."""
        return self._native.retprobe

    def attach(self, function: str, offset: int = 0, *, cookie: int | None = None) -> Link:
        """Attach to kernel function ``function``, ``offset`` bytes in (kprobes only), loading first if needed.
        With ``cookie`` (a u64), the program's runs through this link read it with ``bpf_get_attach_cookie``
        (kernel 5.15+).

        Raises :class:`~pyaya.UnsupportedError` naming what is missing when this kernel has no kprobes."""
        _args.string(function, "function")
        _args.integer(offset, "offset", high=_args.U64)
        _cookie(cookie, f"{self.name!r} to kernel function {function}")
        self._ensure_loaded()
        try:
            native = self._native.attach_kprobe(function, offset, cookie)
        except ProgramError as error:
            from pyaya import features  # noqa: PLC0415 - probes only when explaining a failure

            probe = features.kprobes_supported()
            if not probe.ok:
                raise UnsupportedError(
                    f"cannot attach {'kretprobe' if self.retprobe else 'kprobe'} {self.name!r} to {function}: this "
                    f"kernel has no kprobes ({probe.reason}); they need a kernel built with CONFIG_KPROBES=y, which "
                    "provides the kprobe PMU (/sys/bus/event_source/devices/kprobe); a TracePoint, RawTracePoint or "
                    "BtfTracePoint on a nearby event works without them"
                ) from error
            raise
        return self._attached(native)

    @classmethod
    def from_pin(cls: type[PinnedT], path: str | os.PathLike[str], *, retprobe: bool = False) -> PinnedT:
        """Open the program pinned at ``path`` as this class; ``retprobe`` says it is a return probe (the kernel's
        program info does not)."""
        return cls._open_pinned(path, retprobe=retprobe)


@register
class UProbe(Program):
    """A uprobe or uretprobe on a function of a user-space binary or library (``retprobe`` says which).

    Kernel 4.1 or later (CONFIG_UPROBES=y); ``pid`` filtering via the uprobe PMU since 4.17.

    >>> prog = bpf.programs["readline"]  # #[uretprobe]  # doctest: +SKIP
    >>> link = prog.attach("/bin/bash", "readline")  # doctest: +SKIP
    >>> link = prog.attach("libc", "malloc", pid=1234)  # doctest: +SKIP
    """

    kind = "UProbe"

    @property
    def retprobe(self) -> bool:
        """True for a uretprobe (runs on return), False for a uprobe."""
        return self._native.retprobe

    def attach(
        self,
        target: str | os.PathLike[str] | None = None,
        symbol: str | None = None,
        *,
        offset: int = 0,
        pid: int | None = None,
        cookie: int | None = None,
    ) -> Link:
        """Attach to ``symbol`` (plus ``offset`` bytes) of ``target``, or at file offset ``offset`` when ``symbol``
        is None, loading first if needed. Without ``target`` (and ``symbol``, ``offset``), to the binary and
        function its ELF section names, as libbpf's ``bpf_program__attach`` does:
        ``SEC("uretprobe//bin/bash:readline")``, ``SEC("uprobe/libc.so.6:malloc+0x10")``.

        With ``cookie`` (a u64), the program's runs through this link read it with ``bpf_get_attach_cookie``
        (kernel 5.15+).

        ``target`` is a path to an ELF binary or library, or a library name (``"libc"``) looked up in the
        ld.so cache (and in ``pid``'s mappings when given). With ``pid``, only that process triggers it.

        A ``symbol`` the file does not have raises :class:`~pyaya.NotFoundError` naming the file and the closest
        symbols it has."""
        if target is None:
            if symbol is not None or offset != 0:
                raise InvalidArgumentError(
                    f"give the target with symbol={symbol!r}/offset={offset!r} (the binary or library they are in), "
                    "or none of them to take all three from the program's ELF section"
                )
            target, symbol, offset = self._section_target()
        where = _args.path(target, "target")
        _args.optional_string(symbol, "symbol")
        _args.integer(offset, "offset", high=_args.U64)
        if pid is not None:
            try:
                _args.integer(pid, "pid", low=1, high=2**31 - 1)
            except InvalidArgumentError as error:
                raise type(error)(f"{error}; pass pid=None for every process") from None
        _cookie(cookie, f"{self.name!r} to {symbol or hex(offset)} of {where}")
        self._ensure_loaded()
        return self._attached(self._native.attach_uprobe(where, symbol, offset, pid, cookie))

    def _section_target(self) -> tuple[str, str | None, int]:
        """libbpf's ``uprobe/<binary>:<function>[+<offset>]`` (or a bare ``<offset>`` for the function)."""
        section = self._native.section or ""
        prefix, _, rest = section.partition("/")
        binary, _, function = rest.partition(":")
        symbol: str | None = function
        offset = 0
        if "+" in function:
            symbol, _, added = function.partition("+")
            offset = _section_offset(added)
        elif function[:1].isdigit():
            symbol, offset = None, _section_offset(function)
        if prefix not in ("uprobe", "uretprobe", "uprobe.s", "uretprobe.s") or not binary or offset < 0 or symbol == "":
            raise InvalidArgumentError(
                f"program {self.name!r} does not name its binary and function in its ELF section ({section!r}): pass "
                'attach(binary, function), e.g. attach("/bin/bash", "readline"), or name them in the section '
                '(C: SEC("uretprobe//bin/bash:readline"))'
            )
        return binary, symbol, offset

    def attach_usdt(
        self,
        target: str | os.PathLike[str] | int,
        provider: str,
        name: str,
        *,
        pid: int | None = None,
    ) -> Link:
        """Attach to every location of USDT probe ``provider:name`` (``<sys/sdt.h>``'s ``DTRACE_PROBE``), loading
        first if needed; the program reads the probe's arguments with ``pyaya_usdt::usdt_arg(&ctx, n)``.

        ``target`` is the path of an executable or library, a library name (``"libc"``), a program on ``PATH``
        (``"python3"``), or a process id: then every file that process maps holding the probe, and only that
        process fires it. ``pid`` limits a path's probe to one process. A probe guarded by a semaphore
        (``if (PROVIDER_NAME_ENABLED())``) is enabled by the kernel in every process that maps the file, for as
        long as the link lives. One link detaches every location.

        Needs kernel 5.15 or later (a bpf cookie per uprobe). Raises :class:`~pyaya.NotFoundError` listing the
        probes the file has when it has no such probe, and :class:`~pyaya.UnsupportedError` naming the argument
        when one is in a form pyaya cannot read (see :mod:`pyaya.usdt`).

        >>> prog = bpf.programs["py_entry"]  # #[uprobe], reads pyaya_usdt::usdt_arg  # doctest: +SKIP
        >>> link = prog.attach_usdt("/usr/bin/python3", "python", "function__entry")  # doctest: +SKIP
        >>> link = prog.attach_usdt(1234, "python", "function__entry")  # one process  # doctest: +SKIP
        """
        from pyaya import usdt  # noqa: PLC0415 - only USDT users need the target resolution

        if isinstance(target, int) and not isinstance(target, bool):
            if target <= 0 or pid is not None:
                raise ProgramError(
                    f"target {target} is not a process id: give a positive pid, or a path with pid=... "
                    "(not both a pid target and pid=)"
                )
            pid = target
        if pid is not None and pid <= 0:
            raise ProgramError(f"pid must be a positive process id, not {pid}; pass pid=None for every process")
        files = usdt.probe_files(target, provider, name, pid)
        self._ensure_loaded()
        if self.retprobe:
            raise ProgramError(
                f"program {self.name!r} is a uretprobe; a USDT probe fires at a point, not on a return: use #[uprobe]"
            )
        return self._attached(self._native.attach_usdt(files, provider, name, pid))

    @classmethod
    def from_pin(cls: type[PinnedT], path: str | os.PathLike[str], *, retprobe: bool = False) -> PinnedT:
        """Open the program pinned at ``path`` as a UProbe; ``retprobe`` says it is a uretprobe."""
        return cls._open_pinned(path, retprobe=retprobe)


# -- multi-point probes --------------------------------------------------------------------------------------------


def _names(value: Iterable[str] | None, what: str) -> list[str] | None:
    """``value`` as a list of non-empty names (``None`` stays ``None``); a lone string is refused, since iterating
    it would give its letters."""
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidArgumentTypeError(f"{what} must be a list of names, not {type(value).__name__}")
    names = [_args.string(name, f"a name in {what}") for name in value]
    if not names:
        raise InvalidArgumentError(f"{what} is empty: name at least one")
    return names


def _multi_cookies(cookies: Iterable[int] | None, what: str) -> list[int] | None:
    if cookies is None:
        return None
    values = _args.integers(cookies, "cookies", expected="a list of u64 values", item="a cookie in cookies")
    _cookie(values[0] if values else 0, what)
    return values


def _one_of(what: str, **given: object) -> None:
    chosen = [name for name, value in given.items() if value is not None]
    if len(chosen) != 1:
        names = [f"{name}=" for name in given]
        options = f"{', '.join(names[:-1])} or {names[-1]}"
        raise InvalidArgumentError(f"{what}: give exactly one of {options} (got {', '.join(chosen) or 'none'})")


class MultiLink(Link):
    """The one link of a multi-point probe (:class:`UProbeMulti`, :class:`KProbeMulti`): every location it
    attached detaches together. ``locations`` lists them, in the order their cookies were given."""

    def __init__(self, native: _native.Link, locations: list[str] | list[tuple[str, int]]) -> None:
        super().__init__(native)
        self.locations = locations


def _reopen_refused(path: str | os.PathLike[str], kind: str) -> UnsupportedError:
    # Behind from_pin and from_id: the kernel's program info does not say a program was loaded as a multi-point
    # probe, so a reopened one could not be told from a plain UProbe or KProbe.
    return UnsupportedError(
        f"cannot reopen the program at {path} as a {kind}: the kernel's program info does not say which attach "
        "type a program was loaded for; pin its link instead (link.pin(...)), which keeps it attached, and reopen "
        "that with pyaya.Link.from_pin"
    )


@register
class UProbeMulti(Program):
    """A uprobe (or uretprobe) attached to many functions of one file through one ``uprobe_multi`` link:
    ``#[uprobe(multi)]``/``#[uretprobe(multi)]`` in aya-ebpf, ``SEC("uprobe.multi/...")`` in C.

    Kernel 6.6 or later (CONFIG_UPROBES=y). One link for any number of locations costs one ``BPF_LINK_CREATE``
    instead of a perf event each.

    >>> prog = bpf.programs["count_calls"]  # #[uprobe(multi)]  # doctest: +SKIP
    >>> link = prog.attach("libc", pattern="pthread_mutex_*lock")  # doctest: +SKIP
    """

    kind = "UProbeMulti"

    @property
    def retprobe(self) -> bool:
        """True for a uretprobe.multi (runs on return), False for a uprobe.multi."""
        return self._native.retprobe

    def attach(
        self,
        target: str | os.PathLike[str],
        functions: Iterable[str] | None = None,
        *,
        pattern: str | None = None,
        offsets: Iterable[int] | None = None,
        pid: int | None = None,
        cookies: Iterable[int] | None = None,
    ) -> MultiLink:
        """Attach to every function named in ``functions`` of ``target``, or every function whose name matches
        the glob ``pattern`` (``*`` and ``?``, as libbpf), or the file offsets ``offsets``, in one link; loads the
        program first if needed. Give exactly one of the three. With ``pid``, only that process triggers it.

        ``target`` is resolved as for :meth:`UProbe.attach` (a path, or a library name such as ``"libc"``), and
        symbols as there too: ``.symtab`` and ``.dynsym``, addresses made file offsets, so executables (PIE or
        not) and shared libraries work alike. ``cookies`` gives one u64 per function (or offset), in their order:
        the program reads its location's with ``bpf_get_attach_cookie``. The returned link's ``locations`` holds
        ``(name, file offset)`` of each location (for ``pattern``, sorted by name).

        A function the file lacks raises :class:`~pyaya.NotFoundError` naming the closest ones it has; a pattern
        matching nothing raises it too. Nothing is attached when anything fails."""
        where = _args.path(target, "target")
        names = _names(functions, "functions")
        if pattern is not None:
            _args.string(pattern, "pattern")
        offset_list = None
        if offsets is not None:
            offset_list = _args.integers(
                offsets, "offsets", expected="a list of file offsets", item="an offset in offsets"
            )
            if not offset_list:
                raise InvalidArgumentError("offsets is empty: give at least one file offset")
        _one_of(f"attaching {self.name!r} to {where}", functions=names, pattern=pattern, offsets=offset_list)
        if pid is not None:
            try:
                _args.integer(pid, "pid", low=1, high=2**31 - 1)
            except InvalidArgumentError as error:
                raise type(error)(f"{error}; pass pid=None for every process") from None
        if cookies is not None and pattern is not None:
            raise InvalidArgumentError(
                "cookies= goes with functions= or offsets= (one cookie each, in their order), not with pattern=: "
                "the functions a pattern matches are known only once attached"
            )
        cookie_list = _multi_cookies(cookies, f"{self.name!r} to {where}")
        self._ensure_loaded()
        native, locations = self._native.attach_uprobe_multi(where, names, pattern, offset_list, pid, cookie_list)
        return MultiLink(native, locations)

    @classmethod
    def _open_pinned(cls: type[PinnedT], path: str | os.PathLike[str], *, retprobe: bool = False) -> PinnedT:
        raise _reopen_refused(path, "UProbeMulti")


@register
class KProbeMulti(Program):
    """A kprobe (or kretprobe) attached to many kernel functions through one ``kprobe_multi`` link (fprobe):
    ``SEC("kprobe.multi/tcp_*")``/``SEC("kretprobe.multi/...")`` in C, ``#[link_section = "kprobe.multi"]`` in
    Rust (aya-ebpf 0.2's ``#[kprobe]`` has no ``multi``).

    Kernel 5.18 or later, built with CONFIG_FPROBE=y.

    >>> prog = bpf.programs["tcp_calls"]  # SEC("kprobe.multi")  # doctest: +SKIP
    >>> link = prog.attach(pattern="tcp_send*")  # doctest: +SKIP
    """

    kind = "KProbeMulti"

    @property
    def retprobe(self) -> bool:
        """True for a kretprobe.multi (runs on return), False for a kprobe.multi."""
        return self._native.retprobe

    def attach(
        self,
        functions: Iterable[str] | None = None,
        *,
        pattern: str | None = None,
        cookies: Iterable[int] | None = None,
    ) -> MultiLink:
        """Attach to every kernel function named in ``functions``, or every one whose name matches the glob
        ``pattern``, in one link; loads the program first if needed. Give exactly one of the two.

        A pattern is expanded as libbpf expands it: against ``/sys/kernel/tracing/available_filter_functions``
        (the functions ftrace can probe), each name once; the kernel then resolves each name in kallsyms.
        ``cookies`` gives one u64 per function of ``functions``, in their order, which the program reads with
        ``bpf_get_attach_cookie``. The returned link's ``locations`` lists the functions attached.

        Raises :class:`~pyaya.UnsupportedError` naming what is missing when this kernel has no kprobes or no
        fprobe, :class:`~pyaya.NotFoundError` when a function cannot be probed or a pattern matches nothing.
        Nothing is attached when anything fails."""
        names = _names(functions, "functions")
        if pattern is not None:
            _args.string(pattern, "pattern")
        _one_of(f"attaching {self.name!r}", functions=names, pattern=pattern)
        if cookies is not None and pattern is not None:
            raise InvalidArgumentError(
                "cookies= goes with functions= (one cookie each, in their order), not with pattern=: the functions "
                "a pattern matches are known only once attached"
            )
        cookie_list = _multi_cookies(cookies, f"{self.name!r} to kernel functions")
        from pyaya import features  # noqa: PLC0415 - probes only for kprobe users

        probe = features.kprobes_supported()
        if not probe.ok:
            raise UnsupportedError(
                f"cannot attach {'kretprobe' if self.retprobe else 'kprobe'}.multi {self.name!r}: this kernel has "
                f"no kprobes ({probe.reason}); multi-point kprobes need a kernel built with CONFIG_KPROBES=y and "
                "CONFIG_FPROBE=y (5.18+); a TracePoint, RawTracePoint or BtfTracePoint on a nearby event works "
                "without them"
            )
        self._ensure_loaded()
        native, locations = self._native.attach_kprobe_multi(names, pattern, cookie_list)
        return MultiLink(native, locations)

    @classmethod
    def _open_pinned(cls: type[PinnedT], path: str | os.PathLike[str], *, retprobe: bool = False) -> PinnedT:
        raise _reopen_refused(path, "KProbeMulti")


# -- perf events ---------------------------------------------------------------------------------------------------


class PerfEventKind(str, enum.Enum):
    """Where a perf event comes from: the kernel's software counters or the CPU's hardware PMU."""

    SOFTWARE = "software"
    HARDWARE = "hardware"


# Plain strings, checked with os.path (pathlib costs ~9 ms to import), and only when an attach has failed.
_HARDWARE_PMU = "/sys/bus/event_source/devices/cpu"
_BREAKPOINT_PMU = "/sys/bus/event_source/devices/breakpoint"


@register
class PerfEvent(Program):
    """A program run on perf event samples: a timer (``cpu-clock``), a software counter or a hardware counter.

    Kernel 4.9 or later.

    >>> prog = bpf.programs["profile"]  # #[perf_event]  # doctest: +SKIP
    >>> link = prog.attach("cpu-clock", sample_frequency=99)  # every online CPU  # doctest: +SKIP
    """

    kind = "PerfEvent"

    @staticmethod
    def events() -> dict[str, PerfEventKind]:
        """Every event name :meth:`attach` accepts (as ``perf list`` spells them), with its kind."""
        return {name: PerfEventKind(kind) for name, kind in _native.perf_event_names()}

    def attach(
        self,
        event: str = "cpu-clock",
        *,
        sample_period: int | None = None,
        sample_frequency: int | None = None,
        cpus: Iterable[int] | None = None,
        pid: int | None = None,
        cookie: int | None = None,
    ) -> Link:
        """Attach to ``event``, loading first if needed; one attachment per CPU, all in the returned link.

        Sample every ``sample_period`` events (for clocks: nanoseconds) or ``sample_frequency`` times a second
        (99 Hz when neither is given). ``cpus`` limits it to those CPUs (default: every online CPU); ``pid``
        samples only that process (0: this process) on any CPU, or on ``cpus`` if given. With ``cookie`` (a u64),
        the program's runs through this link read it with ``bpf_get_attach_cookie`` (kernel 5.15+)."""
        events = self.events()
        if not isinstance(event, str):
            raise InvalidArgumentTypeError(f"event must be a perf event name (a str), not {type(event).__name__}")
        if event not in events:
            import difflib  # noqa: PLC0415 - only for the error message

            close = difflib.get_close_matches(event, list(events), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InvalidArgumentError(
                f"no perf event named {event!r}{hint}: PerfEvent.events() lists them, e.g. cpu-clock, task-clock, "
                "page-faults, context-switches (software), cycles, instructions (hardware)"
            )
        if sample_period is not None and sample_frequency is not None:
            raise InvalidArgumentError("give sample_period or sample_frequency, not both")
        if sample_period is not None:
            _args.integer(sample_period, "sample_period", low=1, high=_args.U64)
        if sample_frequency is not None:
            _args.integer(sample_frequency, "sample_frequency", low=1, high=_args.U64)
        cpu_list = _perf_placement(cpus, pid)
        _cookie(cookie, f"{self.name!r} to perf event {event}")
        self._ensure_loaded()
        try:
            native = self._native.attach_perf_event(event, sample_period, sample_frequency, cpu_list, pid, cookie)
        except ProgramError as error:
            missing = error.errno in (errno_codes.ENOENT, errno_codes.EOPNOTSUPP, errno_codes.ENODEV)
            if events.get(event) is PerfEventKind.HARDWARE and missing and not os.path.exists(_HARDWARE_PMU):
                raise UnsupportedError(
                    f"cannot attach {self.name!r} to hardware event {event}: this machine exposes no hardware PMU "
                    f"({_HARDWARE_PMU} does not exist; common in virtual machines): use a software event such as "
                    "cpu-clock"
                ) from error
            raise
        return self._attached(native)

    def attach_breakpoint(
        self,
        address: int,
        access: Literal["r", "w", "rw", "x"] = "w",
        *,
        length: Literal[1, 2, 4, 8] = 8,
        sample_period: int = 1,
        pid: int | None = None,
        cpus: Iterable[int] | None = None,
        cookie: int | None = None,
    ) -> Link:
        """Run the program when memory at ``address`` is accessed: a hardware breakpoint (a debug register; x86
        CPUs have four), loading first if needed. ``access`` is ``"r"`` (read: on x86 a read is caught with
        ``"rw"`` only, the CPU has no read-only watchpoint), ``"w"`` (written), ``"rw"`` over ``length`` bytes (1,
        2, 4 or 8, the address aligned to it), or ``"x"`` (the instruction at ``address`` executes). The program
        runs every ``sample_period`` hits; its context's ``addr`` is the address.

        A user-space address means that process's memory: give ``pid`` (0: this process), as ``perf record -e
        mem:ADDR:w -p PID`` does; without ``pid`` the breakpoint watches a kernel address on every CPU (or
        ``cpus``). ``cookie`` as in :meth:`attach`."""
        address = _args.integer(address, "address", low=0, high=_args.U64)
        if access not in ("r", "w", "rw", "x"):
            raise InvalidArgumentError(
                f"access must be 'r', 'w', 'rw' (a data breakpoint) or 'x' (an instruction one), not {access!r}"
            )
        if length not in (1, 2, 4, 8):
            raise InvalidArgumentError(f"length must be 1, 2, 4 or 8 bytes, not {length!r}")
        if access != "x" and address % length:
            raise InvalidArgumentError(
                f"address {address:#x} is not aligned to its length ({length} bytes): the CPU watches aligned "
                "windows; watch the aligned address below it with a larger length, or a smaller length"
            )
        _args.integer(sample_period, "sample_period", low=1, high=_args.U64)
        cpu_list = _perf_placement(cpus, pid)
        _cookie(cookie, f"{self.name!r} to a breakpoint at {address:#x}")
        self._ensure_loaded()
        try:
            native = self._native.attach_breakpoint(address, access, length, sample_period, cpu_list, pid, cookie)
        except ProgramError as error:
            if error.errno == errno_codes.ENOENT and not os.path.exists(_BREAKPOINT_PMU):
                raise UnsupportedError(
                    f"cannot attach {self.name!r} to a breakpoint: this kernel has no breakpoint PMU "
                    f"({_BREAKPOINT_PMU} does not exist; it needs CONFIG_HAVE_HW_BREAKPOINT)"
                ) from error
            if error.errno == errno_codes.ENOSPC:
                raise ProgramError(
                    f"cannot attach {self.name!r} to a breakpoint at {address:#x}: every debug register of the CPU "
                    "is taken (x86 has four; perf, gdb and other breakpoints share them): detach one first",
                    error.errno,
                ) from error
            raise
        return self._attached(native)


def _section_offset(text: str) -> int:
    """An offset of a uprobe section (``0x10``, ``16``); -1 when it is not a number."""
    try:
        return int(text, 0)
    except ValueError:
        return -1
