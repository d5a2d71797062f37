"""Lost records are counted exactly: a known number of records into a deliberately small ring buffer and perf event
array (the `maps_loss` fixture) while nothing reads, then read: what arrives plus what is reported lost is what
the program made, for both kinds of stream, also when the run stops right after the burst (no later sample)."""

from __future__ import annotations

import io
import json
import os
import platform
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyaya import Ebpf, features
from pyaya.maps import PerfEventArray, RingBuf
from pyaya.runtime import RunOptions, Session

CPU = min(os.sched_getaffinity(0))
BURST = 1000
STREAMS = {"LOSS_RING": 0, "LOSS_PERF": 1}  # stream -> its slot in LOSS_PRODUCED

pytestmark = pytest.mark.skipif(
    platform.machine() != "x86_64",
    reason=f"the fixture filters on x86-64's getppid number; this is {platform.machine()}",
)


def _globals() -> dict[str, bytes]:
    return {"LOSS_TARGET_TGID": os.getpid().to_bytes(4, "little")}


@pytest.fixture
def loss(fixtures_dir: Path) -> Iterator[Ebpf]:
    with Ebpf.load_file(fixtures_dir / "maps_loss", globals=_globals()) as bpf:
        yield bpf


def burst(times: int = BURST) -> None:
    """`times` getppid() calls on one CPU, so they all go to one perf buffer."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {CPU})
    try:
        for _ in range(times):
            os.getppid()
    finally:
        os.sched_setaffinity(0, before)


def produced(bpf: Ebpf, stream: str) -> int:
    return int(bpf.maps["LOSS_PRODUCED"][STREAMS[stream]].sum())


def require_exact_perf_losses(stream: str) -> None:
    if stream == "LOSS_PERF":
        ok, reason = features.perf_lost_count_supported()
        if not ok:
            pytest.skip(f"a perf buffer's losses are only known ahead of a later sample here: {reason}")


def small(bpf: Ebpf, stream: str) -> RingBuf | PerfEventArray:
    source = bpf.maps[stream]
    if isinstance(source, PerfEventArray):
        source.reopen(1)  # one page: about 50 of the fixture's 64-byte records
    assert isinstance(source, (RingBuf, PerfEventArray))
    return source


@pytest.mark.parametrize("stream", STREAMS)
def test_a_burst_nobody_reads_is_received_or_counted_lost(loss: Ebpf, stream: str) -> None:
    require_exact_perf_losses(stream)
    source = small(loss, stream)
    assert source.lost == 0
    loss.programs["maps_loss"].attach("sys_enter")
    burst()
    # Read only now, and with no sample after the burst: the losses must already be counted.
    lost = source.lost
    received: list[bytes] = []
    while batch := source.drain(timeout=0):
        received += batch
    assert produced(loss, stream) == BURST
    assert 0 < len(received) < BURST
    assert lost is not None
    assert lost > 0
    assert len(received) + lost == BURST
    assert source.lost == lost  # nothing more was lost while reading


@pytest.mark.parametrize("stream", STREAMS)
def test_losses_reach_the_output_when_the_run_stops_after_the_burst(
    fixtures_dir: Path, stream: str, tmp_path: Path
) -> None:
    require_exact_perf_losses(stream)
    out = io.StringIO()
    options = RunOptions(object_path=fixtures_dir / "maps_loss", json=True, duration=0.5)
    with Session("loss-test", options=options, out=out) as session:
        bpf = session.load(globals=_globals())
        source = small(bpf, stream)
        bpf.programs["maps_loss"].attach("sys_enter")
        burst()  # before the stream reads anything; nothing is made after it
        received = sum(1 for _ in session.stream(source))
        made = produced(bpf, stream)
        assert not bpf.programs["maps_loss"].links  # the end of the run detached the program
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    lost = [line for line in lines if line["kind"] == "lost"]
    assert all(line["map"] == stream for line in lost)
    reported = sum(line["count"] for line in lost)
    assert made == BURST
    assert reported > 0
    assert received + reported == BURST


def test_leaving_the_stream_early_reports_what_it_will_not_see(fixtures_dir: Path) -> None:
    out = io.StringIO()
    options = RunOptions(object_path=fixtures_dir / "maps_loss", json=True)
    with Session("loss-test", options=options, out=out) as session:
        bpf = session.load(globals=_globals())
        source = small(bpf, "LOSS_RING")
        bpf.programs["maps_loss"].attach("sys_enter")
        burst()
        seen = 0
        for _ in session.stream(source):
            seen += 1
            if seen == 10:
                break  # with most of the ring's records still unread
        assert not bpf.programs["maps_loss"].links
    lost = [json.loads(line) for line in out.getvalue().splitlines() if '"lost"' in line]
    assert seen + sum(line["count"] for line in lost) == BURST


def test_table_mode_warns_on_stderr_and_ends_with_a_footer(
    fixtures_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.StringIO()
    options = RunOptions(object_path=fixtures_dir / "maps_loss", duration=0.5)
    with Session("loss-test", options=options, out=out) as session:
        bpf = session.load(globals=_globals())
        source = small(bpf, "LOSS_RING")
        bpf.programs["maps_loss"].attach("sys_enter")
        burst()
        received = sum(1 for _ in session.stream(source))
    lost = BURST - received
    warnings = [line for line in capsys.readouterr().err.splitlines() if "lost" in line]
    assert warnings == [f"warning: lost {lost} records from LOSS_RING ({lost} in all so far)"]
    footer = out.getvalue().splitlines()[-1]
    assert footer.startswith(f"LOSS_RING: {received} records read, {lost} lost (")


def test_first_perf_sample_after_attach_arrives_before_the_map_is_touched(loss: Ebpf) -> None:
    # The perf buffers are open from the load on: the map is looked at only after the sample was made.
    loss.programs["maps_loss"].attach("sys_enter")
    burst(1)
    perf = loss.maps["LOSS_PERF"]
    assert isinstance(perf, PerfEventArray)
    records = perf.drain_with_cpu(timeout=2)
    assert len(records) == 1
    cpu, record = records[0]
    assert cpu == CPU
    assert int.from_bytes(record[:8], "little") == 1  # seq of the first record
    assert perf.lost == 0
