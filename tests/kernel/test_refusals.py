"""Bad input refused with the right words, against the real kernel: load options (max_entries, globals), pins
outside bpffs and the modes of what pyaya creates in bpffs, missing uprobe symbols, missing capabilities (a
subprocess whose capabilities setpriv drops), a frozen .rodata, and bad arguments to the programs' and maps'
public methods."""

from __future__ import annotations

import ctypes
import os
import shutil
import socket
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyaya
import pyaya.maps
import pytest
from pyaya import Ebpf, features
from pyaya.errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidIndexError,
    MapError,
    NotFoundError,
    PermissionDeniedError,
    ProgramError,
    PyayaError,
)

# -- load options ---------------------------------------------------------------------------------------------------


def test_max_entries_for_a_map_that_does_not_exist_lists_the_maps(fixtures_dir: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=r'map "SHARDE", which the object does not have; .*SHARED, SLOTS'):
        Ebpf.load_file(fixtures_dir / "types_plain", max_entries={"SHARDE": 8})
    with pytest.raises(InvalidArgumentError, match=r"\.rodata.* cannot be resized; the maps that can are: SHARED"):
        Ebpf.load_file(fixtures_dir / "types_plain", max_entries={".rodata": 8})


@pytest.mark.parametrize("entries", [-1, 0, 2**32, 2**64])
def test_max_entries_out_of_range_says_the_range(fixtures_dir: Path, entries: int) -> None:
    with pytest.raises(InvalidArgumentError, match=r"max_entries\['SHARED'\] = .* out of range: give 1 to 4294967295"):
        Ebpf.load_file(fixtures_dir / "types_plain", max_entries={"SHARED": entries})


def test_max_entries_of_the_wrong_type(fixtures_dir: Path) -> None:
    with pytest.raises(InvalidArgumentTypeError, match="must be an int, not str"):
        Ebpf.load_file(fixtures_dir / "types_plain", max_entries={"SHARED": "8"})
    with pytest.raises(TypeError, match="must be a mapping"):  # also a TypeError, for old `except TypeError`
        Ebpf.load_file(fixtures_dir / "types_plain", max_entries=[("SHARED", 8)])  # type: ignore[arg-type]


def test_globals_name_the_globals_and_both_sizes(fixtures_dir: Path) -> None:
    path = fixtures_dir / "types_plain"
    with pytest.raises(InvalidArgumentError, match=r'no global "FACTRO"; its globals .* are: FACTOR'):
        Ebpf.load_file(path, globals={"FACTRO": ctypes.c_uint64(1)})
    with pytest.raises(InvalidArgumentError, match=r'"FACTOR" is 8 bytes but the value given is 4 bytes'):
        Ebpf.load_file(path, globals={"FACTOR": ctypes.c_uint32(1)})
    # A map definition is a symbol too, and aya would patch its bytes as if it were a global.
    with pytest.raises(InvalidArgumentError, match=r'"SHARED" is a map, not a global'):
        Ebpf.load_file(path, globals={"SHARED": bytes(28)})
    with pytest.raises(InvalidArgumentError, match=r'no global "FACTRO"; its globals .* are: FACTOR'):
        Ebpf.load_file(path, globals={"FACTRO": 1})  # a plain value for a name the object lacks: the same refusal
    with pytest.raises(MapError, match=r"global FACTOR: expected an int for a 8-byte integer, got str"):
        Ebpf.load_file(path, globals={"FACTOR": "7"})
    with pytest.raises(MapError, match=r"global FACTOR: 18446744073709551616 does not fit"):
        Ebpf.load_file(path, globals={"FACTOR": 2**64})
    with Ebpf.load_file(path, globals={"FACTOR": 7}) as bpf:  # a plain int, sized by the global
        assert bpf.globals["FACTOR"] == 7


def test_writing_the_frozen_rodata_is_not_a_missing_privilege(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "types_plain", globals={"FACTOR": ctypes.c_uint64(7)}) as bpf:
        rodata = bpf.maps[".rodata"]
        assert isinstance(rodata, pyaya.Array)
        assert rodata[0] == 7  # FACTOR, the object's only read-only global
        with pytest.raises(MapError, match=r"frozen .*Ebpf\.load\(globals=\.\.\.\)") as info:
            rodata[0] = 8
        assert not isinstance(info.value, PermissionDeniedError)
        assert "sudo" not in str(info.value)
        assert info.value.errno == 1


# -- pins -----------------------------------------------------------------------------------------------------------


def _bpffs() -> Path:
    root = features.bpffs_mount()
    if root is None:
        pytest.skip("bpffs is not mounted (mount -t bpf bpf /sys/fs/bpf)")
    return root


def test_pinning_outside_bpffs_says_so_and_how_to_mount(fixtures_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "pins" / "app"
    with pytest.raises(MapError, match=r"would be on .*, not on a bpffs mount: .*mount -t bpf bpf /sys/fs/bpf"):
        Ebpf.load_file(fixtures_dir / "types_plain", pin_maps=folder)
    assert not (tmp_path / "pins").exists()  # nothing created on the way
    with Ebpf.load_file(fixtures_dir / "types_plain") as bpf:
        with pytest.raises(MapError, match=r"is on .*, not on a bpffs mount") as info:
            bpf.maps["SHARED"].pin(tmp_path / "SHARED")
        assert not isinstance(info.value, PermissionDeniedError)
        program = bpf.programs["types_plain"]
        link = program.attach("syscalls", "sys_enter_getppid")
        with pytest.raises(ProgramError, match="not on a bpffs mount"):
            program.pin(tmp_path / "prog")
        with pytest.raises(ProgramError, match="not on a bpffs mount"):
            link.pin(tmp_path / "link")
        assert link.attached  # refused before the link was touched
    assert list(tmp_path.iterdir()) == []


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.parametrize("mask", [0o000, 0o277])
def test_pin_folders_and_pins_get_modes_whatever_the_umask(fixtures_dir: Path, mask: int) -> None:
    root = _bpffs() / f"pyaya-refusals-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    folder = root / "nested" / "app"
    try:
        with _umask(mask), Ebpf.load_file(fixtures_dir / "types_plain", pin_maps=folder) as bpf:
            for created in (root, root / "nested", folder):
                assert stat.S_IMODE(created.stat().st_mode) == 0o700, created
            for pin in ("SHARED", "SLOTS"):
                assert stat.S_IMODE((folder / pin).stat().st_mode) == 0o600, pin
            program = bpf.programs["types_plain"]
            link = program.attach("syscalls", "sys_enter_getppid")
            program.pin(root / "prog")
            link.pin(root / "link")
            bpf.maps["SHARED"].pin(root / "map")
            for pin in ("prog", "link", "map"):
                assert stat.S_IMODE((root / pin).stat().st_mode) == 0o600, pin
            link.unpin()
            program.unpin()
            bpf.maps["SHARED"].unpin()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_failed_load_removes_the_folders_it_created(fixtures_dir: Path) -> None:
    root = _bpffs() / f"pyaya-refusals-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with pytest.raises(InvalidArgumentError):
            Ebpf.load_file(fixtures_dir / "types_plain", pin_maps=root / "a" / "b", max_entries={"NOPE": 1})
        assert not root.exists()
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- uprobes --------------------------------------------------------------------------------------------------------


def test_missing_uprobe_symbol_is_named_with_close_matches(fixtures_dir: Path) -> None:
    from pyaya.scaffold import resolve_library  # noqa: PLC0415

    libc = resolve_library("libc")
    if libc is None:
        pytest.skip("no libc found through ldconfig -p")
    with Ebpf.load_file(fixtures_dir / "trace_uprobe") as bpf:
        program = bpf.programs["trace_add_entry"]
        for target, pid in ((str(libc), None), ("libc", None), ("libc", os.getpid())):
            with pytest.raises(NotFoundError, match=r'has no symbol "mallocc" \(close: malloc') as info:
                program.attach(target, "mallocc", pid=pid)
            assert "debuglink" not in str(info.value)
            assert "nm -D --defined-only" in str(info.value)
        assert program.links == []


# -- capabilities ---------------------------------------------------------------------------------------------------

_CAPABILITY_PROBE = """
import sys
import pyaya
from pyaya import Ebpf
try:
    with Ebpf.load_file(sys.argv[1]) as bpf:
        bpf.programs[sys.argv[2]].load()
except pyaya.PermissionDeniedError as error:
    print(error)
    sys.exit(3)
print("loaded")
"""


def _with_capabilities(caps: str, path: Path, program: str) -> subprocess.CompletedProcess[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed: it drops the capabilities of the test's subprocess")
    return subprocess.run(
        [setpriv, f"--bounding-set=-all{caps}", "--", sys.executable, "-c", _CAPABILITY_PROBE, str(path), program],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("caps", "program", "missing", "kept"),
    [
        ("", "types_plain", "CAP_BPF", "none of"),  # no capability at all: creating the maps fails
        (",+bpf", "types_plain", "CAP_PERFMON", "CAP_BPF"),  # a tracepoint needs CAP_PERFMON too
        (",+bpf", "types_xdp", "CAP_NET_ADMIN", "CAP_BPF"),  # XDP needs CAP_NET_ADMIN
    ],
)
def test_permission_errors_name_the_missing_capability(
    fixtures_dir: Path, caps: str, program: str, missing: str, kept: str
) -> None:
    if caps == "" and Path("/proc/sys/kernel/unprivileged_bpf_disabled").read_text().strip() == "0":
        pytest.skip("kernel.unprivileged_bpf_disabled is 0: this kernel lets a process without CAP_BPF create maps")
    result = _with_capabilities(caps, fixtures_dir / "types_plain", program)
    assert result.returncode == 3, result.stdout + result.stderr
    message = result.stdout
    assert f"this process lacks {missing}" in message
    assert f"(it has {kept}" in message
    assert "setcap" in message
    assert "sudo" in message


def test_with_every_capability_it_needs_the_refusal_is_the_kernels_policy(fixtures_dir: Path) -> None:
    probe = features.fentry_supported()
    if probe.ok:
        pytest.skip("this kernel loads fentry programs: there is no policy refusal to explain")
    if "EPERM" not in probe.reason and "permission" not in probe.reason.lower():
        pytest.skip(f"fentry is unsupported here for another reason than a refusal: {probe.reason}")
    result = _with_capabilities(",+bpf,+perfmon", fixtures_dir / "trace_btf", "trace_unlink_entry")
    if "loaded" in result.stdout:
        pytest.skip("the fentry program loaded with CAP_BPF and CAP_PERFMON")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "lacks" not in result.stdout
    assert "CAP_BPF and CAP_PERFMON" in result.stdout


# -- arguments of the public methods -------------------------------------------------------------------------------


def _fails(call: object, error: type[PyayaError], *needles: str) -> PyayaError:
    assert callable(call)
    with pytest.raises(error) as info:
        call()
    for needle in needles:
        assert needle in str(info.value), f"{needle!r} not in {info.value}"
    return info.value


def test_program_arguments(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "types_plain") as bpf:
        xdp = bpf.programs["types_xdp"]
        assert isinstance(xdp, pyaya.Xdp)
        _fails(lambda: xdp.attach("lo", mode="turbo"), InvalidArgumentError, "'skb', 'drv', 'hw', None", "'turbo'")
        _fails(lambda: xdp.attach("lo", mode="sbk"), InvalidArgumentError, "did you mean 'skb'?")
        _fails(lambda: xdp.attach(1.5), InvalidArgumentTypeError, "interface name (str) or index (int)")
        _fails(lambda: xdp.attach(0), InvalidArgumentError, "give 1 to")
        _fails(lambda: xdp.attach(""), InvalidArgumentError, "empty")
        _fails(lambda: xdp.test_run(5), InvalidArgumentTypeError, "bytes or a buffer")  # bytes(5) is 5 zeros
        _fails(lambda: xdp.test_run(bytes(64), repeat=0), InvalidArgumentError, "repeat = 0", "1 to 4294967295")
        _fails(lambda: xdp.test_run(bytes(64), data_out_size=-1), InvalidArgumentError, "out of range")
        _fails(lambda: xdp.pin(3), InvalidArgumentTypeError, "must be a path")
        tracepoint = bpf.programs["types_plain"]
        assert isinstance(tracepoint, pyaya.TracePoint)
        _fails(lambda: tracepoint.attach("syscalls/sys_enter_getppid", ""), InvalidArgumentError, "holds a '/'")
        _fails(lambda: tracepoint.attach(b"syscalls", "x"), InvalidArgumentTypeError, "must be a str")
        _fails(lambda: tracepoint.attach("syscalls", "a\0b"), InvalidArgumentError, "NUL")
        assert tracepoint.links == []
        assert xdp.links == []
    with Ebpf.load_file(fixtures_dir / "net_tc") as bpf:
        classifier = bpf.programs["net_tc_rewrite"]
        assert isinstance(classifier, pyaya.SchedClassifier)
        _fails(lambda: classifier.attach("lo", "sideways"), InvalidArgumentError, "'ingress', 'egress'")
        _fails(lambda: classifier.attach("lo", "ingress", priority=70000), InvalidArgumentError, "0 to 65535")
    with Ebpf.load_file(fixtures_dir / "trace_uprobe") as bpf:
        uprobe = bpf.programs["trace_add_entry"]
        assert isinstance(uprobe, pyaya.UProbe)
        _fails(lambda: uprobe.attach("/bin/true", "main", pid=0), InvalidArgumentError, "pid = 0", "pid=None")
        _fails(lambda: uprobe.attach("/bin/true", "main", offset=-1), InvalidArgumentError, "offset = -1")
        _fails(lambda: uprobe.attach(7, "main"), InvalidArgumentTypeError, "target must be a path")
        _fails(lambda: uprobe.attach("/bin/true", 7), InvalidArgumentTypeError, "symbol must be a str")
    with Ebpf.load_file(fixtures_dir / "trace_perf") as bpf:
        perf = bpf.programs["trace_perf_sample"]
        assert isinstance(perf, pyaya.PerfEvent)
        _fails(lambda: perf.attach("cpu-clok"), InvalidArgumentError, "no perf event named", "'cpu-clock'")
        _fails(lambda: perf.attach(3), InvalidArgumentTypeError, "perf event name")
        _fails(lambda: perf.attach(sample_period=0), InvalidArgumentError, "sample_period = 0")
        _fails(lambda: perf.attach(sample_period=1, sample_frequency=1), InvalidArgumentError, "not both")
        _fails(lambda: perf.attach(cpus=[]), InvalidArgumentError, "cpus is empty")
        _fails(lambda: perf.attach(cpus=["0"]), InvalidArgumentTypeError, "a CPU in cpus")
        _fails(lambda: perf.attach(cpus=5), InvalidArgumentTypeError, "iterable of CPU numbers")  # type: ignore[arg-type]
    with Ebpf.load_file(fixtures_dir / "net_socket") as bpf:
        name = next(n for n, p in bpf.programs.items() if isinstance(p, pyaya.SocketFilter))
        socket_filter = bpf.programs[name]
        assert isinstance(socket_filter, pyaya.SocketFilter)
        _fails(lambda: socket_filter.attach("eth0"), InvalidArgumentTypeError, "a socket")  # type: ignore[arg-type]
        closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        closed.close()
        _fails(lambda: socket_filter.attach(closed), InvalidArgumentError, "closed")
        _fails(lambda: bpf.programs[3], NotFoundError, "named by str")  # type: ignore[index]


def test_map_arguments(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "maps_basic") as bpf:
        array = bpf.maps["MAPS_ARRAY"]
        assert isinstance(array, pyaya.Array)
        error = _fails(lambda: array[4096], InvalidIndexError, "give 0 to 4095")
        assert isinstance(error, IndexError)
        _fails(lambda: array["0"], InvalidArgumentTypeError, "array indices are ints")
        _fails(lambda: array.__setitem__(0, "text"), MapError, "expected an int")
        _fails(lambda: array.typed(value=object()), InvalidArgumentTypeError, "a ctypes type, a struct format")
        _fails(lambda: array.values(batch="yes"), InvalidArgumentTypeError, "batch must be True or False")
        hash_map = bpf.maps["MAPS_HASH"]
        assert isinstance(hash_map, pyaya.HashMap)
        _fails(lambda: hash_map.update(a=1), InvalidArgumentTypeError, "map keys are not strings")
        _fails(lambda: hash_map.update_many(5), InvalidArgumentTypeError, "a mapping or (key, value) pairs")
        _fails(lambda: hash_map.update_many([(1, 2, 3)]), InvalidArgumentError, "not a (key, value) pair")
        _fails(lambda: array.update("ab"), InvalidArgumentTypeError, "a mapping or (key, value) pairs")
        _fails(lambda: hash_map.pin(None), InvalidArgumentTypeError, "must be a path")  # type: ignore[arg-type]
        programs = bpf.maps["MAPS_PROGS"]
        _fails(lambda: programs.__setitem__(0, "prog"), InvalidArgumentTypeError, "holds pyaya programs")
        _fails(lambda: programs.__setitem__(9, "prog"), PyayaError)
        stack = bpf.maps["MAPS_STACK"]
        _fails(lambda: stack.push(1, replace_oldest="yes"), InvalidArgumentTypeError, "True or False")
        ring = bpf.maps["MAPS_RING"]
        assert isinstance(ring, pyaya.RingBuf)
        _fails(lambda: ring.drain(max_records=-1), InvalidArgumentError, "max_records = -1")
        _fails(lambda: ring.drain(timeout="1"), InvalidArgumentTypeError, "timeout must be a number")
        _fails(lambda: ring.drain(timeout=-1.0), InvalidArgumentError, "timeout must be a number of seconds >= 0")
        _fails(lambda: ring.on(5), InvalidArgumentTypeError, "callback must be callable")  # type: ignore[arg-type]
        perf = bpf.maps["MAPS_PERF"]
        assert isinstance(perf, pyaya.maps.PerfEventArray)
        _fails(lambda: perf.reopen(3), InvalidArgumentError, "power of two")
        _fails(lambda: perf.reopen("4"), InvalidArgumentTypeError, "page_count must be an int")  # type: ignore[arg-type]
        _fails(lambda: bpf.maps[None], NotFoundError, "named by str")  # type: ignore[index]
