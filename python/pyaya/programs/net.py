"""Networking and cgroup program types: XDP, TC classifiers, socket filters, cgroup hooks, sock_ops, socket-map
programs, sk_lookup and flow dissectors. Each ``attach`` loads the program first if needed and returns a
:class:`~pyaya.Link`; closing the object detaches everything it attached.

The action constants are the values these programs return, and what :meth:`Program.test_run` reports in
``return_value``.
"""

from __future__ import annotations

import os

from pyaya import _args, _native, attachments
from pyaya.errors import InvalidArgumentError, InvalidArgumentTypeError
from pyaya.programs._base import Link, Program, register

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal, Protocol

    from pyaya.maps import Map

    class _HasFileno(Protocol):
        def fileno(self) -> int: ...


__all__ = [
    "SK_DROP",
    "SK_PASS",
    "TC_ACT_OK",
    "TC_ACT_PIPE",
    "TC_ACT_RECLASSIFY",
    "TC_ACT_REDIRECT",
    "TC_ACT_SHOT",
    "TC_ACT_STOLEN",
    "TC_ACT_UNSPEC",
    "XDP_ABORTED",
    "XDP_DROP",
    "XDP_PASS",
    "XDP_REDIRECT",
    "XDP_TX",
    "CgroupDevice",
    "CgroupSkb",
    "CgroupSock",
    "CgroupSockAddr",
    "CgroupSockopt",
    "CgroupSysctl",
    "FlowDissector",
    "SchedClassifier",
    "SkLookup",
    "SkMsg",
    "SkReuseport",
    "SkSkb",
    "SockOps",
    "SocketFilter",
    "Xdp",
    "tcx_programs",
]

# enum xdp_action
XDP_ABORTED = 0
XDP_DROP = 1
XDP_PASS = 2
XDP_TX = 3
XDP_REDIRECT = 4

# TC_ACT_* of linux/pkt_cls.h (test_run reports TC_ACT_UNSPEC as 0xFFFFFFFF: return values are unsigned there)
TC_ACT_UNSPEC = -1
TC_ACT_OK = 0
TC_ACT_RECLASSIFY = 1
TC_ACT_SHOT = 2
TC_ACT_PIPE = 3
TC_ACT_STOLEN = 4
TC_ACT_REDIRECT = 7

# enum sk_action: the verdicts of sk_msg, sk_skb and sk_lookup programs
SK_DROP = 0
SK_PASS = 1

PathArg = str | os.PathLike[str]
#: XDP_FLAGS_*_MODE of each mode (None: the kernel picks, no flag).
_XDP_MODE_FLAGS = {"skb": 2, "drv": 4, "hw": 8}
#: The values ``Xdp.attach`` takes as ``mode``, and the directions of TC and cgroup_skb attachments.
XDP_MODES = ("skb", "drv", "hw", None)
DIRECTIONS = ("ingress", "egress")


class _CgroupProgram(Program):
    def attach(self, cgroup: PathArg) -> Link:
        """Attach to the cgroup v2 directory ``cgroup`` (e.g. ``/sys/fs/cgroup/unified/mygroup``): the program
        then runs for every process in that cgroup and its descendants. Loads the program first if needed."""
        folder = _args.path(cgroup, "cgroup")
        self._ensure_loaded()
        return self._attached(self._native.attach_cgroup(folder))


@register
class Xdp(Program):
    """An eXpress Data Path program: runs on every packet an interface receives, before the kernel allocates
    anything for it, and returns a verdict (:data:`XDP_PASS`, :data:`XDP_DROP`, :data:`XDP_TX`, ...).

    Kernel 4.8 or later (bpf_link attachments: 5.9; before, aya attaches through netlink, which stays on the
    interface if the process is killed: pyaya records it and removes it then, see :mod:`pyaya.attachments`).

    >>> link = bpf.programs["firewall"].attach("eth0", mode="skb")  # doctest: +SKIP
    """

    kind = "Xdp"

    def attach(self, interface: str | int, mode: Literal["skb", "drv", "hw"] | None = None) -> Link:
        """Attach to ``interface`` (a name or an index). ``mode``: ``"skb"`` (generic, works on any interface),
        ``"drv"`` (native, in the driver), ``"hw"`` (offloaded to the NIC) or ``None`` (the kernel picks)."""
        _args.interface(interface)
        _args.choice(mode, "XDP mode", XDP_MODES)
        self._ensure_loaded()
        with attachments.recording(self, "xdp", interface, mode=_XDP_MODE_FLAGS.get(mode or "", 0)) as attached:
            native = self._native.attach_xdp(interface, mode)
            attached(native)
        return self._attached(native)


@register
class SchedClassifier(Program):
    """A traffic-control classifier (``tc``) in direct-action mode: sees every packet entering or leaving an
    interface as an ``__sk_buff``, may rewrite it, and returns :data:`TC_ACT_OK`, :data:`TC_ACT_SHOT`, ...

    Kernel 4.1 or later; tcx attachments (no qdisc, bpf_link) from 6.6.

    >>> link = bpf.programs["tc_egress"].attach("eth0", "egress")  # doctest: +SKIP
    """

    kind = "SchedClassifier"

    def attach(
        self,
        interface: str | int,
        direction: Literal["ingress", "egress"] | None = None,
        *,
        priority: int = 0,
        handle: int = 0,
        classid: int = 0,
        before: Program | Link | None = None,
        after: Program | Link | None = None,
        first: bool = False,
        last: bool = False,
    ) -> Link:
        """Attach to ``interface`` (a name or an index) in ``direction``: by default the one a libbpf section names
        (``SEC("tc/egress")``, ``SEC("tcx/egress")``), else ingress.

        On kernels with tcx (6.6+) this needs no qdisc and is a bpf_link, appended to the interface's tcx chain;
        ``before=`` / ``after=`` (a loaded program already in the chain, or its :class:`Link`), ``first=True`` or
        ``last=True`` place it elsewhere in the chain (:func:`tcx_programs` shows the order). With a ``priority``
        or ``handle`` (netlink concepts: lower priorities run first; the handle tells apart filters of one
        priority, 0 lets the kernel pick) or on older kernels it is a netlink filter on the interface's ``clsact``
        qdisc, which is added when missing (and removed with the last filter when pyaya added it); the link's
        ``netlink`` dict reports the priority and handle the filter got. ``classid`` (``major:minor`` as one
        number, e.g. ``0x10001`` for ``1:1``) sets the filter's class (``TCA_BPF_CLASSID``, where packets go when
        the program returns ``TC_ACT_UNSPEC``) and so also makes it a netlink filter. A netlink filter stays on
        the interface if the process is killed: pyaya records it, and its guard process or ``pyaya cleanup``
        removes it (see :mod:`pyaya.attachments`).

        >>> link = bpf.programs["count"].attach("eth0", "ingress", before=bpf.programs["police"])  # doctest: +SKIP
        """
        _args.interface(interface)
        if direction is None:
            section = self._native.section or ""
            direction = "egress" if section in ("tc/egress", "tcx/egress") else "ingress"
        _args.choice(direction, "direction", DIRECTIONS)
        _args.integer(priority, "priority", high=_args.U16)
        _args.integer(handle, "handle", high=_args.U32)
        _args.integer(classid, "classid", high=_args.U32)
        order = _tcx_order(before=before, after=after, first=_args.flag(first, "first"), last=_args.flag(last, "last"))
        if order is not None and (priority or handle or classid):
            raise InvalidArgumentError(
                "before=/after=/first=/last= order tcx attachments, priority=/handle=/classid= netlink filters: "
                "give one kind or the other"
            )
        self._ensure_loaded()
        with attachments.recording(
            self, "tc", interface, direction=direction, priority=priority, handle=handle, classid=classid
        ) as attached:
            native = self._native.attach_sched_classifier(interface, direction, priority, handle, order, classid)
            attached(native)
        return self._attached(native)


def _tcx_order(
    *, before: Program | Link | None, after: Program | Link | None, first: bool, last: bool
) -> tuple[str, int] | None:
    """The native ``order`` of a tcx attach: ``(place, program id)``, or None to append."""
    given = [name for name, value in (("before", before), ("after", after), ("first", first), ("last", last)) if value]
    if len(given) > 1:
        raise InvalidArgumentError(f"give at most one of before=, after=, first=, last= (got {', '.join(given)})")
    if first:
        return ("first", 0)
    if last:
        return ("last", 0)
    anchor, place = (before, "before") if before is not None else (after, "after")
    if anchor is None:
        return None
    if isinstance(anchor, Program):
        return (place, int(anchor.info()["id"]))
    if isinstance(anchor, Link):
        program_id = anchor._native.program_id
        if program_id is None:
            raise InvalidArgumentError(
                f"{place}= takes a tcx link made by this process (or a program); this link is not one "
                f"(detached, netlink, or opened from a pin): pass its program instead"
            )
        return (place, program_id)
    raise InvalidArgumentTypeError(f"{place}= must be a pyaya Program or Link, not {type(anchor).__name__}")


def tcx_programs(interface: str | int, direction: Literal["ingress", "egress"] = "ingress") -> list[tuple[int, str]]:
    """The programs of the tcx chain of ``interface`` in ``direction``, in the order they run: ``(program id,
    name)`` pairs (the kernel's ``BPF_PROG_QUERY``; kernel 6.6+). Netlink filters are not in it (see ``tc filter
    show``).

    >>> pyaya.tcx_programs("eth0", "ingress")  # doctest: +SKIP
    [(41, 'count'), (42, 'police')]
    """
    _args.interface(interface)
    _args.choice(direction, "direction", DIRECTIONS)
    return _native.tcx_programs(interface, direction)[1]


@register
class SocketFilter(Program):
    """A socket filter: runs on every packet queued to one socket and returns how many bytes to keep (0 drops
    the packet).

    Kernel 3.19 or later.

    >>> sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # doctest: +SKIP
    >>> link = bpf.programs["filter"].attach(sock)  # doctest: +SKIP
    """

    kind = "SocketFilter"

    def attach(self, sock: _HasFileno) -> Link:
        """Attach to ``sock`` (a :class:`socket.socket`, or anything with ``fileno()``). The filter stays with the
        socket: closing the socket removes it, and detaching the link removes it from a socket still open.
        pyaya does not keep the socket open. Such a link cannot be pinned."""
        fd = _args.fileno(sock, "sock")
        self._ensure_loaded()
        return self._attached(self._native.attach_socket_filter(fd))

    def attach_reuseport(self, sock: _HasFileno) -> Link:
        """Make the program the selector of the ``SO_REUSEPORT`` group of ``sock`` (a bound socket with
        ``SO_REUSEPORT`` set; ``SO_ATTACH_REUSEPORT_EBPF``): for each packet (UDP) or connection (TCP) it returns
        the index of the group's socket that gets it, in the order the sockets were bound (an index out of range
        falls back to the kernel's hash). As for :class:`SkReuseport`, the program stays with the group until the
        link is detached (through a socket of the group still open) or every socket of the group is closed;
        unloading the program or dropping the link leaves it there. Such a link cannot be pinned.

        >>> link = bpf.programs["pick"].attach_reuseport(group[0])  # doctest: +SKIP
        """
        fd = _args.fileno(sock, "sock")
        self._ensure_loaded()
        return self._attached(self._native.attach_reuseport_filter(fd))


@register
class SkReuseport(Program):
    """A reuseport selector: picks which socket of a ``SO_REUSEPORT`` group receives each packet (UDP) or new
    connection (TCP), usually with ``select_reuseport`` on a :class:`pyaya.maps.ReusePortSockArray` of the group's
    sockets, and returns ``SK_PASS`` (or ``SK_DROP``). ``#[sk_reuseport(migrate)]`` programs also move requests off
    a closing listener.

    Kernel 4.19 or later (migrate: 5.14).

    >>> servers[0], servers[1] = first, second  # doctest: +SKIP
    >>> link = bpf.programs["select"].attach(first)  # doctest: +SKIP
    """

    kind = "SkReuseport"

    def attach(self, sock: _HasFileno) -> Link:
        """Attach to the ``SO_REUSEPORT`` group of ``sock`` (a bound socket with ``SO_REUSEPORT`` set): the
        program then picks the socket of the group for every new packet or connection. One program serves the
        whole group; detaching the link (through a socket of the group still open) removes it, as does closing
        every socket of the group. pyaya does not keep the socket open. Such a link cannot be pinned."""
        fd = _args.fileno(sock, "sock")
        self._ensure_loaded()
        return self._attached(self._native.attach_socket_filter(fd))


@register
class CgroupSkb(Program):
    """A cgroup socket-buffer program: sees every packet that processes of a cgroup send (egress) or receive
    (ingress), from the IP header, and returns 1 to let it through or 0 to drop it.

    Kernel 4.10 or later.

    >>> link = bpf.programs["count_egress"].attach("/sys/fs/cgroup/unified/web", "egress")  # doctest: +SKIP
    """

    kind = "CgroupSkb"

    def attach(self, cgroup: PathArg, direction: Literal["ingress", "egress"] | None = None) -> Link:
        """Attach to the cgroup v2 directory ``cgroup`` in ``direction``; ``None`` takes the direction from the
        program's section (``#[cgroup_skb(ingress)]`` or ``(egress)``). Loads the program first if needed."""
        folder = _args.path(cgroup, "cgroup")
        _args.choice(direction, "direction", (*DIRECTIONS, None))
        self._ensure_loaded()
        return self._attached(self._native.attach_cgroup(folder, direction))


@register
class CgroupSock(_CgroupProgram):
    """A cgroup socket program: runs when processes of a cgroup create, bind or release a socket (the hook is in
    its section, e.g. ``#[cgroup_sock(sock_create)]``); it may set the socket's mark, priority or bound device,
    and returns 1 to allow or 0 to refuse with EPERM.

    Kernel 4.10 or later.

    >>> link = bpf.programs["mark_sockets"].attach("/sys/fs/cgroup/unified/web")  # doctest: +SKIP
    """

    kind = "CgroupSock"


@register
class CgroupSockAddr(_CgroupProgram):
    """A cgroup socket-address program: runs on ``connect``, ``bind``, ``sendmsg``, ... of processes in a cgroup
    (the hook is in its section, e.g. ``#[cgroup_sock_addr(connect4)]``) and may rewrite the address.

    Kernel 4.17 or later.

    >>> link = bpf.programs["redirect_connect"].attach("/sys/fs/cgroup/unified/web")  # doctest: +SKIP
    """

    kind = "CgroupSockAddr"


@register
class CgroupSockopt(_CgroupProgram):
    """A cgroup sockopt program: runs on ``getsockopt`` or ``setsockopt`` of processes in a cgroup and may change
    the option's value or the call's result.

    Kernel 5.3 or later. Its link cannot be pinned.

    >>> link = bpf.programs["getsockopt_hook"].attach("/sys/fs/cgroup/unified/web")  # doctest: +SKIP
    """

    kind = "CgroupSockopt"


@register
class CgroupSysctl(_CgroupProgram):
    """A cgroup sysctl program: runs when processes of a cgroup read or write ``/proc/sys`` and returns 1 to
    allow or 0 to refuse with EPERM.

    Kernel 5.2 or later. Its link cannot be pinned.

    >>> link = bpf.programs["sysctl_guard"].attach("/sys/fs/cgroup/unified/web")  # doctest: +SKIP
    """

    kind = "CgroupSysctl"


@register
class CgroupDevice(_CgroupProgram):
    """A cgroup device program: runs when processes of a cgroup open or create device files and returns 1 to
    allow or 0 to refuse with EPERM.

    Kernel 4.15 or later. Its link cannot be pinned.

    >>> link = bpf.programs["device_policy"].attach("/sys/fs/cgroup/unified/web")  # doctest: +SKIP
    """

    kind = "CgroupDevice"


@register
class SockOps(_CgroupProgram):
    """A sock_ops program: runs at points of the TCP life of sockets of a cgroup (connect, established, RTO,
    ...) and may tune them.

    Kernel 4.13 or later.

    >>> link = bpf.programs["tcp_events"].attach("/sys/fs/cgroup/unified")  # doctest: +SKIP
    """

    kind = "SockOps"


class _SockMapProgram(Program):
    def attach(self, sock_map: Map | _native.Map) -> Link:
        """Attach to ``sock_map``, a SockMap or SockHash of an object loaded with pyaya: the program then runs
        for the sockets stored in it. Loads the program first if needed. Such a link cannot be pinned."""
        native = sock_map if isinstance(sock_map, _native.Map) else getattr(sock_map, "_native", None)
        if not isinstance(native, _native.Map):
            raise InvalidArgumentTypeError(
                "sock_map must be a SockMap or SockHash of a loaded object (bpf.maps[NAME]), "
                f"not {type(sock_map).__name__}"
            )
        self._ensure_loaded()
        return self._attached(self._native.attach_sock_map(native))


@register
class SkMsg(_SockMapProgram):
    """An sk_msg program: runs on every ``sendmsg`` to a socket stored in a SockMap or SockHash and returns
    :data:`SK_PASS`, :data:`SK_DROP` (the send fails with EACCES) or a redirect.

    Kernel 4.17 or later.

    >>> link = bpf.programs["msg_policy"].attach(bpf.maps["SOCKETS"])  # doctest: +SKIP
    """

    kind = "SkMsg"


@register
class SkSkb(_SockMapProgram):
    """An sk_skb program (stream parser or stream verdict): runs on data received by sockets stored in a
    SockMap or SockHash; verdicts are :data:`SK_PASS`, :data:`SK_DROP` or a redirect.

    Kernel 4.14 or later.

    >>> link = bpf.programs["verdict"].attach(bpf.maps["SOCKETS"])  # doctest: +SKIP
    """

    kind = "SkSkb"


@register
class SkLookup(Program):
    """An sk_lookup program: runs when the kernel looks for the socket to deliver a new connection or datagram
    to, in one network namespace, and may pick any socket (e.g. one listener for many ports).

    Kernel 5.9 or later.

    >>> link = bpf.programs["steer"].attach("/proc/self/ns/net")  # doctest: +SKIP
    """

    kind = "SkLookup"

    def attach(self, netns: PathArg) -> Link:
        """Attach to the network namespace file ``netns`` (``/proc/self/ns/net``, ``/var/run/netns/NAME``, ...).
        Loads the program first if needed."""
        namespace = _args.path(netns, "netns")
        self._ensure_loaded()
        return self._attached(self._native.attach_netns(namespace))


@register
class FlowDissector(Program):
    """A flow dissector: replaces the kernel's packet parser that finds flow keys (addresses, ports) for
    hashing, RPS and classification, in one network namespace.

    Kernel 4.20 or later (bpf_link attachments: 5.7).

    >>> link = bpf.programs["dissect"].attach("/var/run/netns/test")  # doctest: +SKIP
    """

    kind = "FlowDissector"

    def attach(self, netns: PathArg) -> Link:
        """Attach to the network namespace file ``netns``. Loads the program first if needed."""
        namespace = _args.path(netns, "netns")
        self._ensure_loaded()
        return self._attached(self._native.attach_netns(namespace))
