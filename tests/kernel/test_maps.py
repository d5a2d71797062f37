"""Every map type against the real kernel: created from fixture objects, used from Python, written by a real
program (a raw tracepoint on sys_enter, triggered by getppid from this process)."""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyaya import Ebpf, Map, MapError, NotFoundError, UnsupportedError, features
from pyaya.maps import (
    Array,
    ArrayOfMaps,
    BloomFilter,
    CgroupArray,
    CgroupStorage,
    CgrpStorage,
    CpuMap,
    CpuMapValue,
    DevMap,
    DevMapHash,
    DevMapValue,
    HashMap,
    HashOfMaps,
    InodeStorage,
    LpmKey,
    LpmTrie,
    LruHashMap,
    PerCpuArray,
    PerCpuCgroupStorage,
    PerCpuHashMap,
    PerCpuLruHashMap,
    PerCpuValues,
    PerfEventArray,
    ProgramArray,
    Queue,
    RingBuf,
    SkStorage,
    SockHash,
    SockMap,
    Stack,
    StackTraceMap,
    XskMap,
)
from pyaya.symbols import kernel_symbols

GETPPID = 110  # x86-64; the fixture's default trigger
CPUS = sorted(os.sched_getaffinity(0))
CGROUP2 = next(
    (Path(p) for p in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup") if (Path(p) / "cgroup.procs").exists()), None
)


def _globals() -> dict[str, object]:
    return {"MAPS_TARGET_TGID": os.getpid().to_bytes(4, "little")}


@pytest.fixture
def basic(fixtures_dir: Path) -> Iterator[Ebpf]:
    # The object holds one map of every type; the newest, BloomFilter (5.16), decides whether it loads at all.
    newest = features.requirement("map:BloomFilter")
    if not newest.ok:
        pytest.skip(f"the maps_basic fixture has a BloomFilter map: {newest.reason}")
    with Ebpf.load_file(fixtures_dir / "maps_basic", globals=_globals()) as bpf:
        yield bpf


@pytest.fixture
def btf(fixtures_dir: Path) -> Iterator[Ebpf]:
    with Ebpf.load_file(fixtures_dir / "maps_btf") as bpf:
        yield bpf


def trigger(times: int = 1, cpu: int | None = None) -> None:
    """Make the trigger syscall ``times`` times, on ``cpu`` when given."""
    before = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        for _ in range(times):
            os.getppid()
    finally:
        os.sched_setaffinity(0, before)


def test_every_map_type_has_its_class(basic: Ebpf, btf: Ebpf) -> None:
    expected = {
        "MAPS_HASH": HashMap,
        "MAPS_LRU_HASH": LruHashMap,
        "MAPS_PERCPU_HASH": PerCpuHashMap,
        "MAPS_LRU_PERCPU_HASH": PerCpuLruHashMap,
        "MAPS_ARRAY": Array,
        "MAPS_PERCPU_ARRAY": PerCpuArray,
        "MAPS_PROGS": ProgramArray,
        "MAPS_PERF": PerfEventArray,
        "MAPS_RING": RingBuf,
        "MAPS_STACK": Stack,
        "MAPS_QUEUE": Queue,
        "MAPS_STACKS": StackTraceMap,
        "MAPS_LPM": LpmTrie,
        "MAPS_BLOOM": BloomFilter,
        "MAPS_SOCKMAP": SockMap,
        "MAPS_SOCKHASH": SockHash,
        "MAPS_DEVMAP": DevMap,
        "MAPS_DEVMAP_HASH": DevMapHash,
        "MAPS_CPUMAP": CpuMap,
        "MAPS_XSKMAP": XskMap,
        "MAPS_CGROUPS": CgroupArray,
    }
    for name, cls in expected.items():
        assert type(basic.maps[name]) is cls, name
    expected_btf = {
        "MAPS_SK_STORAGE": SkStorage,
        "MAPS_INODE_STORAGE": InodeStorage,
        "MAPS_CGRP_STORAGE": CgrpStorage,
        "MAPS_CGROUP_STORAGE": CgroupStorage,
        "MAPS_PERCPU_CGROUP_STORAGE": PerCpuCgroupStorage,
        "MAPS_ARRAY_OF_MAPS": ArrayOfMaps,
        "MAPS_HASH_OF_MAPS": HashOfMaps,
    }
    for name, cls in expected_btf.items():
        assert type(btf.maps[name]) is cls, name


@pytest.mark.smoke
def test_hash_map_is_a_mutable_mapping(basic: Ebpf) -> None:
    counts = basic.maps["MAPS_HASH"].typed(value="q")  # signed 64-bit values
    counts[7] = -5
    assert counts[7] == -5
    assert 7 in counts
    assert 8 not in counts
    counts.update({1: 10, 2: 20})
    assert dict(counts) == {7: -5, 1: 10, 2: 20}
    assert len(counts) == 3
    del counts[7]
    with pytest.raises(KeyError):
        counts[7]
    with pytest.raises(KeyError):
        del counts[7]
    assert counts.pop_all() == {1: 10, 2: 20}
    assert len(counts) == 0
    old_names = basic.maps["MAPS_HASH"].typed(key_type=ctypes.c_uint32, value_type=ctypes.c_int64)
    old_names[3] = -1
    assert old_names[3] == -1
    with pytest.raises(MapError, match="does not fit"):
        counts[2**40] = 1


def test_lru_hash_evicts_when_full(basic: Ebpf) -> None:
    recent = basic.maps["MAPS_LRU_HASH"]
    assert isinstance(recent, LruHashMap)
    for key in range(200):
        recent[key] = key
    assert 0 < len(recent) <= recent.max_entries
    assert recent[199] == 199


@pytest.mark.smoke
def test_per_cpu_values_from_a_program(basic: Ebpf) -> None:
    basic.programs["maps_writer"].attach("sys_enter")
    for cpu in CPUS:
        trigger(3 + cpu, cpu=cpu)
    per_cpu_array = basic.maps["MAPS_PERCPU_ARRAY"]
    slot = per_cpu_array[0]
    assert isinstance(slot, PerCpuValues)
    for cpu in CPUS:
        assert slot[cpu] == 3 + cpu
    assert slot.sum() == sum(3 + cpu for cpu in CPUS)
    per_cpu_hash = basic.maps["MAPS_PERCPU_HASH"]
    assert per_cpu_hash[1] == slot
    # Writes: one value for every CPU, or one per CPU.
    per_cpu_hash[5] = 9
    assert per_cpu_hash[5] == [9] * len(slot)
    per_cpu_hash[6] = list(range(len(slot)))
    assert per_cpu_hash[6] == list(range(len(slot)))
    with pytest.raises(MapError, match="one value per possible CPU"):
        per_cpu_hash[6] = [1] * (len(slot) + 1)
    lru = basic.maps["MAPS_LRU_PERCPU_HASH"]
    lru[1] = 4
    assert lru[1].sum() == 4 * len(slot)
    # The plain hash holds the last sequence number seen on each CPU.
    assert basic.maps["MAPS_HASH"].items() == [(cpu, 3 + cpu) for cpu in reversed(CPUS)] or dict(
        basic.maps["MAPS_HASH"]
    ) == {cpu: 3 + cpu for cpu in CPUS}


@pytest.mark.parametrize("name", ["MAPS_HASH", "MAPS_PERCPU_HASH", "MAPS_ARRAY", "MAPS_PERCPU_ARRAY"])
def test_batch_operations_match_the_per_key_path(basic: Ebpf, name: str) -> None:
    target = basic.maps[name]
    assert isinstance(target, (HashMap, Array))
    entries = {key: key * 3 + 1 for key in range(4000)}
    try:
        written = (
            target.update_many(entries, batch=True)
            if isinstance(target, HashMap)
            else target.update(entries, batch=True)
        )
    except UnsupportedError as error:
        pytest.skip(f"this kernel has no batch update for {target.type}: {error}")
    assert written == len(entries)
    per_key = sorted(target.items(batch=False))
    batched = sorted(target.items(batch=True))
    assert batched == per_key
    per_cpu = isinstance(target, (PerCpuHashMap, PerCpuArray))
    expected = {key: ([value] * len(CPUS_POSSIBLE()) if per_cpu else value) for key, value in entries.items()}
    got = dict(batched)
    assert {key: got[key] for key in entries} == expected
    # Written key by key, read in a batch.
    more = {key: key + 7 for key in range(4000, 4096)}
    if isinstance(target, HashMap):
        target.update_many(more, batch=False)
    else:
        target.update(more, batch=False)
    assert sorted(target.items(batch=True)) == sorted(target.items(batch=False))
    if isinstance(target, HashMap):
        assert target.values(batch=True) == [value for _, value in target.items(batch=True)]
        drained = target.pop_all(batch=True)
        assert len(drained) == 4096
        assert len(target) == 0
        target.update_many(entries)
        target.clear(batch=True)
        assert len(target) == 0


@pytest.mark.parametrize(
    ("key", "value", "make"),
    [
        (None, None, lambda k: k * 3 + 1),
        (ctypes.c_int32, ctypes.c_int64, lambda k: -k * 1_000_003),
        ("<i", "<q", lambda k: -(2**62) + k),
        (bytes, bytes, lambda k: (k * 7).to_bytes(8, "little")),
        (int, "<II", lambda k: (k, 2**32 - 1 - k)),
    ],
    ids=["btf", "ctypes", "struct", "bytes", "two-fields"],
)
def test_typed_batches_match_the_per_key_path(basic: Ebpf, key: object, value: object, make: object) -> None:
    """Whole-batch codecs (signed ints, struct formats, bytes) read and write what the per-key path does."""
    plain = basic.maps["MAPS_HASH"]
    assert isinstance(plain, HashMap)
    target = plain if key is None else plain.typed(key, value)  # None: the codecs from the object's BTF
    assert callable(make)
    keys: list[object] = list(range(-500, 500) if key in ("<i", ctypes.c_int32) else range(1000))
    if key is bytes:
        keys = [k.to_bytes(4, "little") for k in range(1000)]
    entries = {k: make(i) for i, k in enumerate(keys)}
    for write_batch in (True, False):
        target.clear()
        assert target.update_many(entries, batch=write_batch) == len(entries)
        for read_batch in (True, False):
            assert dict(target.items(batch=read_batch)) == entries
            assert sorted(target.values(batch=read_batch)) == sorted(entries.values())
        assert sorted(target.keys()) == sorted(entries)
    assert target.pop_all() == entries
    assert len(target) == 0


def test_packed_batch_reads(basic: Ebpf) -> None:
    hash_map = basic.maps["MAPS_HASH"]
    per_cpu = basic.maps["MAPS_PERCPU_HASH"]
    assert isinstance(hash_map, HashMap)
    assert isinstance(per_cpu, PerCpuHashMap)
    for target in (hash_map, per_cpu):
        target.update_many({k: k for k in range(100)})
        count, keys, values = target._native.lookup_batch_packed()
        assert count == 100
        assert len(keys) == 100 * target.key_size
        assert len(values) == 100 * target.value_buffer_len
        assert sorted(zip(*[iter(keys)] * target.key_size, strict=False)) == sorted(
            tuple(k.to_bytes(4, "little")) for k in range(100)
        )
        assert target._native.lookup_batch_packed(delete=True)[0] == 100
        assert target._native.lookup_batch_packed() == (0, b"", b"")


def test_batch_writes_check_every_entry_first(basic: Ebpf) -> None:
    """A bad entry anywhere fails the whole write before anything is written, with the error of the first bad
    pair, as writing pair by pair would report it."""
    target = basic.maps["MAPS_HASH"]
    assert isinstance(target, HashMap)
    target.clear()
    entries: list[tuple[object, object]] = [(k, k) for k in range(10)]
    entries[3] = (3, 2**64)  # value too big
    entries[5] = (-(2**40), 5)  # key too big
    for batch in (True, False):
        with pytest.raises(MapError, match=f"{2**64} does not fit"):
            target.update_many(entries, batch=batch)
        assert len(target) == 0
    with pytest.raises(MapError):
        target.update_many([(1, 1), (2, b"\0" * 3)])
    assert len(target) == 0


def test_per_cpu_batch_writes(basic: Ebpf) -> None:
    """Per-CPU values written in one batch as single values (every CPU), lists and PerCpuValues, mixed."""
    possible = len(CPUS_POSSIBLE())
    for name in ("MAPS_PERCPU_HASH", "MAPS_PERCPU_ARRAY"):
        target = basic.maps[name]
        assert isinstance(target, (PerCpuHashMap, PerCpuArray))
        entries: dict[int, object] = {k: k * 5 for k in range(0, 300, 3)}
        entries.update({k: [k + cpu for cpu in range(possible)] for k in range(1, 300, 3)})
        entries.update({k: PerCpuValues([k * 2] * possible) for k in range(2, 300, 3)})
        expected = {k: (v if isinstance(v, list) else [v] * possible) for k, v in entries.items()}
        for batch in (True, False):
            if isinstance(target, HashMap):
                target.clear()
                target.update_many(entries, batch=batch)
            else:
                target.update(entries, batch=batch)
            got = dict(target.items(batch=not batch))
            assert {k: got[k] for k in entries} == expected
            assert all(type(v) is PerCpuValues for v in got.values())
        write = target.update_many if isinstance(target, HashMap) else target.update
        with pytest.raises(MapError, match="one value per possible CPU"):
            write({1: [1] * (possible + 1)})


def test_array_batch_writes_take_indices_as_setitem_does(basic: Ebpf) -> None:
    array = basic.maps["MAPS_ARRAY"]
    assert isinstance(array, Array)
    size = len(array)
    for batch in (True, False):
        assert array.update({-1: 11, -size: 22, 5: 33}, batch=batch) == 3
        assert (array[size - 1], array[0], array[5]) == (11, 22, 33)
        array.update({-1: 0, 0: 0, 5: 0}, batch=batch)
    with pytest.raises(IndexError, match=f"index {size} out of range"):
        array.update({1: 1, size: 2})
    with pytest.raises(TypeError, match="not bool"):
        array.update({True: 1})
    assert array[1] == 0


def CPUS_POSSIBLE() -> list[int]:
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    cpus: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


@pytest.mark.smoke
def test_batch_falls_back_where_the_kernel_has_none(basic: Ebpf) -> None:
    stacks = basic.maps["MAPS_STACKS"]
    native = stacks._native
    with pytest.raises(UnsupportedError):
        native.lookup_batch()
    assert native.batch_refused == ["BPF_MAP_LOOKUP_BATCH"]
    with pytest.raises(UnsupportedError, match="said so before"):
        native.lookup_batch()
    # Arrays have batch lookups but no batch deletes: only the refused command is skipped afterwards.
    array = basic.maps["MAPS_ARRAY"]
    assert isinstance(array, Array)
    with pytest.raises(UnsupportedError):
        array._native.delete_batch(bytes(4))
    assert array._native.batch_refused == ["BPF_MAP_DELETE_BATCH"]
    array.update({1: 11}, batch=True)
    assert array.items(batch=True)[1] == (1, 11)
    # The LPM trie's items() work whichever path the kernel offers.
    trie = basic.maps["MAPS_LPM"]
    assert isinstance(trie, LpmTrie)
    trie[ipaddress.ip_network("10.0.0.0/8")] = 1
    trie[ipaddress.ip_network("10.1.0.0/16")] = 2
    assert sorted(trie.items()) == sorted(trie.items(batch=False))


def test_queue_and_stack(basic: Ebpf) -> None:
    queue = basic.maps["MAPS_QUEUE"]
    stack = basic.maps["MAPS_STACK"]
    assert isinstance(queue, Queue)
    assert isinstance(stack, Stack)
    for value in (1, 2, 3):
        queue.push(value)
        stack.push(value)
    assert queue.peek() == 1
    assert stack.peek() == 3
    assert queue.pop() == 1
    assert stack.pop() == 3
    assert queue.drain() == [2, 3]
    assert stack.drain() == [2, 1]
    assert not queue
    with pytest.raises(IndexError):
        queue.pop()
    for value in range(16):
        queue.push(value)
    with pytest.raises(MapError) as full:
        queue.push(99)
    assert full.value.errno == errno.E2BIG
    queue.push(99, replace_oldest=True)
    assert queue.pop() == 1
    # Written by the program too.
    queue.drain()
    basic.programs["maps_writer"].attach("sys_enter")
    trigger(4, cpu=CPUS[0])
    assert queue.drain() == [1, 2, 3, 4]
    assert stack.drain() == [4, 3, 2, 1]


def test_bloom_filter(basic: Ebpf) -> None:
    seen = basic.maps["MAPS_BLOOM"]
    assert isinstance(seen, BloomFilter)
    assert 42 not in seen
    seen.add(42)
    assert 42 in seen


def test_lpm_trie_longest_match(basic: Ebpf) -> None:
    routes = basic.maps["MAPS_LPM"]
    assert isinstance(routes, LpmTrie)
    routes[ipaddress.ip_network("10.0.0.0/8")] = 8
    routes[ipaddress.ip_network("10.1.0.0/16")] = 16
    routes[LpmKey(24, bytes([10, 1, 2, 0]))] = 24
    assert routes.longest_match(ipaddress.ip_address("10.1.2.3").packed) == 24
    assert routes.longest_match(ipaddress.ip_address("10.1.9.9").packed) == 16
    assert routes.longest_match(ipaddress.ip_address("10.200.0.1").packed) == 8
    assert routes.longest_match(ipaddress.ip_address("192.168.0.1").packed) is None
    assert LpmKey(16, bytes([10, 1, 0, 0])) in set(routes)
    del routes[ipaddress.ip_network("10.1.0.0/16")]
    assert routes.longest_match(ipaddress.ip_address("10.1.9.9").packed) == 8


def test_program_array_tail_call(basic: Ebpf) -> None:
    jumps = basic.maps["MAPS_PROGS"]
    assert isinstance(jumps, ProgramArray)
    tail = basic.programs["maps_tail"]
    jumps[0] = tail  # loads it
    assert jumps[0] == tail.info()["id"]
    assert list(jumps) == [0]
    basic.programs["maps_writer"].attach("sys_enter")
    trigger(5, cpu=CPUS[0])
    assert basic.maps["MAPS_ARRAY"][0] == 5
    del jumps[0]
    trigger(5, cpu=CPUS[0])
    assert basic.maps["MAPS_ARRAY"][0] == 5
    with pytest.raises(TypeError):
        jumps[1] = "not a program"  # type: ignore[assignment]


KERNEL_SPACE = 0xFFFF_8000_0000_0000  # x86-64 and arm64 kernel addresses start here


def test_stack_traces_resolve_to_symbols(basic: Ebpf) -> None:
    if kernel_symbols().zeroed:
        pytest.skip("/proc/kallsyms shows zeroed addresses (kptr_restrict): kernel symbols cannot be resolved")
    basic.programs["maps_writer"].attach("sys_enter")
    ids = basic.maps["MAPS_STACK_IDS"].typed(value="q")
    stacks = basic.maps["MAPS_STACKS"]
    assert isinstance(stacks, StackTraceMap)

    # The fixture takes stack ids with BPF_F_REUSE_STACKID: when the user stack hashes to the kernel stack's bucket
    # (256 of them) it replaces it, so the id then names user frames. A call from another place (another thread,
    # a C frame between) gives another user stack, and so another bucket.
    def in_thread() -> None:
        worker = threading.Thread(target=trigger, args=(1,))
        worker.start()
        worker.join()

    callers = [lambda: trigger(1), in_thread, lambda: list(map(trigger, [1])), lambda: sorted([1], key=trigger)]
    for call in callers:
        call()
        if all(address >= KERNEL_SPACE for address in stacks[ids[10]]):
            break
    kernel_frames = stacks.resolve(ids[10])
    assert len(stacks[ids[10]]) == len(kernel_frames) > 0
    names = [frame.name for frame in kernel_frames]
    assert any(name and "syscall" in name for name in names), names
    user_frames = stacks.resolve(ids[11], pid=os.getpid())
    assert any(frame.name and "getppid" in frame.name for frame in user_frames), [str(f) for f in user_frames]
    del stacks[ids[10]]
    assert ids[10] not in stacks


def _tcp_pair() -> tuple[socket.socket, socket.socket, socket.socket]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    return listener, client, server


def test_sock_map_and_sock_hash(basic: Ebpf) -> None:
    listener, client, server = _tcp_pair()
    with listener, client, server:
        sockets = basic.maps["MAPS_SOCKMAP"]
        by_key = basic.maps["MAPS_SOCKHASH"]
        assert isinstance(sockets, SockMap)
        assert isinstance(by_key, SockHash)
        sockets[1] = client
        by_key[8080] = server
        assert list(by_key) == [8080]
        assert 8080 in by_key
        assert 8081 not in by_key
        # Declared with 4-byte values, so the kernel says nothing about its sockets to user space.
        with pytest.raises(UnsupportedError, match="8-byte"):
            sockets[1]
        with pytest.raises(UnsupportedError, match="8-byte"):
            list(sockets)
        del sockets[1]
        with pytest.raises(KeyError):
            del sockets[1]
        del by_key[8080]
        assert len(by_key) == 0
        with pytest.raises(KeyError):
            del by_key[8080]


def test_device_and_cpu_maps(basic: Ebpf) -> None:
    lo = socket.if_nametoindex("lo")
    devices = basic.maps["MAPS_DEVMAP"]
    devices[0] = "lo"
    assert devices[0] == DevMapValue(lo, 0)
    assert list(devices) == [0]
    del devices[0]
    by_hash = basic.maps["MAPS_DEVMAP_HASH"]
    by_hash[lo] = lo
    assert dict(by_hash) == {lo: DevMapValue(lo, 0)}
    with pytest.raises(NotFoundError):
        by_hash[1] = "no-such-interface0"
    cpus = basic.maps["MAPS_CPUMAP"]
    cpus[0] = 192
    assert cpus[0] == CpuMapValue(192, 0)
    del cpus[0]
    assert 0 not in cpus


def test_xsk_map_refuses_plain_sockets(basic: Ebpf) -> None:
    xsks = basic.maps["MAPS_XSKMAP"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, pytest.raises(MapError):
        xsks[0] = udp
    with pytest.raises(UnsupportedError):
        xsks[0]
    del xsks[0]  # the kernel reports success for empty slots too


@pytest.mark.skipif(CGROUP2 is None, reason="no cgroup v2 hierarchy mounted here")
def test_cgroup_array(basic: Ebpf) -> None:
    assert CGROUP2 is not None
    cgroups = basic.maps["MAPS_CGROUPS"]
    cgroups[0] = CGROUP2
    del cgroups[0]
    with pytest.raises(KeyError):
        del cgroups[0]
    with pytest.raises(NotFoundError):
        cgroups[1] = "/sys/fs/cgroup/no/such/group"


def test_socket_storage(btf: Ebpf) -> None:
    storage = btf.maps["MAPS_SK_STORAGE"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        storage[udp] = 41
        assert storage[udp] == 41
        assert udp in storage
        del storage[udp]
        assert udp not in storage
    with pytest.raises(UnsupportedError):
        list(storage)


@pytest.mark.skipif(CGROUP2 is None, reason="no cgroup v2 hierarchy mounted here")
def test_cgroup_local_storage(btf: Ebpf) -> None:
    assert CGROUP2 is not None
    storage = btf.maps["MAPS_CGRP_STORAGE"]
    storage[CGROUP2] = 7
    assert storage[str(CGROUP2)] == 7
    del storage[CGROUP2]
    assert CGROUP2 not in storage


def test_inode_storage(btf: Ebpf, tmp_path: Path) -> None:
    storage = btf.maps["MAPS_INODE_STORAGE"]
    marked = tmp_path / "marked"
    marked.write_text("x")
    try:
        storage[marked] = 1
    except MapError as error:
        # Kernels without the BPF LSM's inode blob refuse the update; the kernel's answer is the reason.
        pytest.skip(f"this kernel refuses inode storage updates: {error}")
    with marked.open() as file:
        assert storage[file] == 1
    assert storage[str(marked)] == 1
    del storage[marked]
    assert marked not in storage


def test_cgroup_storage_is_a_read_only_view(btf: Ebpf) -> None:
    storage = btf.maps["MAPS_CGROUP_STORAGE"]
    per_cpu = btf.maps["MAPS_PERCPU_CGROUP_STORAGE"]
    # Entries exist only while a program using the map is attached to a cgroup; none is here.
    assert len(storage) == 0
    assert dict(per_cpu) == {}
    with pytest.raises(TypeError):
        storage[0] = 1  # type: ignore[index]


def test_maps_of_maps(btf: Ebpf) -> None:
    inner = btf.maps["MAPS_INNER"]
    outer = btf.maps["MAPS_ARRAY_OF_MAPS"]
    hashed = btf.maps["MAPS_HASH_OF_MAPS"]
    assert isinstance(outer, ArrayOfMaps)
    outer[2] = inner
    hashed[77] = inner
    assert outer.inner_id(2) == inner.id
    assert list(hashed) == [77]
    with outer[2] as handle:
        assert isinstance(handle, Array)
        assert handle.id == inner.id
        handle[1] = 5
    assert inner[1] == 5
    del outer[2]
    assert list(outer) == []
    with pytest.raises(TypeError):
        outer[0] = "not a map"  # type: ignore[assignment]


def test_pin_and_open_from_pin(basic: Ebpf, tmp_path: Path) -> None:
    bpffs = Path("/sys/fs/bpf")
    if not os.path.ismount(bpffs):
        pytest.skip("bpffs is not mounted at /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)")
    path = bpffs / f"pyaya-test-maps-{os.getpid()}"
    counts = basic.maps["MAPS_HASH"]
    counts[5] = 55
    counts.pin(path)
    try:
        assert counts.pinned_path == path
        with Map.from_pin(path) as again:
            assert isinstance(again, HashMap)
            assert again.id == counts.id
            assert again[5] == 55
            again[6] = 66
        assert counts[6] == 66
        ring = basic.maps["MAPS_RING"]
        ring_path = bpffs / f"pyaya-test-ring-{os.getpid()}"
        ring.pin(ring_path)
        with Map.from_pin(ring_path) as ring_again:
            assert isinstance(ring_again, RingBuf)
            assert ring_again.pinned_path == ring_path
            ring_again.unpin()  # a handle opened from a pin owns it, as programs and links do
        assert not ring_path.exists()
    finally:
        counts.unpin()
    assert not path.exists()
    with pytest.raises(NotFoundError):
        Map.from_pin(path)


def test_closing_releases_every_fd(fixtures_dir: Path) -> None:
    def open_fds() -> set[str]:
        return set(os.listdir("/proc/self/fd"))

    before = open_fds()
    for name in ("maps_basic", "maps_btf"):
        with Ebpf.load_file(fixtures_dir / name, globals=_globals() if name == "maps_basic" else None) as bpf:
            handles = [bpf.maps[map_name] for map_name in bpf.maps]
            if name == "maps_basic":
                bpf.programs["maps_writer"].attach("sys_enter")
                trigger(2)
                basic_perf = bpf.maps["MAPS_PERF"]
                assert isinstance(basic_perf, PerfEventArray)
                basic_perf.reopen(2)  # the old buffers' fds close; their two unread records are kept
                assert len(basic_perf.drain(timeout=0)) == 2
            assert handles
    assert open_fds() == before


def test_btf_lpm_trie_and_per_cpu_records_are_typed(btf: Ebpf) -> None:
    # aya's btf_maps::LpmTrie<[u8; 4], Route>: the BTF key is Key<[u8; 4]> (prefix_len + data); the map takes the
    # data part, so IP networks and LpmKey(prefix, bytes) keys work as on a legacy trie, and values are records.
    routes = btf.maps["MAPS_BTF_LPM"]
    assert isinstance(routes, LpmTrie)
    routes[ipaddress.ip_network("10.0.0.0/8")] = {"gateway": 1, "metric": 5}
    routes[LpmKey(16, bytes([10, 1, 0, 0]))] = btf.types["Route"](gateway=2, metric=9)
    assert routes.longest_match(bytes([10, 1, 2, 3])).metric == 9
    assert routes.longest_match(bytes([10, 9, 2, 3])).gateway == 1
    assert sorted(key.prefix_len for key in routes) == [8, 16]
    assert LpmKey(8, bytes([10, 0, 0, 0])) in set(routes)
    per_cpu = btf.maps["MAPS_BTF_PERCPU"]
    assert isinstance(per_cpu, PerCpuHashMap)
    per_cpu[3] = {"gateway": 4, "metric": 1}  # one value: every CPU's
    values = per_cpu[3]
    assert isinstance(values, PerCpuValues)
    assert {(v.gateway, v.metric) for v in values} == {(4, 1)}
    per_cpu[3] = PerCpuValues(btf.types["Route"](gateway=cpu, metric=cpu) for cpu in range(len(values)))
    assert [v.gateway for v in per_cpu[3]] == list(range(len(values)))
