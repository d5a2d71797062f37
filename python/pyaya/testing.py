"""pytest fixtures for testing eBPF programs against the real kernel, registered as a pytest plugin (``pytest11``
entry point ``pyaya``), so any project with pyaya installed can use them:

- ``requires_root``: skips the test, saying what was probed, unless this process is root and ``bpf()`` works.
- ``bpf_object``: a factory loading object files as :class:`pyaya.Ebpf`, each closed at teardown.
- ``netns_pair``: a fresh network namespace joined to this one by a veth pair, addresses assigned and links up,
  removed at teardown (:class:`NetnsPair`); ``netns_pairs`` is a factory of them, for tests that need several.
- ``cgroup``: a fresh cgroup v2 child, removed at teardown (:class:`Cgroup`).
- ``pyaya_project``: the pyaya project holding the test file (:class:`PyayaProject`): ``build()`` it, ``run()`` it
  as ``pyaya run --json`` does and read the :class:`RunResult`; no subprocess harness of the test's own.
- ``@pytest.mark.needs("kprobes", ...)``: the test runs only where the kernel has every feature named (probed by
  :func:`pyaya.features.requirement`), else skips with the probe's reason; ``@pytest.mark.lacks("kprobes")`` runs
  a test only where the kernel lacks one (a test of the error that explains it). So one file runs on every kernel
  of ``pyaya test``'s matrix and skips only what each kernel truly lacks.

::

    def test_xdp_drops(bpf_object, netns_pair):
        bpf = bpf_object("target/bpfel-unknown-none/release/firewall")
        bpf.programs["firewall"].attach(netns_pair.host_interface, mode="skb")
        assert netns_pair.run("ping", "-c1", "-W1", netns_pair.host_address, check=False).returncode != 0

A project's own test, of what ``pyaya run`` prints while the test makes the activity::

    def test_reports_an_exec(pyaya_project):
        with pyaya_project.run(duration=3) as run:   # returns once the programs are attached
            subprocess.run(["/bin/true"], check=True)
            result = run.result()                     # waits for the 3 s; run.stop() ends it now
        assert result.events                          # every event record's "data"

Probes are real: the skip reasons quote the kernel's answer, never a guess.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from pyaya import _native, features, kernel
from pyaya.errors import NotFoundError, PyayaError
from pyaya.loader import Ebpf
from pyaya.project import find_project

__all__ = [
    "Cgroup",
    "NetnsPair",
    "PyayaProject",
    "Run",
    "RunResult",
    "bpf_object",
    "cgroup",
    "cgroup2_mount",
    "netns_pair",
    "netns_pairs",
    "privilege_skip_reason",
    "pyaya_project",
    "requires_root",
]

_CLONE_NEWNET = 0x40000000
_NETNS_RUN_DIR = Path("/var/run/netns")
_ids = itertools.count(1)


def privilege_skip_reason() -> str | None:
    """Why kernel tests cannot run here (root and a working ``bpf()`` are probed), or ``None`` when they can."""
    if os.geteuid() != 0:
        return f"needs root: this process runs with euid {os.geteuid()}"
    available = features.bpf_syscall_available()
    if not available.ok:
        return f"bpf() is not usable here: {available.reason}"
    return None


def cgroup2_mount() -> Path | None:
    """Where cgroup v2 is mounted (``/sys/fs/cgroup`` or, on hybrid systems, ``/sys/fs/cgroup/unified``); None
    when it is not (see :func:`pyaya.kernel.cgroup2_mount`)."""
    try:
        return kernel.cgroup2_mount()
    except NotFoundError:
        return None


def pytest_configure(config: pytest.Config) -> None:
    """Registers the ``needs`` and ``lacks`` markers."""
    config.addinivalue_line(
        "markers",
        "needs(*features): run only where the kernel has these features (pyaya.features.requirement names), "
        "else skip with the probed reason",
    )
    config.addinivalue_line(
        "markers", "lacks(*features): run only where the kernel lacks one of these features (tests of the error)"
    )


def _requirements(item: pytest.Item, marker: str) -> list[tuple[str, features.Probe]]:
    names = [name for mark in item.iter_markers(marker) for name in mark.args]
    if not names or privilege_skip_reason() is not None:
        return []
    try:
        return [(name, features.requirement(name)) for name in names]
    except KeyError as error:
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{marker}: {error.args[0]}") from None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skips a test marked ``needs`` where a feature is missing, and one marked ``lacks`` where all are there."""
    for name, probe in _requirements(item, "needs"):
        if not probe.ok:
            pytest.skip(f"this kernel lacks {name}: {probe.reason}")
    lacked = _requirements(item, "lacks")
    if lacked and all(probe.ok for _, probe in lacked):
        names = ", ".join(name for name, _ in lacked)
        pytest.skip(f"this kernel has {names} ({lacked[0][1].reason}); the test is of the error where it does not")


@pytest.fixture
def requires_root() -> None:
    """Skips the test unless this process is root and ``bpf()`` works; the reason says what was probed."""
    reason = privilege_skip_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def bpf_object(requires_root: None) -> Iterator[Callable[..., Ebpf]]:
    """A factory: ``bpf_object(path, globals=..., max_entries=...)`` loads an object file; every object it
    loaded is closed (links detached, programs unloaded, maps closed) when the test ends."""
    loaded: list[Ebpf] = []

    def load(
        path: str | os.PathLike[str],
        *,
        globals: Mapping[str, object] | None = None,
        max_entries: Mapping[str, int] | None = None,
    ) -> Ebpf:
        ebpf = Ebpf.load_file(path, globals=globals, max_entries=max_entries)
        loaded.append(ebpf)
        return ebpf

    yield load
    for ebpf in reversed(loaded):
        ebpf.close()


def _run(argv: Sequence[str], *, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise PyayaError(f"`{' '.join(argv)}` failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _run_command(
    argv: list[str], *, check: bool, timeout: float, input: str | None
) -> subprocess.CompletedProcess[str]:
    """A test's command, output captured as text; ``check`` raises CalledProcessError as ``subprocess.run`` does."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=check, input=input)


@dataclass(frozen=True)
class NetnsPair:
    """A network namespace (``name``, at ``netns_path``) joined to the test's namespace by a veth pair:
    ``host_interface`` stays in the test's namespace, ``peer_interface`` lives in the new one. Both ends are up,
    with ``host_address`` and ``peer_address`` in ``{address}/{prefix_len}``; the namespace's loopback is up."""

    name: str
    netns_path: Path
    host_interface: str
    host_ifindex: int
    host_address: str
    peer_interface: str
    peer_ifindex: int
    peer_address: str
    prefix_len: int

    def run(
        self, *argv: str, check: bool = True, timeout: float = 30, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Runs a command inside the namespace (``ip netns exec``), capturing its output as text."""
        return _run_command(["ip", "netns", "exec", self.name, *argv], check=check, timeout=timeout, input=input)

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM, proto: int = 0) -> socket.socket:
        """A socket created inside the namespace (a socket stays in the namespace it was created in), so one
        test can talk across the pair without subprocesses. The caller closes it."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        target = os.open(self.netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _native.join_namespace(target, _CLONE_NEWNET)
            try:
                return socket.socket(family, type, proto)
            finally:
                _native.join_namespace(own, _CLONE_NEWNET)
        finally:
            os.close(target)
            os.close(own)


def _free_subnet(number: int) -> str:
    """A 10.x.y.0/24 no interface of this namespace uses (other test runs may be making pairs at the same time)."""
    listing = _run(["ip", "-4", "-o", "addr", "show"], check=False).stdout
    used = {".".join(field.split("/")[0].split(".")[:3]) for field in listing.split() if field.startswith("10.")}
    start = (os.getpid() * 64 + number) % (50 * 250)
    for offset in range(50 * 250):
        candidate = (start + offset) % (50 * 250)
        subnet = f"10.{200 + candidate // 250}.{candidate % 250}"
        if subnet not in used:
            return subnet
    raise PyayaError("every 10.200-249.x.0/24 subnet is in use; delete stale test interfaces (`ip -4 addr show`)")


def _netns_skip_reason() -> str | None:
    reason = privilege_skip_reason()
    if reason:
        return reason
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not on PATH; it creates the namespace and the veth pair"
    return None


@contextlib.contextmanager
def _new_netns_pair() -> Iterator[NetnsPair]:
    number = next(_ids)
    tag = f"{os.getpid() % 100000}{number % 100}"
    name = f"pyaya-{tag}"
    host, peer = f"pya{tag}h", f"pya{tag}p"
    subnet = _free_subnet(number)
    host_address, peer_address = f"{subnet}.1", f"{subnet}.2"
    created = _run(["ip", "netns", "add", name], check=False)
    if created.returncode != 0:
        pytest.skip(f"`ip netns add` failed here: {created.stderr.strip()}")
    try:
        _run(["ip", "link", "add", host, "type", "veth", "peer", "name", peer, "netns", name])
        _run(["ip", "addr", "add", f"{host_address}/24", "dev", host])
        _run(["ip", "link", "set", host, "up"])
        _run(["ip", "-n", name, "addr", "add", f"{peer_address}/24", "dev", peer])
        _run(["ip", "-n", name, "link", "set", peer, "up"])
        _run(["ip", "-n", name, "link", "set", "lo", "up"])
        peer_index = _run(["ip", "netns", "exec", name, "cat", f"/sys/class/net/{peer}/ifindex"]).stdout
        yield NetnsPair(
            name=name,
            netns_path=_NETNS_RUN_DIR / name,
            host_interface=host,
            host_ifindex=socket.if_nametoindex(host),
            host_address=host_address,
            peer_interface=peer,
            peer_ifindex=int(peer_index),
            peer_address=peer_address,
            prefix_len=24,
        )
    finally:
        _run(["ip", "netns", "del", name], check=False)
        # Deleting the namespace destroys the peer end and with it the pair; make sure of the host end.
        if Path("/sys/class/net", host).exists():
            _run(["ip", "link", "del", host], check=False)


@pytest.fixture
def netns_pair() -> Iterator[NetnsPair]:
    """A fresh network namespace with a veth pair to this one (see :class:`NetnsPair`), deleted after the test
    together with both veth ends."""
    reason = _netns_skip_reason()
    if reason:
        pytest.skip(reason)
    with _new_netns_pair() as pair:
        yield pair


@pytest.fixture
def netns_pairs() -> Iterator[Callable[[], NetnsPair]]:
    """A factory of :class:`NetnsPair`, for tests that need several (an XDP redirect from one to another); each
    call makes a namespace and veth pair of its own, all deleted after the test."""
    reason = _netns_skip_reason()
    if reason:
        pytest.skip(reason)
    with contextlib.ExitStack() as made:
        yield lambda: made.enter_context(_new_netns_pair())


@dataclass(frozen=True)
class Cgroup:
    """A cgroup v2 directory made for one test. Programs attach to :attr:`path`; processes join with
    :meth:`add` or start inside it with :meth:`run`."""

    path: Path

    @property
    def pids(self) -> list[int]:
        """The processes in this cgroup now."""
        return [int(line) for line in (self.path / "cgroup.procs").read_text().split()]

    def add(self, pid: int) -> None:
        """Moves process ``pid`` (with all its threads) into this cgroup."""
        (self.path / "cgroup.procs").write_text(f"{pid}\n")

    def run(
        self, *argv: str, check: bool = True, timeout: float = 30, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Runs a command that joins this cgroup before it executes (so everything it does is seen), capturing
        its output as text."""
        procs = str(self.path / "cgroup.procs")
        # `sh` writes its own pid into cgroup.procs, then becomes the command: no argument is parsed by a shell.
        join_then_exec = 'echo $$ > "$0" && exec "$@"'
        return _run_command(["sh", "-c", join_then_exec, procs, *argv], check=check, timeout=timeout, input=input)


@pytest.fixture
def cgroup() -> Iterator[Cgroup]:
    """A fresh child of the cgroup v2 root (see :class:`Cgroup`), removed after the test; processes left in it
    are moved back to the root first."""
    reason = privilege_skip_reason()
    if reason:
        pytest.skip(reason)
    root = cgroup2_mount()
    if root is None:
        pytest.skip("no cgroup2 filesystem in /proc/self/mounts; mount one with `mount -t cgroup2 none /sys/fs/cgroup`")
    path = root / f"pyaya-test-{os.getpid()}-{next(_ids)}"
    path.mkdir()
    try:
        yield Cgroup(path)
    finally:
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                (root / "cgroup.procs").write_text(f"{pid}\n")
        path.rmdir()


#: How long a run started without ``duration`` may last: it is stopped by :meth:`Run.stop` or at the end of its
#: ``with`` block; the limit only ends it should the test's process die without stopping it.
RUN_LIMIT = 300.0
#: What the runtime prints on stderr once everything is loaded and attached (:meth:`pyaya.runtime.Session`).
_RUNNING = "is running"


@dataclass(frozen=True)
class RunResult:
    """What one ``pyaya run --json`` printed, once it ended."""

    returncode: int
    records: list[dict[str, Any]]
    """Every JSON line of stdout, in order (``{"kind": "event" | "log" | "map" | "lost", ...}``); empty for a run
    without ``--json``."""
    events: list[dict[str, Any]]
    """The ``"data"`` of each ``"event"`` record, in order."""
    stderr: str
    stdout: str = ""
    """stdout as printed (the table of a run without ``--json``)."""

    @property
    def maps(self) -> dict[str, dict[str, Any]]:
        """The ``"map"`` records printed at exit, by map name (the last one, when a map is printed each interval)."""
        return {record["map"]: record for record in self.records if record["kind"] == "map"}

    def entries(self, map_name: str) -> list[dict[str, Any]]:
        """The ``"entries"`` of the map ``map_name`` printed at exit (a table; a histogram has ``"buckets"``)."""
        record = self.maps.get(map_name)
        if record is None or "entries" not in record:
            printed = ", ".join(self.maps) or "none"
            raise AssertionError(f"the run printed no entries of map {map_name} (maps printed: {printed})")
        entries: list[dict[str, Any]] = record["entries"]
        return entries

    def events_where(self, **fields: object) -> list[dict[str, Any]]:
        """The events whose data has each of ``fields`` (``events_where(pid=child.pid)``)."""
        return [event for event in self.events if all(event.get(k) == v for k, v in fields.items())]


class Run:
    """A ``pyaya run`` under way (from :meth:`PyayaProject.run`): entering it waits until the programs are
    attached; the test then makes its activity and ends the run with :meth:`stop` (as Ctrl-C does) or waits for
    its ``--duration`` with :meth:`result`, both inside the ``with`` block: leaving it kills a run still going (so
    a failed test leaves no run behind)."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        start_timeout: float,
        env: Mapping[str, str] | None,
        json_lines: bool = True,
    ) -> None:
        self.argv = list(argv)
        self._json_lines = json_lines
        self._cwd = cwd
        self._env = dict(env) if env is not None else None
        self._start_timeout = start_timeout
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._running = threading.Event()
        self._readers: list[threading.Thread] = []
        self._result: RunResult | None = None
        self.process: subprocess.Popen[str] | None = None

    def _read(self, stream: Any, lines: list[str], *, announce: bool) -> None:
        for line in stream:
            lines.append(line)
            if announce and _RUNNING in line:
                self._running.set()
        self._running.set()  # it exited: whoever waits for the start finds out at once

    def __enter__(self) -> Run:
        # Both pipes are read all along: a full pipe would stall main.py's writes, and with them its stream.
        process = subprocess.Popen(
            self.argv, cwd=self._cwd, env=self._env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.process = process
        for stream, lines, announce in ((process.stdout, self._stdout, False), (process.stderr, self._stderr, True)):
            reader = threading.Thread(target=self._read, args=(stream, lines), kwargs={"announce": announce})
            reader.daemon = True
            reader.start()
            self._readers.append(reader)
        if not self._running.wait(self._start_timeout):
            self._kill()
            raise AssertionError(
                f"`{' '.join(self.argv)}` did not say it is running within {self._start_timeout:g} s:\n"
                + "".join(self._stderr)
            )
        if not any(_RUNNING in line for line in self._stderr):
            code = process.wait()
            self._join()
            raise AssertionError(
                f"`{' '.join(self.argv)}` exited with {code} before running:\n" + "".join(self._stderr)
            )
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            self._kill()

    def _kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self._join()

    def _join(self, timeout: float = 30) -> None:
        for reader in self._readers:
            reader.join(timeout)

    def stop(self, *, timeout: float = 120, check: bool = True) -> RunResult:
        """End the run as Ctrl-C does (its maps are printed, its links detached) and return what it printed."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.result(timeout=timeout, check=check)

    def result(self, *, timeout: float = 120, check: bool = True) -> RunResult:
        """Wait for the run to end by itself (its ``duration``) and return what it printed; with ``check``, a
        non-zero exit fails the test, showing stderr."""
        if self._result is None:
            assert self.process is not None, "enter the run (`with project.run() as run:`) first"
            try:
                code = self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill()
                raise AssertionError(f"`{' '.join(self.argv)}` did not end within {timeout:g} s") from None
            self._join()
            records = [json.loads(line) for line in self._stdout if line.strip()] if self._json_lines else []
            events = [record["data"] for record in records if record.get("kind") == "event"]
            self._result = RunResult(code, records, events, "".join(self._stderr), "".join(self._stdout))
        if check and self._result.returncode != 0:
            raise AssertionError(
                f"`{' '.join(self.argv)}` exited with {self._result.returncode}:\n{self._result.stderr}"
            )
        return self._result


@dataclass(frozen=True)
class PyayaProject:
    """A pyaya project (the folder holding its ``pyaya.toml``), driven through the ``pyaya`` command of this
    interpreter as a user drives it. ``env``: the commands' environment (default: this process's)."""

    root: Path
    env: Mapping[str, str] | None = field(default=None, compare=False)

    def _pyaya(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "pyaya", *args]

    def build(self, *, debug: bool = False, timeout: float = 900) -> Path:
        """``pyaya build``; returns the first object built (the one ``pyaya run`` loads). A failed build fails the
        test, showing cargo's errors."""
        built = subprocess.run(
            self._pyaya("build", str(self.root), *(["--debug"] if debug else [])),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=self.env,
        )
        if built.returncode != 0:
            raise AssertionError(f"pyaya build {self.root} failed ({built.returncode}):\n{built.stderr}")
        objects = [Path(line) for line in built.stdout.splitlines() if line.strip()]
        if not objects or not objects[0].is_file():
            raise AssertionError(f"pyaya build {self.root} printed no object path:\n{built.stdout}")
        return objects[0]

    def run(self, *args: str, json: bool = True, duration: float | None = None, start_timeout: float = 900) -> Run:
        """``pyaya run ROOT [--json] [--duration S] ARGS...`` (building first when stale), to use as a context
        manager: entering waits for the programs to be attached. ``args`` are ``pyaya run``'s (``"-p", "42"``;
        ``"--", "--top", "5"`` for main.py's own). Without ``duration`` the run lasts until :meth:`Run.stop`.
        Skips the test, saying what was probed, unless this process may load programs (root and ``bpf()``)::

            with pyaya_project.run("-p", str(os.getpid())) as run:
                subprocess.run(["/bin/true"], check=True)   # another process: filtered out
                result = run.stop()
            assert {event["pid"] for event in result.events} <= {os.getpid()}
        """
        reason = privilege_skip_reason()
        if reason:
            pytest.skip(reason)
        options = ["--json"] if json else []
        options += ["--duration", f"{duration if duration is not None else RUN_LIMIT:g}"]
        argv = self._pyaya("run", str(self.root), *options, *args)
        return Run(argv, cwd=self.root, start_timeout=start_timeout, env=self.env, json_lines=json)


@pytest.fixture(scope="module")
def pyaya_project(request: pytest.FixtureRequest) -> PyayaProject:
    """The pyaya project holding the test's file (found as ``pyaya`` finds one: the nearest ``pyaya.toml`` upward),
    as a :class:`PyayaProject` to build and run. Module-scoped, so a module's fixtures can build once::

        @pytest.fixture(scope="module")
        def object_path(pyaya_project):
            return pyaya_project.build()
    """
    try:
        project = find_project(request.path.parent)
    except PyayaError as error:
        pytest.fail(f"{request.path}: the pyaya_project fixture needs a project: {error}", pytrace=False)
    return PyayaProject(project.root)
