"""Maps served as Prometheus metrics: real maps of fixture objects, filled from user space (and by a program for
the run statistics), scraped over HTTP from the server `pyaya.metrics` starts, and parsed with prometheus_client's
own parser."""

from __future__ import annotations

import ctypes
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyaya import Ebpf, enable_stats, features
from pyaya.errors import MetricsError
from pyaya.metrics import serve
from pyaya.project import MetricSpec

parser = pytest.importorskip(
    "prometheus_client.parser", reason="prometheus_client is not installed: pip install 'pyaya[metrics]'"
)


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name -> (labels, value) of every sample at ``url``."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


@pytest.fixture
def bench(fixtures_dir: Path) -> Iterator[Ebpf]:
    with Ebpf.load_file(fixtures_dir / "bench_maps") as bpf:
        yield bpf


def test_hash_maps_arrays_and_per_cpu_values(bench: Ebpf) -> None:
    counts = bench.maps["BENCH_HASH"]
    counts.update({1: 3, 3: 5, 4: 0})
    per_cpu = bench.maps["BENCH_PERCPU_HASH"]
    cpus = len(per_cpu.possible_cpus()) if hasattr(per_cpu, "possible_cpus") else os.cpu_count() or 1
    per_cpu[7] = [2] * cpus
    array = bench.maps["BENCH_ARRAY"]
    array[2] = 9
    specs = {
        "BENCH_HASH": MetricSpec("BENCH_HASH", "counter", name="calls", help="calls per slot", labels=("slot",)),
        "BENCH_PERCPU_HASH": MetricSpec("BENCH_PERCPU_HASH", "gauge", labels=("cpu_key",)),
        "BENCH_ARRAY": MetricSpec("BENCH_ARRAY", "gauge", labels=("index",)),
    }
    with serve(bench, specs, "127.0.0.1:0", prefix="bench-tool") as server:
        samples = scrape(server.url)
        assert sorted(samples["bench_tool_calls_total"], key=lambda s: s[0]["slot"]) == [
            ({"slot": "1"}, 3.0),
            ({"slot": "3"}, 5.0),
            ({"slot": "4"}, 0.0),
        ]
        assert samples["bench_tool_bench_percpu_hash"] == [({"cpu_key": "7"}, 2.0 * cpus)]
        # An array has every slot: only the non-zero ones are samples.
        assert samples["bench_tool_bench_array"] == [({"index": "2"}, 9.0)]
        # Values are read at each scrape, never cached.
        counts[1] = 10
        assert ({"slot": "1"}, 10.0) in scrape(server.url)["bench_tool_calls_total"]


def test_histograms(bench: Ebpf) -> None:
    bench.maps["BENCH_HASH"].update({0: 1, 1: 3, 3: 5})
    specs = {
        "BENCH_HASH": MetricSpec("BENCH_HASH", "log2_histogram", name="latency"),
    }
    with serve(bench, specs, "127.0.0.1:0", prefix="t") as server:
        samples = scrape(server.url)
    # slot 0 holds 0, slot n values up to 2**n - 1: cumulative counts per upper bound.
    buckets = {labels["le"]: value for labels, value in samples["t_latency_bucket"]}
    assert buckets == {"0.0": 1.0, "1.0": 4.0, "3.0": 4.0, "7.0": 9.0, "+Inf": 9.0}
    assert samples["t_latency_count"] == [({}, 9.0)]
    assert "t_latency_sum" not in samples  # the values inside a log2 bucket are not known
    linear = {"BENCH_HASH": MetricSpec("BENCH_HASH", "linear_histogram", name="cpu")}
    with serve(bench, linear, "127.0.0.1:0", prefix="t") as server:
        samples = scrape(server.url)
    buckets = {labels["le"]: value for labels, value in samples["t_cpu_bucket"]}
    assert buckets == {"0.0": 1.0, "1.0": 4.0, "2.0": 4.0, "3.0": 9.0, "+Inf": 9.0}
    assert samples["t_cpu_sum"] == [({}, 0 * 1 + 1 * 3 + 3 * 5.0)]


def test_struct_keys_are_labelled_by_their_btf_fields(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "types_records", globals={"TARGET_PID": ctypes.c_uint32(os.getpid())}) as bpf:
        by_key = bpf.maps["SAMPLES_BY_KEY"]
        sample = bpf.types["Sample"](bytes(bpf.types["Sample"].size))
        by_key[{"pid": 42, "slot": 3}] = sample
        specs = {"SAMPLES_BY_KEY": MetricSpec("SAMPLES_BY_KEY", "gauge", name="samples")}
        with serve(bpf, specs, "127.0.0.1:0", prefix="t") as server:
            samples = scrape(server.url)
    # A struct value: one metric per integer field.
    assert samples["t_samples_long"] == [({"pid": "42", "slot": "3"}, 0.0)]
    assert samples["t_samples_word_signed"] == [({"pid": "42", "slot": "3"}, 0.0)]


def test_program_run_statistics(fixtures_dir: Path) -> None:
    ok, reason = features.stats_supported()
    if not ok:
        pytest.skip(reason)
    with Ebpf.load_file(fixtures_dir / "types_records", globals={"TARGET_PID": ctypes.c_uint32(os.getpid())}) as bpf:
        bpf.programs["types_records"].attach("syscalls", "sys_enter_getppid")
        with enable_stats():
            for _ in range(3):
                os.getppid()
            specs = {"SIGNED": MetricSpec("SIGNED", "gauge")}
            with serve(
                bpf, specs, "127.0.0.1:0", prefix="t", programs=lambda: [bpf.programs["types_records"]],
                program_stats=True,
            ) as server:  # fmt: skip
                samples = scrape(server.url)
    ((labels, runs),) = samples["t_program_runs_total"]
    assert labels == {"program": "types_records"}
    assert runs >= 3
    assert samples["t_program_run_seconds_total"][0][1] > 0


def test_unknown_maps_and_busy_addresses_are_refused(bench: Ebpf) -> None:
    with pytest.raises(MetricsError, match=r"\[metrics.NOPE\] names no map of the object \(its maps: .*BENCH_HASH"):
        serve(bench, {"NOPE": MetricSpec("NOPE", "gauge")}, "127.0.0.1:0", prefix="t")
    specs = {"BENCH_HASH": MetricSpec("BENCH_HASH", "gauge")}
    with (
        serve(bench, specs, "127.0.0.1:0", prefix="t") as server,
        pytest.raises(MetricsError, match=rf"cannot serve metrics on 127.0.0.1:{server.port}: .*in use"),
    ):
        serve(bench, specs, f"127.0.0.1:{server.port}", prefix="t")
    with pytest.raises(MetricsError, match="is not HOST:PORT"):
        serve(bench, specs, "localhost", prefix="t")


def test_pinned_maps_are_read_typed_and_served(fixtures_dir: Path) -> None:
    """What main.py does with --pinned-maps: the maps another loader pinned (pyaya itself here, bpfman in
    test_fleet.py), typed by the object's BTF, served as metrics; programs are the other loader's to attach."""
    from pyaya.runtime import PinnedObject  # noqa: PLC0415

    folder = Path("/sys/fs/bpf") / f"pyaya-fleet-{os.getpid()}"
    object_path = fixtures_dir / "types_records"
    try:
        with Ebpf.load_file(object_path, pin_maps=folder, globals={"TARGET_PID": ctypes.c_uint32(os.getpid())}) as bpf:
            bpf.programs["types_records"].attach("syscalls", "sys_enter_getppid")
            os.getppid()
            pinned = PinnedObject(folder, object_path)
            assert "SAMPLES_BY_KEY" in pinned.maps
            assert pinned.programs["types_records"].attach("syscalls", "sys_enter_getppid") is None
            (key,) = list(pinned.maps["SAMPLES_BY_KEY"])
            assert key.pid == os.getpid()  # typed: a SampleKey record, not bytes
            specs = {"SIGNED": MetricSpec("SIGNED", "gauge", labels=("pid",))}
            with serve(pinned, specs, "127.0.0.1:0", prefix="t") as server:
                assert scrape(server.url)["t_signed"] == [({"pid": str(os.getpid())}, -42.0)]
            pinned.close()
            assert pinned.closed
    finally:
        shutil.rmtree(folder, ignore_errors=True)
