"""Who keeps what alive, checked in the kernel: links held by handles outlive their program's unload and their
object's close, links nobody holds go with them, pinned links stay, socket programs are left to what replaced them
or to their reuseport group, and dropping the last handle frees kernel objects without the garbage collector."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyaya
import pytest
from _sockets import reuseport_group, spread
from pyaya import Ebpf, Link, features, loaded_links, loaded_programs


def _loaded_ids() -> set[int]:
    return {program_id for program_id, _, _ in loaded_programs()}


def _links_of(program_id: int) -> set[int]:
    """Ids of the bpf_links that run ``program_id``."""
    return {link_id for link_id, linked, _ in loaded_links() if linked == program_id}


def _counted_this_process(counts: pyaya.HashMap) -> bool:
    return bool(counts.get(os.getpid(), 0))


def _until(condition: Callable[[], bool], timeout: float = 5) -> bool:
    """Whether ``condition`` holds within ``timeout``: the kernel frees programs and links after an RCU grace
    period, so what a close released may take a moment to disappear."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@contextlib.contextmanager
def _bpffs_folder(name: str) -> Iterator[Path]:
    root = features.bpffs_mount()
    if root is None:
        pytest.skip("bpffs is not mounted (mount -t bpf bpf /sys/fs/bpf)")
    folder = root / f"pyaya_test_{os.getpid()}_{name}"
    folder.mkdir(mode=0o700)
    try:
        yield folder
    finally:
        for pin in folder.iterdir():
            pin.unlink()
        folder.rmdir()


@contextlib.contextmanager
def _gc_disabled() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@pytest.mark.needs("bpf_link")
def test_held_links_outlive_unload_and_close_the_others_go(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_raw") as bpf:
        program = bpf.programs["trace_sys_enter"]
        held = program.attach("sys_enter")
        program.attach("sys_enter")  # attach and forget: the program keeps it
        program_id = int(program.info()["id"])
        assert len(_links_of(program_id)) == 2
        assert program.links == [held, program.links[1]]
        assert held in program.links
        program.unload()
        assert not program.loaded
        assert program.links == []
        assert held.attached
        assert _until(lambda: len(_links_of(program_id)) == 1)
        assert program_id in _loaded_ids()  # the held link keeps the program in the kernel
    assert held.attached  # and survives the object's close
    assert len(_links_of(program_id)) == 1
    held.detach()
    assert not held.attached
    assert _until(lambda: program_id not in _loaded_ids())


@pytest.mark.needs("bpf_link")
def test_close_detaches_the_links_nobody_holds(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_raw") as bpf:
        program = bpf.programs["trace_sys_enter"]
        program.attach("sys_enter")
        program_id = int(program.info()["id"])
        assert len(_links_of(program_id)) == 1
    assert _until(lambda: program_id not in _loaded_ids())
    assert _links_of(program_id) == set()


@pytest.mark.needs("bpf_link")
def test_pinned_link_survives_unload_and_is_unpinned_and_detached_through_its_handle(fixtures_dir: Path) -> None:
    with _bpffs_folder("lifecycle_link") as folder, Ebpf.load_file(fixtures_dir / "trace_raw") as bpf:
        pin = folder / "link"
        program = bpf.programs["trace_sys_enter"]
        link = program.attach("sys_enter")
        program_id = int(program.info()["id"])
        link.pin(pin)
        program.unload()
        assert link.attached
        assert link.pinned_path == pin
        assert "pinned at" in repr(link)
        link.unpin()
        assert not pin.exists()
        assert link.attached  # the handle still holds it
        assert program_id in _loaded_ids()
        link.detach()
        assert not link.attached
        assert _until(lambda: program_id not in _loaded_ids())


@pytest.mark.needs("bpf_link")
def test_pinned_link_nobody_holds_stays_after_close(fixtures_dir: Path) -> None:
    with _bpffs_folder("lifecycle_forgotten") as folder:
        pin = folder / "link"
        with Ebpf.load_file(fixtures_dir / "trace_raw") as bpf:
            program = bpf.programs["trace_sys_enter"]
            program.attach("sys_enter").pin(pin)
            program_id = int(program.info()["id"])
        assert pin.exists()
        assert program_id in _loaded_ids()
        Link.from_pin(pin).detach()
        assert not pin.exists()
        assert _until(lambda: program_id not in _loaded_ids())


@pytest.mark.needs("bpf_link")
def test_dropping_the_last_handles_frees_the_kernel_objects_without_gc(fixtures_dir: Path) -> None:
    with _gc_disabled():
        bpf = Ebpf.load_file(fixtures_dir / "trace_raw")
        program = bpf.programs["trace_sys_enter"]
        program.attach("sys_enter")
        counts = bpf.maps["SYSCALLS"]
        assert isinstance(counts, pyaya.HashMap)
        assert _until(functools.partial(_counted_this_process, counts))
        map_id = counts.id
        program_id = int(program.info()["id"])
        assert repr(program)
        del counts
        del program
        del bpf
        assert _until(lambda: program_id not in _loaded_ids())
        assert _links_of(program_id) == set()
        assert _until(lambda: map_id not in {found for found, _, _ in pyaya.loaded_maps()})


@pytest.mark.needs("bpf_link")
def test_a_held_link_keeps_only_its_program_not_its_object(fixtures_dir: Path) -> None:
    with _gc_disabled():
        bpf = Ebpf.load_file(fixtures_dir / "trace_raw")
        program = bpf.programs["trace_sys_enter"]
        link = program.attach("sys_enter")
        program_id = int(program.info()["id"])
        map_id = bpf.maps["SYSCALLS"].id
        del program
        del bpf
        assert link.attached
        assert program_id in _loaded_ids()
        del link
        assert _until(lambda: program_id not in _loaded_ids())
        assert _until(lambda: map_id not in {found for found, _, _ in pyaya.loaded_maps()})


def test_streams_and_their_object_make_no_cycle(fixtures_dir: Path) -> None:
    with _gc_disabled():
        bpf = Ebpf.load_file(fixtures_dir / "maps_basic")
        ring = bpf.maps["MAPS_RING"]
        perf = bpf.maps["MAPS_PERF"]
        assert isinstance(ring, pyaya.RingBuf)
        assert isinstance(perf, pyaya.maps.PerfEventArray)
        assert ring.drain(timeout=0) == []
        assert perf.drain(timeout=0) == []
        map_ids = {perf.id, bpf.maps["MAPS_HASH"].id}  # ring buffer handles do not report an id
        del ring, perf, bpf
        assert _until(lambda: not map_ids & {found for found, _, _ in pyaya.loaded_maps()})


def test_repr_of_every_map_of_a_closed_object(fixtures_dir: Path) -> None:
    bpf = Ebpf.load_file(fixtures_dir / "maps_basic")
    handles = [bpf.maps[name] for name in bpf.maps]
    programs = list(bpf.programs.values())
    bpf.close()
    for handle in handles:
        assert handle.name in repr(handle)
    for program in programs:
        assert "(object closed)" in repr(program)


def test_repr_of_closed_objects(fixtures_dir: Path) -> None:
    bpf = Ebpf.load_file(fixtures_dir / "trace_raw")
    program = bpf.programs["trace_sys_enter"]
    counts = bpf.maps["SYSCALLS"]
    link = program.attach("sys_enter")
    bpf.close()
    assert "closed" in repr(bpf)
    assert "trace_sys_enter" in repr(program)
    assert "closed" in repr(program)
    assert "SYSCALLS" in repr(counts)
    assert "trace_sys_enter" in repr(link)
    link.detach()
    assert "detached" in repr(link)


def test_maps_pinned_by_the_loader_report_their_pin(fixtures_dir: Path) -> None:
    with _bpffs_folder("lifecycle_maps") as folder, Ebpf.load_file(fixtures_dir / "trace_raw", pin_maps=folder) as bpf:
        counts = bpf.maps["SYSCALLS"]
        assert counts.pinned_path == folder / "SYSCALLS"
        assert (folder / "SYSCALLS").exists()


def _filtered(receiver: socket.socket, port: int) -> list[bytes]:
    """Which of four datagrams the receiver gets: the fixture's filter keeps the ones starting with ``keep``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for payload in (b"keep 1", b"drop!", b"keep 2", b"also!"):
            sender.sendto(payload, ("127.0.0.1", port))
    received = []
    with contextlib.suppress(TimeoutError):
        while len(received) < 8:
            received.append(receiver.recv(2048))
    return received


def test_unloading_a_replaced_socket_filter_leaves_its_replacement(fixtures_dir: Path, requires_root: None) -> None:
    with (
        Ebpf.load_file(fixtures_dir / "net_socket") as first,
        Ebpf.load_file(fixtures_dir / "net_socket") as second,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
    ):
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(0.3)
        port = receiver.getsockname()[1]
        replaced = first.programs["net_socket_filter"].attach(receiver)
        replacement = second.programs["net_socket_filter"].attach(receiver)
        assert not replaced.attached
        assert replacement.attached
        first.programs["net_socket_filter"].unload()
        replaced.detach()
        assert _filtered(receiver, port) == [b"keep 1", b"keep 2"]  # the replacement still filters
        assert list(second.maps["FILTER_COUNTS"]) == [4, 2]  # type: ignore[call-overload]
        del replacement
        second.programs["net_socket_filter"].unload()
        assert _filtered(receiver, port) == [b"keep 1", b"drop!", b"keep 2", b"also!"]


def test_reuseport_program_stays_with_its_group_until_detached(fixtures_dir: Path, requires_root: None) -> None:
    group = reuseport_group(2)
    try:
        with Ebpf.load_file(fixtures_dir / "net_reuseport") as bpf:
            program = bpf.programs["net_reuseport_select"]
            slots = bpf.maps["REUSEPORT_SOCKETS"]
            slots[0], slots[1] = group  # type: ignore[index]
            bpf.maps["REUSEPORT_TARGET"][0] = 1  # type: ignore[index]
            link = program.attach(group[0])
            assert spread(group, 8) == [0, 8]
            program.unload()
        assert link.attached
        assert spread(group, 8) == [0, 8]  # the group keeps running it after unload and close
        link.detach()
        assert not link.attached
        assert sum(spread(group, 16)) == 16
        assert spread(group, 16) != [0, 16]  # the kernel's hash again (16 new source ports all to one: 2**-16)
    finally:
        for member in group:
            member.close()


# -- objects outside a loaded object: by id, and the kernel's program info ---------------------------------------


def test_program_info_reports_what_bpftool_shows(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_raw") as bpf:
        program = bpf.programs["trace_sys_enter"]
        program.load()
        info = program.info()
        assert info["name"] == "trace_sys_enter"
        assert info["bytes_jited"] > 0
        assert info["bytes_xlated"] is not None
        assert info["bytes_xlated"] > 0
        assert info["loaded_at"] is not None
        assert abs(info["loaded_at"] - time.time()) < 600
        assert info["uid"] == os.geteuid()
        assert info["map_ids"] is not None
        assert bpf.maps["SYSCALLS"].id in info["map_ids"]
        assert info["verified_insns"] is not None
        assert info["verified_insns"] > 0
        assert info["bytes_memlock"] is not None
        assert info["bytes_memlock"] > 0
        assert info["gpl_compatible"] is not None


@pytest.mark.needs("bpf_link")
def test_programs_maps_and_links_open_by_id(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_raw") as bpf:
        program = bpf.programs["trace_sys_enter"]
        link = program.attach("sys_enter")
        program_id = int(program.info()["id"])
        map_id = bpf.maps["SYSCALLS"].id
        assert (map_id, "SYSCALLS", 1) in pyaya.loaded_maps()  # BPF_MAP_TYPE_HASH
        [link_id] = _links_of(program_id)

        reopened = pyaya.Program.from_id(program_id)
        assert isinstance(reopened, pyaya.RawTracePoint)
        assert reopened.info()["id"] == program_id
        counts = pyaya.Map.from_id(map_id)
        assert isinstance(counts, pyaya.HashMap)
        assert counts.id == map_id
        by_id = Link.from_id(link_id)
        assert by_id.attached
        assert by_id.pinned_path is None
        assert not [pin for pin in (features.bpffs_mount() or Path("/nonexistent")).glob("pyaya-opening-*")]
        with pytest.raises(pyaya.NotFoundError, match="no program with id"):
            pyaya.Program.from_id(2**32 - 1)
        with pytest.raises(pyaya.NotFoundError, match="no link with id"):
            Link.from_id(2**32 - 1)
        link.detach()
        by_id.detach()
        del reopened
    assert _until(lambda: program_id not in _loaded_ids())


def test_maps_created_by_type_live_while_held(requires_root: None) -> None:
    with _gc_disabled():
        counts = pyaya.HashMap.create(64, key=ctypes.c_uint32, value=ctypes.c_uint64, name="pyaya_created")
        counts[7] = 3
        counts[8] = 4
        assert dict(counts) == {7: 3, 8: 4}
        assert (counts.key_size, counts.value_size, counts.max_entries) == (4, 8, 64)
        assert (counts.id, "pyaya_created", 1) in pyaya.loaded_maps()
        totals = pyaya.Array.create(4, value="Q")
        totals[2] = 9
        assert list(totals) == [0, 0, 9, 0]
        per_cpu = pyaya.maps.PerCpuArray.create(2, value_size=4)
        assert per_cpu.value_size == 4
        assert isinstance(pyaya.maps.LruHashMap.create(8), pyaya.maps.LruHashMap)
        map_ids = {counts.id, totals.id, per_cpu.id}
        del counts, totals, per_cpu
        assert _until(lambda: not map_ids & {found for found, _, _ in pyaya.loaded_maps()})
    with pytest.raises(pyaya.InvalidArgumentError, match="4-byte index"):
        pyaya.Array.create(4, key_size=8)
    with pytest.raises(pyaya.UnsupportedError, match=r"creates Array, HashMap"):
        pyaya.maps.Queue.create(4)  # a keyless map: not one create makes
    with pytest.raises(pyaya.InvalidArgumentError, match="max_entries"):
        pyaya.HashMap.create(0)


def test_program_from_id_names_the_id_when_the_type_cannot_be_reopened(fixtures_dir: Path, requires_root: None) -> None:
    with Ebpf.load_file(fixtures_dir / "net_cgroup") as bpf:
        program = bpf.programs["net_cgroup_skb"]
        program.load()
        program_id = int(program.info()["id"])
        with pytest.raises(pyaya.ProgramError, match=f"program {program_id} cannot be reopened") as refused:
            pyaya.Program.from_id(program_id)
        assert "pyaya-opening" not in str(refused.value)
        assert not [pin for pin in (features.bpffs_mount() or Path("/nonexistent")).glob("pyaya-opening-*")]
