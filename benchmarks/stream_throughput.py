"""Records per second through a RingBuf and a PerfEventArray, by the ways pyaya reads them.

The fixture ``bench_stream`` emits one 64-byte ``BenchEvent`` per ``getppid()`` of a producer process (a raw
tracepoint on ``sys_enter``, filtered to the producer's pid), through a 16 MiB ring buffer or a perf event array
(``--perf-pages`` per CPU, 8 MiB by default so that a backlog fits). Readers compared on the same stream in this
process, against ``drain()`` of bytes in batches:

- ``drain()``: every ready record per call, as soon as one is ready; ``drain()`` every 10 ms (a tracer that
  refreshes on an interval); ``drain(max_records=1)``: one record per call;
- iteration (``for record in stream.records(...)``);
- each as ``bytes`` (``typed(None)``) or decoded to named fields through the object's BTF (``typed("BenchEvent")``;
  the ring's BTF definition names ``BenchEvent``, so ``bpf.maps["BENCH_RING"]`` comes back typed like this
  already, while a ``btf_maps::PerfEventArray`` names no record type: ``BENCH_PERF`` comes back as bytes);
- ``drain_arrow()`` (when pyarrow is installed): each batch as an Arrow record batch built from that array.
- ``drain_array()``: each batch as one numpy structured array, printed at the end against issue 13's goal (20 M
  records/s from a backlog, within 3x of ``np.frombuffer`` over the same bytes in one buffer, measured here too).

Two modes: ``backlog`` (the producer makes ``--events`` records first, then the reader is timed alone: the cost
of reading) and ``live`` (the reader runs while the producer makes them, timed from the start until every
record is read or known lost: what a tracer keeps up with; "per call" shows how many records each read got, 1
meaning a wake-up per record, and "produced/s" how fast the producer went meanwhile, since every wake-up of the
reader slows the producer down, "ms" runs until the last record was read). Lost records are reported beside
every figure: each stream's ``lost`` (ring writes that failed, counted by the program in ``BENCH_RING_LOST``; perf
samples the kernel dropped, read from the perf events), so a fast but lossy reader never looks like a win (its
ratio reads "lossy"); "missing" counts records produced but neither read nor reported lost (0 unless the kernel
lacks ``PERF_FORMAT_LOST``, where a perf buffer reports a CPU's losses only ahead of that CPU's next sample).

The last lines compare the streams live: the perf event array's ``bytes drain()`` against the ring buffer's, in
the same run. pyaya's perf buffers wake the reader at a watermark (a quarter buffer) where aya's woke it for every
sample; run an older checkout's copy of this script for its ratio.
Needs root, raw tracepoints and x86-64 (getppid is syscall 110 in the fixture).

    sudo .venv/bin/python benchmarks/stream_throughput.py [--events N] [--runs N] [--perf-pages N] [--modes M]
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyaya
from _bench import BenchError, fixture_object, print_table, require_root, run
from pyaya.maps import PerfEventArray, RingBuf
from pyaya.programs import RawTracePoint

PRODUCER = """
import os, sys, time
getppid = os.getppid
for line in sys.stdin:
    count = int(line)
    start = time.perf_counter()
    for _ in range(count):
        getppid()
    print(time.perf_counter() - start, flush=True)
"""
QUIET_S = 1.0  # after the producer is done, this long without a record ends a run that is missing records
WAIT_S = 0.05  # how long one read waits for a record
PACE_S = 0.01  # the paced reader's sleep between reads


@dataclass
class Outcome:
    seconds: float
    received: int
    calls: int
    lost: int
    missing: int
    producer_seconds: float

    @property
    def produced_rate(self) -> float:
        """The producer's getppid() calls per second (each one record) while this run lasted."""
        return (self.received + self.lost + self.missing) / self.producer_seconds


class Producer:
    """A child process calling ``getppid()`` as many times as asked; it stays up so the filter's pid holds."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", PRODUCER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def produce(self, count: int) -> float:
        """Make ``count`` calls; returns how long the producer took."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(f"{count}\n")
        self.process.stdin.flush()
        reply = self.process.stdout.readline()
        if not reply:
            raise BenchError("the producer process exited")
        return float(reply)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=10)


class Counters:
    """The program's per-CPU count of events produced."""

    def __init__(self, bpf: pyaya.Ebpf) -> None:
        self.array: Any = bpf.maps["BENCH_COUNTS"]

    def read(self) -> int:
        return int(self.array[0].sum())


Finished = Callable[[int], bool]
Reader = Callable[[Any, Finished], tuple[int, int]]  # (records read, read calls made, 0 when not counted)


def read_batches(stream: Any, finished: Finished) -> tuple[int, int]:
    received = calls = 0
    while not finished(received):
        received += len(stream.drain(None, WAIT_S))
        calls += 1
    return received, calls


def read_batches_paced(stream: Any, finished: Finished) -> tuple[int, int]:
    """A tracer that reads every ``PACE_S`` (a refresh interval) instead of as soon as a record is ready."""
    received = calls = 0
    while not finished(received):
        if calls:
            time.sleep(PACE_S)
        received += len(stream.drain(None, WAIT_S))
        calls += 1
    return received, calls


def read_one_by_one(stream: Any, finished: Finished) -> tuple[int, int]:
    received = calls = 0
    while not finished(received):
        received += len(stream.drain(1, WAIT_S))
        calls += 1
    return received, calls


def read_iterating(stream: Any, finished: Finished) -> tuple[int, int]:
    received = 0
    while not finished(received):
        for _ in stream.records(WAIT_S):
            received += 1
            if finished(received):
                return received, 0
    return received, 0


def raw(read: Reader) -> Reader:
    """``read`` on the stream's records as bytes: ``typed(None)`` undoes the BTF type a ring came with."""
    return lambda stream, finished: read(stream.typed(None), finished)


def typed(read: Reader) -> Reader:
    """``read`` on the stream's records decoded to ``BenchEvent`` records by the object's BTF."""
    return lambda stream, finished: read(stream.typed("BenchEvent"), finished)


def python_decoded(read: Reader) -> Reader:
    """``read`` on ``BenchEvent`` records decoded by the Python plan alone (the typed path before records were
    built in Rust: the same-run baseline of issue 13's "typed events" goal)."""

    def reader(stream: Any, finished: Finished) -> tuple[int, int]:
        stream = stream.typed("BenchEvent")
        stream._plan = None  # the Rust decoder off: each record decoded by the Python plan
        return read(stream, finished)

    return reader


def read_arrays(stream: Any, finished: Finished) -> tuple[int, int]:
    """Columnar: each batch as one numpy structured array (dtype from ``BenchEvent``'s BTF)."""
    stream = stream.typed("BenchEvent")
    received = calls = 0
    while not finished(received):
        received += len(stream.drain_array(None, WAIT_S))
        calls += 1
    return received, calls


def read_arrow(stream: Any, finished: Finished) -> tuple[int, int]:
    """Columnar: each batch as one Arrow record batch (built from the numpy array of the same records)."""
    stream = stream.typed("BenchEvent")
    received = calls = 0
    while not finished(received):
        received += stream.drain_arrow(None, WAIT_S).num_rows
        calls += 1
    return received, calls


READERS: dict[str, Reader] = {
    "bytes drain()": raw(read_batches),
    "bytes drain() every 10 ms": raw(read_batches_paced),
    "bytes drain(max_records=1)": raw(read_one_by_one),
    "bytes iteration": raw(read_iterating),
    'typed("BenchEvent") drain()': typed(read_batches),
    'typed("BenchEvent") drain(), Python decoding': python_decoded(read_batches),
    'typed("BenchEvent") iteration': typed(read_iterating),
    'typed("BenchEvent") drain_array()': read_arrays,
}
if importlib.util.find_spec("pyarrow") is not None:  # pyaya[arrow] is optional: the row is left out without it
    READERS['typed("BenchEvent") drain_arrow()'] = read_arrow
#: Issue 13's goal for columnar reads: 64-byte records into numpy from a backlog, per second.
ARRAY_GOAL = 20_000_000
#: Issue 13's goal for typed records built in Rust: this many times the Python plan's rate, in the same run.
TYPED_GOAL = 3.0
#: Issue 13's bytes-drain goal: twice the ring buffer's backlog rate when the issue was filed (3.5 M records/s).
BYTES_GOAL = 2 * 3_500_000


def frombuffer_rate(bpf: pyaya.Ebpf, count: int) -> float:
    """Records per second of ``np.frombuffer`` over ``count`` 64-byte records already in one buffer, with the
    fields then read out (each column copied once): the floor any columnar read is compared with."""
    import numpy as np  # noqa: PLC0415 - optional, as for pyaya
    from pyaya.dtypes import dtype_of  # noqa: PLC0415

    dtype = dtype_of(bpf.types["BenchEvent"], 64)
    data = bytes(64 * count)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        array = np.frombuffer(data, dtype=dtype, count=count)
        for name in array.dtype.names or ():
            array[name].copy()
        best = min(best, time.perf_counter() - start)
    return count / best


class Run:
    """One timed pass: the producer's events read by one reader, with the lost records accounted."""

    def __init__(self, stream: Any, counters: Counters, producer: Producer, events: int) -> None:
        self.stream, self.counters, self.producer, self.events = stream, counters, producer, events
        self.done = threading.Event()
        self.producer_seconds = 0.0
        self.target: int | None = None  # records to expect, once the producer is done
        self.last_progress = (0, 0.0)  # (records read, perf_counter() when the last of them was read)

    def _lost(self) -> int:
        return int(self.stream.lost or 0) - self.lost_before

    def _produce(self) -> None:
        self.producer_seconds = self.producer.produce(self.events)
        self.done.set()

    def _finished(self, received: int) -> bool:
        now = time.perf_counter()
        count, since = self.last_progress
        if received != count:
            self.last_progress = (received, now)  # when the latest record was in hand: the run's end
        if self.target is None:
            if not self.done.is_set():
                return False
            self.produced = self.counters.read() - self.produced_before
            self.target = self.produced
        if received + self._lost() >= self.target:
            return True
        return received == count and now - since > QUIET_S

    def measure(self, reader: Reader, mode: str) -> Outcome:
        self.stream.drain(None, 0)  # leftovers of an earlier pass
        self.produced_before = self.counters.read()
        self.lost_before = int(self.stream.lost or 0)
        if mode == "backlog":
            self._produce()
            start = time.perf_counter()
        else:
            start = time.perf_counter()
            threading.Thread(target=self._produce, daemon=True).start()
        self.last_progress = (0, start)
        received, calls = reader(self.stream, self._finished)
        # Timed until the last record arrived: a reader waiting for the producer's "done" is not reading.
        seconds = self.last_progress[1] - start
        lost = self._lost()
        return Outcome(seconds, received, calls, lost, self.produced - received - lost, self.producer_seconds)


def per_call(outcomes: list[Outcome]) -> str:
    """Median records per read call: 1 means a wake-up per record."""
    if not all(o.calls for o in outcomes):
        return ""
    return f"{statistics.median(o.received / o.calls for o in outcomes):.1f}"


def check_records(bpf: pyaya.Ebpf, stream: Any, producer: Producer) -> None:
    """One record, decoded: it must be the producer's getppid(), or the figures count something else."""
    stream.drain(None, 0)
    producer.produce(1)
    records = stream.typed("BenchEvent").drain(None, 2.0)
    if len(records) != 1 or records[0].pid != producer.pid or records[0].syscall != 110:
        raise BenchError(f"expected one BenchEvent from pid {producer.pid}, got {records!r:.200}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000, help="records per run (default 50 000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per reader and mode (median reported)")
    parser.add_argument(
        "--perf-pages", type=int, default=2048, help="perf buffer pages per CPU (a power of two; default 8 MiB)"
    )
    parser.add_argument("--modes", default="backlog,live", help="comma-separated: backlog, live")
    args = parser.parse_args()
    require_root("stream_throughput.py")
    if platform.machine() != "x86_64":
        raise BenchError(f"the fixture filters on x86-64's getppid syscall number; this is {platform.machine()}")
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    if not modes or set(modes) - {"backlog", "live"}:
        raise BenchError(f"--modes takes backlog and/or live, not {args.modes!r}")
    if args.events * 72 > 16 * 1024 * 1024:
        raise BenchError("--events above 233 000 do not fit the 16 MiB ring in backlog mode")
    obj = fixture_object("bench_stream")
    producer = Producer()
    rows: list[list[str]] = []
    live: dict[str, tuple[float, float, bool]] = {}  # stream -> (records/s, produced/s, lossy) of live bytes drain()
    arrays: dict[str, float] = {}  # stream -> records/s of the backlog drain_array()
    by_reader: dict[tuple[str, str], float] = {}  # (stream, reader) -> records/s in backlog mode
    floor = 0.0
    try:
        with pyaya.Ebpf.load_file(obj, globals={"BENCH_TGID": producer.pid.to_bytes(4, "little")}) as bpf:
            counters = Counters(bpf)
            streams: dict[str, tuple[Any, str]] = {
                "RingBuf": (bpf.maps["BENCH_RING"], "bench_ring"),
                "PerfEventArray": (bpf.maps["BENCH_PERF"], "bench_perf"),
            }
            ring, perf = streams["RingBuf"][0], streams["PerfEventArray"][0]
            if not isinstance(ring, RingBuf) or not isinstance(perf, PerfEventArray):
                raise BenchError("the fixture's streams did not come back as RingBuf and PerfEventArray")
            perf.reopen(args.perf_pages)
            floor = frombuffer_rate(bpf, args.events)
            for mode in modes:
                for stream_name, (stream, program) in streams.items():
                    tracer = bpf.programs[program]
                    if not isinstance(tracer, RawTracePoint):
                        raise BenchError(f"{program} came back as {type(tracer).__name__}, not a RawTracePoint")
                    with tracer.attach("sys_enter"):
                        check_records(bpf, stream, producer)
                        baseline: float | None = None
                        for reader_name, reader in READERS.items():
                            outcomes = [
                                Run(stream, counters, producer, args.events).measure(reader, mode)
                                for _ in range(args.runs)
                            ]
                            rate = statistics.median(o.received / o.seconds for o in outcomes)
                            baseline = baseline or rate
                            lossy = any(o.lost or o.missing for o in outcomes)
                            if mode == "backlog" and reader_name.endswith("drain_array()"):
                                arrays[stream_name] = rate
                            if mode == "backlog" and reader_name.startswith(("typed", "bytes drain()")):
                                by_reader[(stream_name, reader_name)] = rate
                            if mode == "live" and reader_name == "bytes drain()":
                                produced_rate = statistics.median(o.produced_rate for o in outcomes)
                                live[stream_name] = (rate, produced_rate, lossy)
                            rows.append(
                                [
                                    mode,
                                    stream_name,
                                    reader_name,
                                    f"{statistics.median(o.received for o in outcomes):.0f}",
                                    per_call(outcomes),
                                    f"{max(o.lost for o in outcomes)}",
                                    f"{max(o.missing for o in outcomes)}",
                                    f"{statistics.median(o.seconds for o in outcomes) * 1000:.1f}",
                                    f"{rate / 1000:.0f}k",
                                    f"{1e9 / rate:.0f}",
                                    "lossy" if lossy else f"x{rate / baseline:.2f}",
                                    f"{statistics.median(o.produced_rate for o in outcomes) / 1000:.0f}k",
                                ]
                            )
    finally:
        producer.close()
    print(f"{args.events} records of 64 bytes per run, median of {args.runs} runs; lost/missing: worst run;")
    print("backlog: records read after the producer finished; live: read while it runs (see the docstring)")
    print_table(
        [
            "mode",
            "stream",
            "reader",
            "read",
            "per call",
            "lost",
            "missing",
            "ms",
            "records/s",
            "ns/record",
            "vs bytes drain()",
            "produced/s",
        ],
        rows,
    )
    typed_name, python_name = 'typed("BenchEvent") drain()', 'typed("BenchEvent") drain(), Python decoding'
    for stream_name in streams:
        rust, python = by_reader.get((stream_name, typed_name)), by_reader.get((stream_name, python_name))
        if rust and python:
            print(
                f"backlog typed drain() of {stream_name}: records built in Rust {rust / 1e6:.2f} M/s, "
                f"x{rust / python:.2f} of the Python plan's {python / 1e6:.2f} M/s; goal >= x{TYPED_GOAL:.0f}: "
                f"{'met' if rust / python >= TYPED_GOAL else 'MISSED'}"
            )
    ring_bytes = by_reader.get(("RingBuf", "bytes drain()"))
    if ring_bytes:
        print(
            f"backlog bytes drain() of RingBuf: {ring_bytes / 1e6:.2f} M/s, "
            f"x{ring_bytes / (BYTES_GOAL / 2):.2f} of the 3.5 M/s measured when issue 13 was filed (code gone); "
            "goal >= x2: "
            f"{'met' if ring_bytes >= BYTES_GOAL else 'MISSED'}"
        )
    for stream_name, rate in arrays.items():
        verdict = "met" if rate >= ARRAY_GOAL and floor / rate <= 3 else "MISSED"
        print(
            f"backlog drain_array() of {stream_name}: {rate / 1e6:.2f} M records/s, np.frombuffer of the same bytes "
            f"(and a copy per column) x{floor / rate:.1f} faster; goal >= {ARRAY_GOAL / 1e6:.0f} M/s and within x3: "
            f"{verdict}"
        )
    if "RingBuf" in live and "PerfEventArray" in live:
        (ring_rate, ring_made, ring_lossy), (perf_rate, perf_made, perf_lossy) = live["RingBuf"], live["PerfEventArray"]
        print(
            f"live bytes drain(): PerfEventArray {perf_rate / 1000:.0f}k records/s"
            f"{' (lossy)' if perf_lossy else ''}, x{perf_rate / ring_rate:.2f} of RingBuf's {ring_rate / 1000:.0f}k"
            f"{' (lossy)' if ring_lossy else ''}; the producer made x{perf_made / ring_made:.2f} as many records/s"
        )
    return 0


if __name__ == "__main__":
    run(main)
