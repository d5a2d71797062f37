"""Ring buffers and perf event arrays as streams: records from a real program, per-CPU buffers, lost samples,
callbacks and asyncio."""

from __future__ import annotations

import asyncio
import ctypes
import io
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyaya import Ebpf, features
from pyaya.maps import PerfEventArray, RingBuf
from pyaya.runtime import RunOptions, Session

CPUS = sorted(os.sched_getaffinity(0))


class PerfRecord(ctypes.Structure):
    """Mirror of the fixture's `PerfRecord`."""

    _fields_ = (("cpu", ctypes.c_uint32), ("seq", ctypes.c_uint32), ("padding", ctypes.c_uint64 * 15))


@pytest.fixture
def basic(fixtures_dir: Path) -> Iterator[Ebpf]:
    # The object holds one map of every type; the newest, BloomFilter (5.16), decides whether it loads at all.
    newest = features.requirement("map:BloomFilter")
    if not newest.ok:
        pytest.skip(f"the maps_basic fixture has a BloomFilter map: {newest.reason}")
    with Ebpf.load_file(
        fixtures_dir / "maps_basic", globals={"MAPS_TARGET_TGID": os.getpid().to_bytes(4, "little")}
    ) as bpf:
        yield bpf


def trigger(times: int = 1, cpu: int | None = None) -> None:
    before = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        for _ in range(times):
            os.getppid()
    finally:
        os.sched_setaffinity(0, before)


def _perf(bpf: Ebpf) -> PerfEventArray:
    perf = bpf.maps["MAPS_PERF"]
    assert isinstance(perf, PerfEventArray)
    return perf


def _ring(bpf: Ebpf) -> RingBuf:
    ring = bpf.maps["MAPS_RING"]
    assert isinstance(ring, RingBuf)
    return ring


def test_perf_events_come_from_every_cpu(basic: Ebpf) -> None:
    perf = _perf(basic)  # buffers open before the program runs
    assert perf.cpus == CPUS
    basic.programs["maps_writer"].attach("sys_enter")
    for cpu in CPUS:
        trigger(4, cpu=cpu)
    pairs = perf.typed(PerfRecord).drain_with_cpu(timeout=2)
    while len(pairs) < 4 * len(CPUS):
        more = perf.typed(PerfRecord).drain_with_cpu(timeout=2)
        assert more, f"only {len(pairs)} records arrived"
        pairs += more
    assert {cpu for cpu, _ in pairs} == set(CPUS)
    for cpu, record in pairs:
        assert record.cpu == cpu
    for cpu in CPUS:
        assert sorted(record.seq for c, record in pairs if c == cpu) == [1, 2, 3, 4]
    assert perf.lost == 0


def test_perf_lost_samples_are_counted(basic: Ebpf) -> None:
    perf = _perf(basic)
    perf.reopen(1)  # one page: a few dozen 136-byte samples
    assert perf.page_count == 1
    basic.programs["maps_writer"].attach("sys_enter")
    sent = 400
    trigger(sent, cpu=CPUS[0])
    received = []
    while batch := perf.drain(timeout=0.2):
        received += batch
    assert 0 < len(received) < sent
    # The kernel writes its lost-samples record once the buffer has room again, ahead of the next sample.
    trigger(1, cpu=CPUS[0])
    received += perf.drain(timeout=2)
    assert perf.lost > 0
    assert len(received) + perf.lost == sent + 1


@pytest.mark.smoke
def test_ring_buffer_callbacks(basic: Ebpf) -> None:
    ring = _ring(basic).typed("<II")
    seen: list[tuple[int, int]] = []
    ring.on(seen.append)
    basic.programs["maps_writer"].attach("sys_enter")
    trigger(3, cpu=CPUS[0])
    assert ring.poll(timeout=2) == 3
    assert seen == [(1, CPUS[0]), (2, CPUS[0]), (3, CPUS[0])]
    assert ring.poll(timeout=0) == 0
    assert ring.lost == 0  # MAPS_RING_LOST, the program's count of records the ring could not take


@pytest.mark.smoke
def test_perf_callbacks_and_records_iteration(basic: Ebpf) -> None:
    perf = _perf(basic).typed(PerfRecord)
    seqs: list[int] = []
    perf.on(lambda record: seqs.append(record.seq))
    basic.programs["maps_writer"].attach("sys_enter")
    trigger(2, cpu=CPUS[0])
    assert perf.poll(timeout=2) == 2
    assert seqs == [1, 2]
    trigger(1, cpu=CPUS[0])
    assert [record.seq for record in perf.records(timeout=0.5)] == [3]


@pytest.mark.parametrize("stream", ["MAPS_RING", "MAPS_PERF"])
def test_async_iteration_wakes_on_records(basic: Ebpf, stream: str) -> None:
    source = basic.maps[stream]
    assert isinstance(source, (RingBuf, PerfEventArray))
    basic.programs["maps_writer"].attach("sys_enter")

    async def collect() -> list[bytes]:
        loop = asyncio.get_running_loop()
        # The records are made only after the loop waits on the stream's fd.
        loop.call_later(0.2, trigger, 3, CPUS[0])
        received: list[bytes] = []
        async for record in source:
            received.append(record)
            if len(received) == 3:
                break
        return received

    received = asyncio.run(asyncio.wait_for(collect(), 10))
    assert len(received) == 3

    async def nothing() -> list[bytes]:
        return [record async for record in source.arecords(timeout=0.3)]

    assert asyncio.run(nothing()) == []


def test_session_stream_reports_lost_samples(basic: Ebpf, tmp_path: Path) -> None:
    perf = _perf(basic)
    perf.reopen(1)
    basic.programs["maps_writer"].attach("sys_enter")
    out = io.StringIO()
    options = RunOptions(object_path=tmp_path / "unused", json=True, duration=3)

    def burst_then_one() -> None:
        trigger(400, cpu=CPUS[0])
        time.sleep(1)  # the stream drains meanwhile, so the buffer has room for the lost-samples record
        trigger(1, cpu=CPUS[0])

    with Session("lost-test", options=options, out=out) as session:
        producer = threading.Thread(target=burst_then_one)
        producer.start()
        received = sum(1 for _ in session.stream(perf))
        producer.join()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    lost = [line for line in lines if line["kind"] == "lost"]
    assert lost, "a full perf buffer must show up as lost records"
    assert all(line["map"] == "MAPS_PERF" for line in lost)
    assert received + sum(line["count"] for line in lost) == 401
