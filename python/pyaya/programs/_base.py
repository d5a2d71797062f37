"""What every program type shares: the :class:`Program` base class, :class:`Link`, and the registry that maps
aya's program type names to the typed classes of :mod:`pyaya.programs`."""

from __future__ import annotations

import builtins
import itertools
import os
from contextlib import contextmanager

from pyaya import _args, _native
from pyaya._record import frozen
from pyaya._typing import cast
from pyaya.errors import InvalidArgumentTypeError, NotFoundError, ProgramError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from types import TracebackType
    from typing import ClassVar, TypedDict, TypeVar

    ProgramT = TypeVar("ProgramT", bound="type[Program]")
    PinnedT = TypeVar("PinnedT", bound="Program")
else:
    # ProgramInfo only describes the dict the native info() returns: at run time a plain dict subclass carries its
    # docstring and fields, without importing typing (~9 ms) for TypedDict.
    TypedDict = dict

__all__ = ["Link", "Program", "ProgramInfo", "TestRunResult", "class_for", "enable_stats", "register"]

_CLASSES: dict[str, type[Program]] = {}
# The program types crates/pyaya-native/src/testrun.rs can test-run.
_TEST_RUN_TYPES = frozenset(
    {"Xdp", "SchedClassifier", "SocketFilter", "ReusePortSocketFilter", "CgroupSkb", "FlowDissector", "RawTracePoint"}
)


def register(cls: ProgramT) -> ProgramT:
    """Class decorator: ``cls`` is the Python face of programs whose native ``kind`` is ``cls.kind``."""
    _CLASSES[cls.kind] = cls
    return cls


def class_for(kind: str) -> type[Program]:
    """The typed class for a native program kind; :class:`Program` for kinds without one."""
    return _CLASSES.get(kind, Program)


_OPENING = itertools.count()


@contextmanager
def _pinned_by_id(kind: str, object_id: int) -> Iterator[Path]:
    """The loaded program or link ``object_id``, pinned for a moment under a private name in bpffs: aya opens
    programs and links only from pins. The pin is removed on the way out (the opened handle keeps the object)."""
    _args.integer(object_id, f"{kind} id", low=1, high=_args.U32)
    from pyaya import features  # noqa: PLC0415 (mount table read only here)

    root = features.bpffs_mount()
    if root is None:
        raise NotFoundError(
            f"opening a {kind} by id needs bpffs, where pyaya pins it for a moment: mount it with "
            "`mount -t bpf bpf /sys/fs/bpf`"
        )
    # bpffs refuses names with a dot: this one is made unique by the pid and a per-call counter.
    pin = root / f"pyaya-opening-{kind}-{object_id}-{os.getpid()}-{next(_OPENING)}"
    _native.pin_by_id(kind, object_id, pin)
    try:
        yield pin
    finally:
        pin.unlink(missing_ok=True)


class ProgramInfo(TypedDict):
    """What the kernel's ``bpf_prog_info`` says about a loaded program, under bpftool's names. ``None`` where this
    kernel says nothing (older kernels lack some fields; ``map_ids`` and ``bytes_memlock`` need privilege)."""

    id: int
    tag: str
    type: int
    name: str
    run_count: int
    run_time_ns: int
    bytes_jited: int
    bytes_xlated: int | None
    loaded_at: float | None
    uid: int | None
    map_ids: list[int] | None
    btf_id: int | None
    verified_insns: int | None
    bytes_memlock: int | None
    gpl_compatible: bool | None


class Link:
    """One attachment of a program; a context manager that detaches on exit.

    An attachment lives while anyone holds it: its program (``program.links``, until :meth:`Program.unload` or the
    object's :meth:`~pyaya.Ebpf.close`) or a ``Link`` handle. Attaching without keeping the link works (the program
    keeps it); keeping the handle keeps the attachment after the program is unloaded or its object closed, until
    :meth:`detach` or the last handle is dropped (as aya's ``take_link``). A pinned link stays attached without any
    holder until its pin is removed. Links are bpf_link fds where the kernel has them, so a killed process leaves
    nothing attached unless a link was pinned. A link holds neither its program nor its object: dropping those
    handles still frees them.
    """

    def __init__(self, native: _native.Link) -> None:
        self._native = native

    @property
    def program(self) -> str:
        return self._native.program

    @property
    def attached(self) -> bool:
        return self._native.attached

    @property
    def priority(self) -> int | None:
        """The priority of a netlink TC filter (lower runs first), as the kernel gave it; ``None`` for other
        links (tcx, XDP, ...) and once detached."""
        return self._netlink_tc("priority")

    @property
    def handle(self) -> int | None:
        """The handle of a netlink TC filter (which tells apart filters of one priority); ``None`` for other
        links and once detached."""
        return self._netlink_tc("handle")

    @property
    def classid(self) -> int | None:
        """The class id (``TCA_BPF_CLASSID``, ``major << 16 | minor``) a netlink TC filter was attached with, 0
        when none was given; ``None`` for other links and once detached."""
        return self._netlink_tc("classid")

    def _netlink_tc(self, field: str) -> int | None:
        netlink = self._native.netlink
        if netlink is None or netlink.get("kind") != "tc":
            return None
        return int(netlink[field])

    @property
    def pinned_path(self) -> Path | None:
        """Where the link is pinned in bpffs, or ``None``."""
        return self._native.pinned_path

    def detach(self) -> None:
        """Detach the program from this attach point now, for every handle of this process on it and its program
        (removing its pin, if any). A link another process (or :meth:`from_id`) also holds stays until that holder
        lets go too. Safe to call twice."""
        self._native.detach()

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin the link in bpffs at ``path``: it stays attached after this process exits, until :meth:`unpin`
        (or :meth:`detach`) removes the pin. Only bpf_link attachments can be pinned (kernel 5.7+). ``path``
        must be in a folder on bpffs (e.g. under ``/sys/fs/bpf``); the pin gets mode 0600."""
        self._native.pin(_args.path(path, "path"))

    def unpin(self) -> None:
        """Remove the pin; the link then lives as long as this handle (or its program, if still loaded)."""
        self._native.unpin()

    @classmethod
    def from_pin(cls, path: str | os.PathLike[str]) -> Link:
        """Open a link that this or another process pinned at ``path``; :meth:`detach` removes the pin and
        detaches it."""
        return cls(_native.Link.from_pin(_args.path(path, "path")))

    @classmethod
    def from_id(cls, link_id: int) -> Link:
        """Open the bpf_link with kernel id ``link_id`` (``pyaya.loaded_links()`` lists them), made by this or
        another process. The handle holds the link: :meth:`detach` (or dropping the last handle) releases it,
        which detaches it once its maker let go too. Needs bpffs, where it is pinned for a moment to be opened.

        >>> link = pyaya.Link.from_id(42)  # doctest: +SKIP
        >>> link.pin("/sys/fs/bpf/kept")  # doctest: +SKIP
        """
        with _pinned_by_id("link", link_id) as pin:
            native = _native.Link.from_pin(pin)
            native.unpin()
        return cls(native)

    def __enter__(self) -> Link:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.detach()

    def __eq__(self, other: object) -> bool:
        """Handles on the same attachment are equal (``program.links`` hands out new handles)."""
        if not isinstance(other, Link):
            return NotImplemented
        return self._native.identity == other._native.identity

    def __hash__(self) -> int:
        return hash(self._native.identity)

    def __repr__(self) -> str:
        state = "detached" if not self.attached else f"pinned at {self.pinned_path}" if self.pinned_path else "attached"
        return f"<pyaya.Link of {self.program!r}: {state}>"


@frozen
class TestRunResult:
    """What one :meth:`Program.test_run` gave back.

    ``return_value`` is the program's verdict (e.g. ``XDP_PASS``); ``data`` the packet as the program left it;
    ``ctx`` the context as the program left it (empty when no ``ctx`` was passed); ``duration_ns`` the kernel's
    average time per run (0 for raw tracepoints, which the kernel does not time).
    """

    __test__ = False  # not a pytest test class, despite its name

    return_value: int
    data: bytes
    ctx: bytes
    duration_ns: int


class Program:
    """A program of a loaded object. Load it with :meth:`load`, then attach it with its type's ``attach``."""

    kind: ClassVar[str] = "Program"

    loaded_ahead: bool = False
    """Loaded by :meth:`pyaya.runtime.Session.load` before main.py asked (``pyaya run --watch`` verifies a new run's
    programs before it stops the old run): main.py's own ``load()`` then has nothing left to do."""

    def __init__(self, native: _native.Program) -> None:
        self._native = native

    @property
    def links(self) -> list[Link]:
        """The attachments this program keeps (so attaching without keeping the link works), oldest first: new
        handles, equal to the ones ``attach`` returned. Empty once the program is unloaded or its object closed."""
        if self._native.closed:
            return []
        return [Link(native) for native in self._native.links()]

    def _attached(self, native: _native.Link) -> Link:
        return Link(native)

    @property
    def name(self) -> str:
        return self._native.name

    @property
    def type(self) -> str:
        """The program type's name, e.g. ``"TracePoint"``."""
        return self._native.kind

    @property
    def loaded(self) -> bool:
        return self._native.loaded

    def load(self) -> None:
        """Verify and load the program into the kernel.

        Raises :class:`~pyaya.VerifierError` (with ``.log``) when the verifier rejects it and
        :class:`~pyaya.PermissionDeniedError` without the needed privilege.
        """
        if self.loaded_ahead and self._native.loaded:
            return
        self._native.load()

    def unload(self) -> None:
        """Unload the program. Its links that no :class:`Link` handle holds are detached; those still held stay
        attached (and the kernel keeps the program for them) until they are detached or dropped."""
        self._native.unload()

    def attach_to_link(self, link: Link, *, replacing: Program | None = None) -> Link:
        """Make ``link`` run this program instead of its current one, atomically (``BPF_LINK_UPDATE``; aya's
        ``attach_to_link``, libbpf's ``bpf_link__update_program``): no packet or event meets no program in
        between. ``link`` may come from this object, another one, :meth:`Link.from_pin` or :meth:`Link.from_id`,
        so a pinned XDP link can be upgraded to a newly built program without a gap. With ``replacing``, only while
        the link still runs that program (else :class:`~pyaya.ProgramError`, and nothing changes). Loads this
        program first when needed. The link then belongs to this program (its :attr:`links`, its
        :meth:`unload`), and ``link.program`` names it; returns ``link``.

        The kernel replaces programs of bpf_links of XDP, tcx, cgroup, sock_ops, sk_lookup, flow dissector and
        lsm_cgroup programs, with one of the same type and attach type; anything else (netlink TC filters or XDP
        programs, tracing links) raises :class:`~pyaya.UnsupportedError` and leaves the link as it was.

        >>> new = pyaya.Ebpf.load_file("v2").programs["filter"]  # doctest: +SKIP
        >>> new.attach_to_link(pyaya.Link.from_pin("/sys/fs/bpf/filter"))  # doctest: +SKIP
        """
        if not isinstance(link, Link):
            raise InvalidArgumentTypeError(f"link must be a pyaya.Link, not {type(link).__name__}")
        if replacing is not None and not isinstance(replacing, Program):
            raise InvalidArgumentTypeError(f"replacing must be a pyaya.Program or None, not {type(replacing).__name__}")
        if not self._native.loaded:
            self.load()
        self._native.attach_to_link(link._native, replacing=None if replacing is None else replacing._native)
        return link

    def info(self) -> ProgramInfo:
        """Everything the kernel's ``bpf_prog_info`` says about the loaded program, as bpftool shows it: ``id``,
        ``tag``, ``type`` (number), ``name``, ``run_count`` and ``run_time_ns`` (counted under
        :func:`enable_stats`), ``bytes_jited``, ``bytes_xlated``, ``loaded_at`` (Unix time, seconds), ``uid``,
        ``map_ids``, ``btf_id``, ``verified_insns``, ``bytes_memlock``, ``gpl_compatible``.

        >>> prog.info()["verified_insns"]  # doctest: +SKIP
        42
        """
        return cast(ProgramInfo, self._native.info())

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin the loaded program at ``path`` in bpffs: it stays loaded after this process exits, until
        :meth:`unpin` (or removing the file) drops the pin. The folder must exist on a bpffs mount; the pin gets
        mode 0600."""
        self._native.pin(_args.path(path, "path"))

    def unpin(self) -> None:
        """Remove the pin made by :meth:`pin` (or the one :meth:`from_pin` opened)."""
        self._native.unpin()

    @classmethod
    def from_pin(cls: builtins.type[PinnedT], path: str | os.PathLike[str]) -> PinnedT:
        """Open the program pinned at ``path`` (by this or another process) as its typed class.

        The type comes from the kernel's program info. Types the kernel does not tell apart are settled by the
        class called: ``UProbe.from_pin`` (not KProbe), ``FEntry``/``FExit``/``BtfTracePoint``/``Iter.from_pin``
        for tracing programs. XDP programs reopen for interfaces; CgroupSkb/Sock/SockAddr/Sockopt, SkSkb and
        SkReuseport programs cannot be reopened (the kernel does not report the attach type they were loaded for).
        The handle holds the program until it is garbage collected; the pin stays.

        >>> prog = pyaya.Program.from_pin("/sys/fs/bpf/execwatch")  # doctest: +SKIP
        >>> prog.attach("syscalls", "sys_enter_execve")  # doctest: +SKIP
        """
        return cls._open_pinned(path)

    @classmethod
    def from_id(cls: builtins.type[PinnedT], program_id: int, *, retprobe: bool = False) -> PinnedT:
        """Open the loaded program with kernel id ``program_id`` (``pyaya.loaded_programs()`` lists them), loaded
        by this or another process, as its typed class; what :meth:`from_pin` says about types holds here too
        (``retprobe`` for a return kprobe/uprobe). The handle keeps the program loaded while it lives. Needs bpffs,
        where it is pinned for a moment to be opened.

        >>> prog = pyaya.Program.from_id(42)  # doctest: +SKIP
        >>> prog.info()["name"]  # doctest: +SKIP
        """
        with _pinned_by_id("program", program_id) as pin:
            try:
                program = cls._open_pinned(pin, retprobe=retprobe)
            except ProgramError as error:
                # The from_pin code names the momentary pin; the caller knows the program by its id.
                message = str(error).replace(f"the program pinned at {pin}", f"program {program_id}")
                raise ProgramError(message, error.errno) from None
            program._native.unpin()
        return program

    @classmethod
    def _open_pinned(cls: builtins.type[PinnedT], path: str | os.PathLike[str], *, retprobe: bool = False) -> PinnedT:
        pin = _args.path(path, "path")
        _args.flag(retprobe, "retprobe")
        hint = None if cls is Program else cls.kind
        if hint is None:
            hint = _tracing_kind(pin)
        native = _native.Program.from_pin(pin, hint, retprobe)
        program = class_for(native.kind)(native)
        if not isinstance(program, cls):
            raise ProgramError(f"the program pinned at {path} is a {native.kind} program, not a {cls.kind}")
        return program

    def test_run(
        self, data: bytes = b"", *, ctx: bytes | None = None, repeat: int = 1, data_out_size: int | None = None
    ) -> TestRunResult:
        """Run the program in the kernel on ``data`` without attaching it (``BPF_PROG_TEST_RUN``), loading it first
        if needed.

        Works for Xdp, SchedClassifier, SocketFilter, CgroupSkb and FlowDissector programs (``data`` is a packet
        from its Ethernet header; ``ctx`` optionally a ``struct __sk_buff`` / ``xdp_md``) and for RawTracePoint
        programs (``ctx`` is their arguments as packed u64 values, ``data`` stays empty). ``repeat`` runs it that
        many times (the duration is the average); ``data_out_size`` bounds the output packet (default: the input
        size plus 4096). Other types raise :class:`~pyaya.UnsupportedError`.

        >>> result = bpf.programs["xdp_drop"].test_run(packet)  # doctest: +SKIP
        >>> result.return_value == pyaya.XDP_DROP  # doctest: +SKIP
        """
        packet = _args.buffer(data, "data")
        context = None if ctx is None else _args.buffer(ctx, "ctx")
        _args.integer(repeat, "repeat", low=1, high=_args.U32)
        if data_out_size is not None:
            _args.integer(data_out_size, "data_out_size", low=0, high=_args.U32)
        if self.type in _TEST_RUN_TYPES:  # others get the native UnsupportedError, not a load attempt first
            self._ensure_loaded()
        return_value, data_out, ctx_out, duration_ns = self._native.test_run(
            packet, ctx=context, repeat=repeat, data_out_size=data_out_size
        )
        return TestRunResult(return_value, data_out, ctx_out, duration_ns)

    def _ensure_loaded(self) -> None:
        if not self._native.loaded:
            self._native.load()

    def __repr__(self) -> str:
        state = " (object closed)" if self._native.closed else " loaded" if self.loaded else ""
        return f"<pyaya.{self.type} {self.name!r}{state}>"


def _tracing_kind(path: Path) -> str | None:
    """For a pinned tracing program, its pyaya type from the kernel BTF type it attaches to: a ``btf_trace_*``
    typedef (BtfTracePoint), a ``bpf_iter_*`` function (Iter), or another function (FEntry; the kernel's info does
    not tell fentry from fexit). None for other program types; ProgramError where the kernel's info does not say."""
    tracing, btf_id = _native.pinned_program_target(path)
    if not tracing:
        return None
    if btf_id == 0:
        # Older kernels (5.10) leave attach_btf_id out of the program info: nothing says which tracing type it is.
        raise ProgramError(
            f"the tracing program pinned at {path} cannot be typed: this kernel's program info does not name what "
            "it attaches to (attach_btf_id is 0); open it with its class: Iter.from_pin(path), "
            "FEntry.from_pin(path), FExit.from_pin(path) or BtfTracePoint.from_pin(path)"
        )
    from pyaya.btf import Btf  # noqa: PLC0415 (parsing vmlinux is only needed here)
    from pyaya.errors import PyayaError  # noqa: PLC0415

    try:
        name = Btf.vmlinux().name_of(btf_id)
    except PyayaError:
        return "FEntry"
    if name.startswith("btf_trace_"):
        return "BtfTracePoint"
    if name.startswith("bpf_iter_"):
        return "Iter"
    return "FEntry"


@contextmanager
def enable_stats() -> Iterator[None]:
    """Count the runs and run time of every BPF program while the block runs (``BPF_ENABLE_STATS``, kernel 5.8+,
    needs CAP_SYS_ADMIN); ``program.info()["run_count"]`` and ``["run_time_ns"]`` stay 0 without it.

    >>> with pyaya.enable_stats():  # doctest: +SKIP
    ...     time.sleep(1)
    ...     print(prog.info()["run_count"])
    """
    stats = _native.enable_stats()
    try:
        yield
    finally:
        stats.close()
