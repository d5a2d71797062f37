"""Attachments that outlive their process, and how pyaya makes sure none is left behind.

Most attachments are fds (bpf_link, perf events): a process that dies, however it dies, takes them along. Two
attach paths of pyaya are not. A TC filter made through netlink (``SchedClassifier.attach`` with a ``priority``, or
on a kernel without tcx) and an XDP program set through netlink (kernels before 5.9, where aya falls back to it)
stay on their interface, holding their program, until someone deletes them.

For those pyaya keeps a record in its state folder (``/run/pyaya``, or ``$PYAYA_STATE_DIR``): one JSON file per
attachment saying what was attached (interface index and name, hook, priority and handle, program id and name),
in which network namespace, by whom (pid, start time, boot id), and one file per interface where pyaya added the
``clsact`` qdisc. The record is written before the attach (so a process killed while attaching leaves it too) and
removed by the normal detach (:meth:`pyaya.Link.detach`, closing the object, or garbage collection), which also
removes a ``clsact`` qdisc pyaya added once no filter is left on it. When the owner dies without detaching
(SIGKILL, the OOM killer), its guard (:mod:`pyaya._guard`, started with the first netlink attachment) removes what
the records say; ``pyaya cleanup`` (:func:`cleanup`) removes whatever is left by owners that are gone, and
``pyaya doctor`` reports it.

Nothing is removed that pyaya did not make or that a live process holds: a record is acted on only once its owner
is gone; a filter is deleted only while it still runs the recorded program id (program ids are never reused); an
XDP program only through netlink's compare-and-replace on that program; a ``clsact`` qdisc only when pyaya added it
and no filter at all is left on it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import stat
import sys
import warnings

from pyaya import _native
from pyaya._record import as_dict, frozen, replace
from pyaya.errors import NotFoundError, PermissionDeniedError, PyayaError

# pyaya.programs imports this module (XDP and TC programs attach through recording()), so it imports none of
# pathlib, json or socket (~25 ms together) at import: the functions that need them import them.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path
    from typing import Any

    from pyaya.programs._base import Program

    #: Where records go, unless :data:`STATE_DIR_ENV` names another folder.
    STATE_DIR: Path

__all__ = ["STATE_DIR", "STATE_DIR_ENV", "Leftover", "Owner", "Record", "cleanup", "leftovers", "state_dir"]

_DEFAULT_STATE_DIR = "/run/pyaya"
STATE_DIR_ENV = "PYAYA_STATE_DIR"
_FORMAT = 1
_XDP_MODES = {0: "default", 2: "skb", 4: "drv", 8: "hw"}


# Type checkers read STATE_DIR's declaration above instead: to them a module __getattr__ would make any name exist.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        """:data:`STATE_DIR`, a Path made when first asked for (PEP 562), then kept: pathlib costs ~9 ms to import."""
        if name == "STATE_DIR":
            from pathlib import Path  # noqa: PLC0415 - see above

            made = globals()["STATE_DIR"] = Path(_DEFAULT_STATE_DIR)
            return made
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def state_dir() -> Path:
    """The folder of the records: ``$PYAYA_STATE_DIR``, else ``/run/pyaya``."""
    from pathlib import Path  # noqa: PLC0415 - only XDP and TC attaches and cleanups ask for the folder

    return Path(os.environ.get(STATE_DIR_ENV) or _DEFAULT_STATE_DIR)


def _read_text(path: str) -> str:
    with open(path) as file:
        return file.read()


def _boot_id() -> str:
    try:
        return _read_text("/proc/sys/kernel/random/boot_id").strip()
    except OSError:
        return ""


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """``(state, start time in clock ticks after boot)`` of process ``pid``, or None when there is none."""
    try:
        text = _read_text(f"/proc/{pid}/stat")
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rpartition(")")[2].split()  # the name (field 2) may hold spaces and parentheses
    return fields[0], int(fields[19])


@frozen
class Owner:
    """The process that made an attachment: pid, start time (clock ticks after boot) and boot id, so that a
    reused pid or a reboot is not mistaken for it."""

    pid: int
    start: int
    boot: str

    @classmethod
    def this_process(cls) -> Owner:
        """This process."""
        found = _proc_stat(os.getpid())
        return cls(os.getpid(), found[1] if found else 0, _boot_id())

    def alive(self) -> bool:
        """Whether the owner still runs (a zombie does not: it holds nothing any more)."""
        if self.boot != _boot_id():
            return False
        found = _proc_stat(self.pid)
        return found is not None and found[1] == self.start and found[0] not in ("Z", "X")


@frozen
class Record:
    """One file of the state folder: a netlink TC filter (``kind`` "tc"), a netlink XDP program ("xdp"), or a
    ``clsact`` qdisc pyaya added ("clsact")."""

    path: Path
    kind: str
    owner: Owner
    netns: tuple[int, int]
    ifindex: int
    interface: str
    program: str = ""
    program_id: int = 0
    direction: str = ""
    priority: int = 0
    handle: int = 0
    mode: int = 0
    pending: bool = False
    """Written before the attach and not completed: priority and handle are unknown (the kernel picks them)."""

    @classmethod
    def read(cls, path: Path) -> Record:
        import json  # noqa: PLC0415 - only a cleanup reads records

        data = json.loads(path.read_text())
        owner = Owner(int(data["owner"]["pid"]), int(data["owner"]["start"]), str(data["owner"]["boot"]))
        return cls(
            path=path,
            kind=str(data["kind"]),
            owner=owner,
            netns=(int(data["netns"]["dev"]), int(data["netns"]["inode"])),
            ifindex=int(data["ifindex"]),
            interface=str(data["interface"]),
            program=str(data.get("program", "")),
            program_id=int(data.get("program_id", 0)),
            direction=str(data.get("direction", "")),
            priority=int(data.get("priority") or 0),
            handle=int(data.get("handle") or 0),
            mode=int(data.get("mode", 0)),
            pending=bool(data.get("pending", False)),
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": _FORMAT,
            "kind": self.kind,
            "owner": as_dict(self.owner),
            "netns": {"dev": self.netns[0], "inode": self.netns[1]},
            "ifindex": self.ifindex,
            "interface": self.interface,
        }
        if self.kind != "clsact":
            data.update(program=self.program, program_id=self.program_id, pending=self.pending)
        if self.kind == "tc":
            data.update(direction=self.direction, priority=self.priority, handle=self.handle)
        if self.kind == "xdp":
            data.update(mode=self.mode)
        return data

    @property
    def what(self) -> str:
        """The attachment and its hook: "TC filter ingress pref 1 handle 0x1", "XDP program skb", "clsact qdisc"."""
        return {"tc": f"TC filter {self.where}", "xdp": f"XDP program {self.where}"}.get(self.kind, self.where)

    @property
    def where(self) -> str:
        """The hook, as ``tc`` and ``ip link`` would name it."""
        if self.kind == "tc":
            if self.pending:
                return f"{self.direction} (being attached)"
            return f"{self.direction} pref {self.priority} handle {self.handle:#x}"
        if self.kind == "xdp":
            return _XDP_MODES.get(self.mode, str(self.mode))
        return "clsact qdisc"


def _this_netns() -> tuple[int, int]:
    info = os.stat("/proc/self/ns/net")
    return info.st_dev, info.st_ino


def _open_state_dir(directory: Path, *, create: bool) -> bool:
    """Check (and with ``create``, make) the state folder: a real folder, owned by root or by this user, writable by
    no one else, since what it says decides what gets deleted. False when it does not exist."""
    if create:
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o755)
            os.chmod(directory, 0o755)  # explicit: the umask does not decide who may write records
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        raise PyayaError(f"{directory} is not a folder: remove it, or set {STATE_DIR_ENV} to another folder")
    if info.st_uid not in (0, os.geteuid()) or info.st_mode & 0o022:
        raise PyayaError(
            f"{directory} is writable by others or owned by uid {info.st_uid}: its records decide what pyaya deletes, "
            f"so it must be root's (or yours) with mode 0755; fix it with `chown root: {directory}; chmod 755 "
            f"{directory}`"
        )
    return True


def _write(path: Path, record: Record) -> None:
    """Write ``record`` at ``path`` atomically (a reader sees the old file or the new one, never half of one)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    with os.fdopen(descriptor, "w") as file:
        os.fchmod(file.fileno(), 0o644)
        import json  # noqa: PLC0415 - only an attach through netlink writes records

        json.dump(record.to_json(), file)
    os.replace(partial, path)


def _remove(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _interface(interface: str | int) -> tuple[int, str] | None:
    import socket  # noqa: PLC0415 - only XDP and TC attaches name an interface

    try:
        if isinstance(interface, int):
            return interface, socket.if_indextoname(interface)
        return socket.if_nametoindex(interface), interface
    except OSError:
        return None  # the attach itself reports the missing interface


def _kernel_at_least(major: int, minor: int) -> bool:
    release = os.uname().release.split(".")
    try:
        return (int(release[0]), int(release[1].split("-")[0])) >= (major, minor)
    except (IndexError, ValueError):
        return True


def netlink_expected(kind: str, *, priority: int = 0, handle: int = 0, classid: int = 0) -> bool:
    """Whether an attach of ``kind`` ("tc", "xdp") will go through netlink here: a TC ``priority``, ``handle`` or
    ``classid``, or a kernel older than tcx (6.6) / XDP bpf_links (5.9)."""
    if kind == "tc":
        return priority != 0 or handle != 0 or classid != 0 or not _kernel_at_least(6, 6)
    return not _kernel_at_least(5, 9)


_counter = itertools.count()
_warned = False


def _warn_unrecorded(reason: str) -> None:
    global _warned  # noqa: PLW0603 - one warning per process is enough
    if not _warned:
        _warned = True
        warnings.warn(
            f"netlink attachments of this process are not recorded ({reason}): if it is killed, they stay on "
            "their interface until removed by hand (`tc filter del`, `ip link set dev IFACE xdp off`)",
            RuntimeWarning,
            stacklevel=4,
        )


def _clsact_path(directory: Path, netns: tuple[int, int], ifindex: int) -> Path:
    return directory / f"clsact-{netns[1]}-{ifindex}.json"


@contextlib.contextmanager
def recording(
    program: Program,
    kind: str,
    interface: str | int,
    *,
    direction: str = "",
    priority: int = 0,
    handle: int = 0,
    classid: int = 0,
    mode: int = 0,
) -> Iterator[Callable[[_native.Link], None]]:
    """Record the attach of ``program`` the block makes: ``with recording(...) as attached: link = ...;
    attached(link)``. Where netlink is expected, a pending record is written before the attach (and a record of
    the ``clsact`` qdisc if the interface has none yet); ``attached(link)`` then completes it, or drops it if the
    link is fd-based after all, hands the files to the link (removed when it detaches) and starts this process's
    guard. A failed attach removes what was written."""
    written: list[Path] = []
    done = False

    def nothing(link: _native.Link) -> None:
        if link.netlink is not None:
            _warn_unrecorded(reason)

    reason = ""
    directory = state_dir()
    resolved = _interface(interface)
    try:
        _open_state_dir(directory, create=True)
        if not os.access(directory, os.W_OK):
            raise PermissionError(errno.EACCES, "not writable")
    except (OSError, PyayaError) as error:
        reason = f"{directory}: {error}"
    if reason or resolved is None:
        yield nothing
        return
    ifindex, name = resolved
    owner = Owner.this_process()
    netns = _this_netns()
    record = Record(
        path=directory / f"{owner.pid}-{owner.start}-{kind}-{ifindex}-{next(_counter)}.json",
        kind=kind,
        owner=owner,
        netns=netns,
        ifindex=ifindex,
        interface=name,
        program=program.name,
        program_id=int(program.info()["id"]),
        direction=direction,
        priority=priority,
        mode=mode,
        pending=True,
    )
    clsact = _clsact_path(directory, netns, ifindex)
    clsact_record = Record(path=clsact, kind="clsact", owner=owner, netns=netns, ifindex=ifindex, interface=name)
    if netlink_expected(kind, priority=priority, handle=handle, classid=classid):
        _write(record.path, record)
        written.append(record.path)
        if kind == "tc" and not _native.clsact_present(ifindex):
            _write(clsact, clsact_record)  # pyaya is about to add it
            written.append(clsact)

    def attached(link: _native.Link) -> None:
        nonlocal done
        done = True
        info = link.netlink
        if info is None:  # fd-based after all (tcx, an XDP bpf_link)
            for path in written:
                _remove(path)
            return
        complete = replace(
            record,
            priority=int(info.get("priority", 0)),
            handle=int(info.get("handle", 0)),
            mode=int(info.get("mode", mode)),
            pending=False,
        )
        _write(complete.path, complete)
        if kind == "tc":
            if info.get("created_clsact"):
                _write(clsact, clsact_record)
            elif clsact in written:
                _remove(clsact)  # it was there after all (another process added it meanwhile)
        link.keep_records(complete.path, clsact if kind == "tc" else None)
        _start_guard(directory, owner)

    try:
        yield attached
    finally:
        if not done:
            for path in written:
                _remove(path)


def _start_guard(directory: Path, owner: Owner) -> None:
    if not sys.executable:
        _warn_unrecorded("no Python interpreter path to start the guard process with")
        return
    package_parent = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    code = "import sys; sys.path.insert(0, sys.argv[1]); from pyaya._guard import main; main(sys.argv[2:])"
    try:
        _native.start_guard(
            [sys.executable, "-c", code, package_parent, str(owner.pid), str(owner.start), owner.boot, str(directory)]
        )
    except PyayaError as error:  # the attachment is made and recorded: `pyaya cleanup` still covers a kill
        warnings.warn(
            f"{error}; if this process is killed, `sudo pyaya cleanup` removes its netlink attachments",
            RuntimeWarning,
            stacklevel=4,
        )


# -- what is left, and removing it -------------------------------------------------------------------------------


@frozen
class Leftover:
    """One record of an owner that is gone, and what :func:`cleanup` did about it: ``action`` is ``removed``,
    ``would remove`` (a dry run), ``gone`` (nothing was left to remove; the record is dropped) or ``kept``
    (``detail`` says why)."""

    kind: str
    interface: str
    ifindex: int
    netns: str
    where: str
    program: str
    program_id: int
    owner_pid: int
    action: str
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return as_dict(self)

    def describe(self) -> str:
        """One line: what, where, whose."""
        what = {"tc": f"TC filter {self.where}", "xdp": f"XDP program {self.where}"}.get(self.kind, self.where)
        program = f" of program {self.program!r} (id {self.program_id})" if self.program else ""
        return f"{what} on {self.interface} ({self.netns}){program}, made by pid {self.owner_pid}"


def _records(directory: Path) -> list[Record]:
    found = []
    for path in sorted(directory.glob("*.json")):
        try:
            found.append(Record.read(path))
        except FileNotFoundError:
            continue  # removed meanwhile by its owner's detach
        except (OSError, ValueError, KeyError, TypeError) as error:
            warnings.warn(f"skipping {path}: not a pyaya record ({error})", RuntimeWarning, stacklevel=3)
    return found


def _netns_files() -> Iterator[Path]:
    """Every file that can name a network namespace: named ones, each process's, and fds held on one."""
    from pathlib import Path  # noqa: PLC0415 - only a cleanup looks for namespaces

    for folder in (Path("/run/netns"), Path("/var/run/netns")):
        with contextlib.suppress(OSError):
            yield from sorted(folder.iterdir())
    pids = sorted(int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    for pid in pids:
        yield Path(f"/proc/{pid}/ns/net")
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd).startswith("net:["):
                        yield fd


def _find_netns(netns: tuple[int, int]) -> tuple[bool, Path | None]:
    """``(found, path)``: the path of a file naming that namespace (None: this one)."""
    if _this_netns() == netns:
        return True, None
    for candidate in _netns_files():
        try:
            info = os.stat(candidate)
        except OSError:
            continue
        if (info.st_dev, info.st_ino) == netns:
            return True, candidate
    return False, None


def _netns_name(netns: tuple[int, int], path: Path | None, found: bool) -> str:
    if found and path is None:
        return "this network namespace"
    if path is not None and path.parent.name == "netns":
        return f"network namespace {path.name}"
    return f"network namespace net:[{netns[1]}]"


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One cleanup at a time (the guard and ``pyaya cleanup`` may run together)."""
    try:
        descriptor = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        yield  # a reader without write access (a dry run as a user): nothing to serialise
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def leftovers(directory: Path | None = None) -> list[Record]:
    """The records whose owner is gone (what ``pyaya cleanup`` would act on); empty when nothing was recorded."""
    folder = state_dir() if directory is None else directory
    if not _open_state_dir(folder, create=False):
        return []
    return [record for record in _records(folder) if not record.owner.alive()]


def cleanup(*, dry_run: bool = False, owner: Owner | None = None, directory: Path | None = None) -> list[Leftover]:
    """Remove what owners that are gone left attached, per their records, and drop those records. With ``owner``,
    only that owner's (the guard's case); with ``dry_run``, only say what would be done. Records of live owners are
    never touched."""
    folder = state_dir() if directory is None else directory
    if not _open_state_dir(folder, create=False):
        return []
    with _locked(folder):
        records = _records(folder)
        live = [record for record in records if record.owner.alive()]
        if owner is not None:
            records = [record for record in records if record.owner == owner]
        gone = [record for record in records if record not in live]
        if gone and not dry_run and not _may_clean():
            raise PermissionDeniedError(
                f"removing what {len(gone)} recorded attachment(s) left needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN: "
                "netlink, other network namespaces): run `sudo pyaya cleanup` (`pyaya cleanup --dry-run` lists them)"
            )
        loaded = _loaded_program_ids() if gone else None
        results = [_clean(record, dry_run, loaded) for record in gone if record.kind != "clsact"]
        results += [_clean_clsact(record, dry_run, live) for record in gone if record.kind == "clsact"]
        return results


def _may_clean() -> bool:
    """Root, or CAP_NET_ADMIN (netlink changes) with CAP_SYS_ADMIN (other namespaces, program ids)."""
    from pyaya import features  # noqa: PLC0415 - only a cleanup with work to do asks

    needed = (1 << features.CAPABILITIES["CAP_NET_ADMIN"]) | (1 << features.CAPABILITIES["CAP_SYS_ADMIN"])
    return os.geteuid() == 0 or features.capabilities() & needed == needed


def _loaded_program_ids() -> set[int] | None:
    """The ids of every loaded program; None when this process may not list them (a dry run as a user)."""
    try:
        return {program_id for program_id, _, _ in _native.loaded_programs()}
    except PermissionDeniedError:
        return None


def _leftover(record: Record, netns: str, action: str, detail: str = "") -> Leftover:
    return Leftover(
        kind=record.kind,
        interface=record.interface,
        ifindex=record.ifindex,
        netns=netns,
        where=record.where,
        program=record.program,
        program_id=record.program_id,
        owner_pid=record.owner.pid,
        action=action,
        detail=detail,
    )


def _clean(record: Record, dry_run: bool, loaded: set[int] | None) -> Leftover:
    found, path = _find_netns(record.netns)
    netns = _netns_name(record.netns, path, found)
    if loaded is not None and record.program_id not in loaded:
        # Every attachment holds its program: a program that is freed has nothing attached any more.
        if not dry_run:
            _remove(record.path)
        return _leftover(record, netns, "gone", f"program {record.program_id} is no longer loaded")
    if not found:
        return _leftover(
            record, netns, "kept", "its network namespace was not found (no process, mount or fd names it)"
        )
    try:
        if record.kind == "tc":
            targets = [
                (priority, handle)
                for priority, handle, _, _, program_id in _native.tc_filters(record.ifindex, record.direction, path)
                if program_id == record.program_id
                and (record.pending or (priority, handle) == (record.priority, record.handle))
            ]
            if dry_run:
                return _leftover(record, netns, "would remove" if targets else "gone")
            removed = [
                _native.tc_filter_delete(record.ifindex, record.direction, p, h, record.program_id, path)
                for p, h in targets
            ]
            action = "removed" if any(removed) else "gone"
        elif record.kind == "xdp":
            modes = [
                mode
                for mode, program_id in _native.xdp_programs(record.ifindex, path)
                if program_id == record.program_id and record.mode in (0, mode)
            ]
            if dry_run:
                return _leftover(record, netns, "would remove" if modes else "gone")
            removed = [_native.xdp_detach(record.ifindex, mode, record.program_id, path) for mode in modes]
            action = "removed" if any(removed) else "gone"
        else:
            return _leftover(record, netns, "kept", f"unknown kind of record {record.kind!r}")
    except NotFoundError as error:  # the interface (or the namespace) went away meanwhile
        action = "gone"
        if dry_run:
            return _leftover(record, netns, action, str(error))
    _remove(record.path)
    return _leftover(record, netns, action)


def _clean_clsact(record: Record, dry_run: bool, live: list[Record]) -> Leftover:
    found, path = _find_netns(record.netns)
    netns = _netns_name(record.netns, path, found)
    if not found:
        if not dry_run:
            _remove(record.path)
        return _leftover(record, netns, "gone", "its network namespace is gone")
    if dry_run:
        present = _native.clsact_present(record.ifindex, path)
        return _leftover(record, netns, "would remove" if present else "gone", "if no filter is left on it")
    try:
        outcome = _native.clsact_remove_if_unused(record.ifindex, path)
    except NotFoundError:
        outcome = "absent"
    if outcome == "in use":
        users = sorted({r.owner.pid for r in live if r.netns == record.netns and r.ifindex == record.ifindex})
        if users:
            pids = ", ".join(map(str, users))
            return _leftover(record, netns, "kept", f"in use by pid {pids}; removed with its last filter")
        _remove(record.path)
        return _leftover(record, netns, "kept", "filters pyaya did not make are on it")
    _remove(record.path)
    return _leftover(record, netns, "removed" if outcome == "removed" else "gone")
