"""USDT probes against the real kernel: a C program built here with ``<sys/sdt.h>`` (registers of every width,
memory operands, constants, a global, a probe at two locations, a semaphore-guarded probe in a shared library)
and the system Python's own probes, attached with ``UProbe.attach_usdt``, triggered, and every argument the
kernel side read with ``pyaya_usdt::usdt_arg`` checked."""

from __future__ import annotations

import os
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyaya
import pytest
import usdt_binaries
from pyaya import Ebpf, UProbe, features, usdt

# On every kernel of the VM matrix too (`make test-vm`): smoke for 5.10 and 6.1, needs for 6.12.
pytestmark = [pytest.mark.smoke, pytest.mark.needs("usdt")]

SYSTEM_PYTHON = Path("/usr/bin/python3")
TEXT_LEN = 64
HIT = struct.Struct(f"=IiII12q{TEXT_LEN}s{TEXT_LEN}s")


@pytest.fixture(autouse=True)
def needs_usdt_support() -> None:
    supported = features.usdt_supported()
    if not supported.ok or "not semaphores" in supported.reason:
        pytest.skip(f"USDT probes cannot be attached here: {supported.reason}")


@dataclass(frozen=True)
class Hit:
    tgid: int
    count: int
    read: int
    args: tuple[int, ...]
    text0: str
    text1: str

    @property
    def values(self) -> list[int]:
        """The arguments the program read (bit n of ``read`` says argument n was)."""
        return [value for n, value in enumerate(self.args) if self.read >> n & 1]


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def hits(bpf: Ebpf, tgid: int, expected: int, timeout: float = 5) -> list[Hit]:
    """The hits of process ``tgid``, in order, waiting until ``expected`` arrived (and a moment for strays)."""
    ring = bpf.maps["HITS"]
    assert isinstance(ring, pyaya.RingBuf)
    ring = ring.typed(None)  # bytes, not the `Hit` records of the ring's BTF: HIT reads the texts as C strings
    found: list[Hit] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in ring.drain(timeout=0.2):
            tgid_, count, read, _, *rest = HIT.unpack(record)
            args, text0, text1 = tuple(rest[:12]), rest[12], rest[13]
            if tgid_ == tgid:
                found.append(Hit(tgid_, count, read, args, _text(text0), _text(text1)))
        if len(found) >= expected:
            break
    return found


class Probes:
    """The test program, running: waits for a line, fires every probe once, reports its guarded semaphore."""

    def __init__(self, binary: Path) -> None:
        self.process = subprocess.Popen(
            [str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    @property
    def pid(self) -> int:
        return self.process.pid

    def fire(self) -> tuple[int, int]:
        """One round of probes; returns (the guarded probe's semaphore, whether it fired)."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        _, semaphore, _, fired = self.process.stdout.readline().split()
        return int(semaphore), int(fired)

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=10)


@pytest.fixture
def binary(tmp_path: Path) -> Path:
    return usdt_binaries.build(tmp_path)


@pytest.fixture
def running(binary: Path) -> Iterator[Probes]:
    probes = Probes(binary)
    yield probes
    probes.stop()


@pytest.fixture
def bpf(fixtures_dir: Path) -> Iterator[Ebpf]:
    with Ebpf.load_file(fixtures_dir / "trace_usdt") as loaded:
        yield loaded


def program(bpf: Ebpf) -> UProbe:
    prog = bpf.programs["trace_usdt_hit"]
    assert isinstance(prog, UProbe)
    return prog


def spec_owners(bpf: Ebpf) -> list[int]:
    """The owner pid of every slot of the spec map (0: free): the last 4 bytes of each 296-byte `Spec`."""
    specs = bpf.maps["PYAYA_USDT_SPECS"]
    return [struct.unpack_from("=I", bytes(spec), 292)[0] for spec in specs.values()]


def test_every_argument_kind_is_read(bpf: Ebpf, binary: Path, running: Probes) -> None:
    prog = program(bpf)
    library = binary.parent / "libpyaya_guarded.so"
    links = [prog.attach_usdt(binary, "pyaya", name) for name in ("widths", "memory", "constants", "registers")]
    links.append(prog.attach_usdt(binary, "pyaya", "twice"))
    links.append(prog.attach_usdt(library, "pyaya", "guarded"))
    assert running.fire() == (1, 1)  # the kernel raised the library's semaphore in the running process
    got = hits(bpf, running.pid, len(usdt_binaries.FIRING_ORDER))
    assert [hit.count for hit in got] == [8, 5, 3, 8, 1, 1, 1]
    by_probe = dict(zip(usdt_binaries.FIRING_ORDER, got, strict=True))
    for name, expected in usdt_binaries.EXPECTED.items():
        assert by_probe[name].values == expected, name
    # One probe at two locations: one link, each location with its own spec (its own constant).
    assert [hit.values for hit in got[4:6]] == [[1001], [1002]]
    # Reading past the last argument fails (bit 12 of `read`), as reading an argument that is not there must.
    assert all(hit.read >> 12 & 1 for hit in got)
    assert os.getpid() in spec_owners(bpf)

    for link in links:
        link.detach()
    assert running.fire() == (0, 0)  # detaching lowered the semaphore again
    assert hits(bpf, running.pid, 1, timeout=0.5) == []
    assert set(spec_owners(bpf)) == {0}  # every spec slot given back


def test_semaphore_is_raised_for_processes_started_later(bpf: Ebpf, binary: Path) -> None:
    library = binary.parent / "libpyaya_guarded.so"
    with program(bpf).attach_usdt(library, "pyaya", "guarded"):
        later = Probes(binary)
        try:
            assert later.fire() == (1, 1)
            (hit,) = hits(bpf, later.pid, 1)
            assert hit.values == [7]
        finally:
            later.stop()


def test_attach_by_pid_finds_the_files_and_fires_only_there(bpf: Ebpf, binary: Path, running: Probes) -> None:
    other = Probes(binary)
    try:
        prog = program(bpf)
        # A pid target: the probe is looked up in every file the process maps (here, in its library).
        link = prog.attach_usdt(running.pid, "pyaya", "guarded")
        constants = prog.attach_usdt(binary, "pyaya", "constants", pid=running.pid)
        assert running.fire() == (1, 1)
        assert other.fire() == (0, 0)  # its semaphore stayed down: the probe is only installed in `running`
        assert [hit.values for hit in hits(bpf, running.pid, 2)] == [[5, -6, 0x1234567890], [7]]
        assert hits(bpf, other.pid, 1, timeout=0.5) == []
        link.detach()
        constants.detach()
    finally:
        other.stop()


def test_closing_the_object_detaches_and_lowers_the_semaphore(
    fixtures_dir: Path, binary: Path, running: Probes
) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_usdt") as bpf:
        program(bpf).attach_usdt(binary.parent / "libpyaya_guarded.so", "pyaya", "guarded")  # link not kept
        assert running.fire() == (1, 1)
    assert running.fire() == (0, 0)


def test_errors_name_the_probe_and_attach_nothing(bpf: Ebpf, binary: Path, running: Probes) -> None:
    prog = program(bpf)
    with pytest.raises(pyaya.NotFoundError, match=r"no USDT probe pyaya:nope in .*probes; its probes are pyaya:const"):
        prog.attach_usdt(binary, "pyaya", "nope")
    with pytest.raises(
        pyaya.UnsupportedError, match=r"pyaya:unsupported at 0x[0-9a-f]+ in .*: pyaya cannot read argument 1 "
    ):
        prog.attach_usdt(binary, "pyaya", "unsupported")
    with pytest.raises(pyaya.NotFoundError, match=r"no USDT probe pyaya:widths in .*libpyaya_guarded"):
        prog.attach_usdt(binary.parent / "libpyaya_guarded.so", "pyaya", "widths")
    with pytest.raises(pyaya.NotFoundError, match="maps no file with USDT probe pyaya:nope"):
        prog.attach_usdt(running.pid, "pyaya", "nope")
    with pytest.raises(pyaya.ProgramError, match="not a process id"):
        prog.attach_usdt(-1, "pyaya", "widths")
    assert prog.links == []
    assert set(spec_owners(bpf)) == {0}
    assert running.fire() == (0, 0)


def test_usdt_links_cannot_be_pinned(bpf: Ebpf, binary: Path) -> None:
    link = program(bpf).attach_usdt(binary, "pyaya", "twice")
    with pytest.raises(pyaya.UnsupportedError, match="holds 2 uprobe attachment"):
        link.pin("/sys/fs/bpf/pyaya-usdt-test-never")
    assert not Path("/sys/fs/bpf/pyaya-usdt-test-never").exists()


def test_a_uretprobe_is_refused(fixtures_dir: Path, binary: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_uprobe") as bpf:
        ret = bpf.programs["trace_add_return"]
        assert isinstance(ret, UProbe)
        with pytest.raises(pyaya.ProgramError, match="uretprobe"):
            ret.attach_usdt(binary, "pyaya", "widths")


def _python_probes() -> list[usdt.Probe]:
    if not SYSTEM_PYTHON.exists():
        return []
    return usdt.probes(SYSTEM_PYTHON.resolve())


PYTHON_CODE = """\
import gc, sys
print("ready", flush=True)
sys.stdin.readline()
def pyaya_usdt_marker():
    return 1
pyaya_usdt_marker()
gc.collect(1)
sys.audit("pyaya.usdt.marker", 1)
"""


def test_probes_of_the_system_python(bpf: Ebpf) -> None:
    """CPython's own probes (Debian builds them in): function__entry with its file name, function name and line,
    gc__start with its generation (a memory operand, -4@112(%rsp)) and audit with its event name, all guarded by
    semaphores that Python checks before firing."""
    names = {probe.name for probe in _python_probes()}
    if not {"function__entry", "line", "gc__start", "audit"} <= names:
        pytest.skip(f"{SYSTEM_PYTHON} has no function__entry/line/gc__start/audit USDT probes (built without dtrace)")
    child = subprocess.Popen(
        [str(SYSTEM_PYTHON), "-c", PYTHON_CODE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        # Attached once the child's start-up is over (seconds in an emulated guest): its imports would otherwise
        # fire the line probe thousands of times before the marker runs.
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        prog = program(bpf)
        # Only in the child: the other Pythons of this machine keep their semaphores down.
        links = [prog.attach_usdt(SYSTEM_PYTHON, "python", name, pid=child.pid) for name in ("gc__start", "audit")]
        # On CPython 3.11 function__entry was seen to fire only while the line probe is attached too.
        links += [prog.attach_usdt(child.pid, "python", name) for name in ("function__entry", "line")]
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.close()
        assert child.wait(timeout=30) == 0
        got = hits(bpf, child.pid, 1000, timeout=2)
    finally:
        child.kill()
        child.wait()
    entries = [hit for hit in got if hit.count == 3 and hit.text1 == "pyaya_usdt_marker"]
    seen = sorted({(hit.count, hit.text0, hit.text1) for hit in got})[:20]
    assert entries, f"no python:function__entry (or line) hit of pyaya_usdt_marker among {len(got)} hits: {seen}"
    assert {hit.text0 for hit in entries} == {"<string>"}
    assert 4 in {hit.args[2] for hit in entries}  # function__entry: the def's line; line: the body's lines
    assert any(hit.count == 1 and hit.args[0] == 1 for hit in got)  # gc__start(1)
    assert any(hit.count == 2 and hit.text0 == "pyaya.usdt.marker" for hit in got)  # audit
    for link in links:
        link.detach()


def test_a_program_opened_from_a_pin_is_refused(bpf: Ebpf, binary: Path) -> None:
    """Its object's spec map is not known, so its argument specs could not be written."""
    pin = Path(f"/sys/fs/bpf/pyaya-usdt-test-{os.getpid()}")
    prog = program(bpf)
    prog.load()
    prog.pin(pin)
    try:
        reopened = UProbe.from_pin(pin)
        with pytest.raises(pyaya.ProgramError, match="opened from a pin cannot be given USDT argument specs"):
            reopened.attach_usdt(binary, "pyaya", "widths")
    finally:
        prog.unpin()
    assert not pin.exists()
