"""Columnar reads against the real kernel: ring buffer records and map entries as numpy structured arrays, equal
to what the typed (dict / Record) path gives for the same records (fixture: types_records)."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyaya
import pytest
from pyaya import Ebpf
from pyaya.types import Record

np = pytest.importorskip("numpy")


@pytest.fixture
def records(fixtures_dir: Path) -> Iterator[Ebpf]:
    """types_records loaded with TARGET_PID = this process, attached, after one getppid() call."""
    with Ebpf.load_file(fixtures_dir / "types_records", globals={"TARGET_PID": ctypes.c_uint32(os.getpid())}) as bpf:
        bpf.programs["types_records"].attach("syscalls", "sys_enter_getppid")
        os.getppid()
        yield bpf


def _typed(value: Any) -> Any:
    """A typed-path value in the shape numpy gives: records as dicts, text as its bytes, byte arrays without the
    trailing NULs numpy strips."""
    if isinstance(value, Record):
        return {name: _typed(item) for name, item in value._asdict().items()}
    if isinstance(value, dict):
        return {name: _typed(item) for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_typed(item) for item in value]
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes):
        return value.rstrip(b"\0")
    return int(value) if not isinstance(value, float) else value


def _columnar(value: Any) -> Any:
    if isinstance(value, np.void) and value.dtype.names:
        return {name: _columnar(value[name]) for name in value.dtype.names}
    if isinstance(value, np.ndarray):
        return [_columnar(item) for item in value]
    if isinstance(value, bytes):
        return value
    return value.item() if hasattr(value, "item") else value


def test_ring_buffer_array_equals_typed_records(records: Ebpf) -> None:
    os.getppid()
    os.getppid()
    raw = records.maps["RAW_SAMPLES"].drain(timeout=5)
    while len(raw) < 3:
        raw += records.maps["RAW_SAMPLES"].drain(timeout=5)
    sample = records.types["Sample"]
    typed = [sample.decode(data) for data in raw]
    # The same three records again, through the columnar path.
    for _ in range(3):
        os.getppid()
    array = records.maps["RAW_SAMPLES"].typed("Sample").drain_array(timeout=5)
    while len(array) < 3:
        array = np.concatenate([array, records.maps["RAW_SAMPLES"].typed("Sample").drain_array(timeout=5)])
    assert array.dtype.itemsize == sample.size
    for row, record in zip(array, typed, strict=False):
        assert _columnar(row) == _typed(record)


def test_btf_ring_buffer_array(records: Ebpf) -> None:
    samples = records.maps["SAMPLES"]
    array = samples.drain_array(timeout=5)
    assert len(array) == 1
    assert array["name"][0] == b"hello types"
    assert array["inner"]["b"][0] == -7
    assert list(array["inners"]["a"][0]) == [10, 20]
    os.getppid()
    (record,) = samples.drain(timeout=5)
    os.getppid()
    (row,) = samples.drain_array(timeout=5)
    assert _columnar(row) == _typed(record)


def test_short_record_raises_for_that_record_alone(records: Ebpf) -> None:
    mixed = records.maps["MIXED"].typed("Totals")  # per call: a Totals, a bare u32, a Totals
    typed = records.maps["MIXED"].typed("Totals")
    first = mixed.drain_array(timeout=5)
    assert len(first) == 1
    with pytest.raises(pyaya.RecordError, match="4-byte record of MIXED is shorter") as bad:
        mixed.drain_array(timeout=5)
    assert len(bad.value.data) == 4
    assert mixed.undecoded == 1
    last = mixed.drain_array(timeout=5)
    assert len(last) == 1
    os.getppid()
    good = typed.drain(timeout=5)[0]
    assert last["last"][0] == first["last"][0]  # the fixture's second Totals counts differently (calls + 1000)
    assert _columnar(first[0]) == {**_typed(good), "calls": good.calls - 1}  # the next call counted one more


def test_untyped_stream_says_to_type_it(records: Ebpf) -> None:
    with pytest.raises(pyaya.InvalidArgumentTypeError, match="typed"):
        records.maps["RAW_SAMPLES"].drain_array(timeout=5)


def test_map_arrays_equal_items(records: Ebpf) -> None:
    for name in ("TOTALS", "SAMPLES_BY_KEY", "SIGNED"):
        table = records.maps[name]
        keys, values = table.items_array()
        items = table.items()
        assert len(keys) == len(items) >= 1
        assert [(_columnar(k), _columnar(v)) for k, v in zip(keys, values, strict=True)] == [
            (_typed(k), _typed(v)) for k, v in items
        ]
        assert len(table.to_array()) == len(items)


def _arrow_value(value: Any) -> Any:
    """A typed record in the shape Arrow's ``to_pylist`` gives: records as dicts, arrays as lists, text as str and
    byte arrays as all their bytes."""
    if isinstance(value, Record):
        return _arrow_value(value._asdict())
    if isinstance(value, dict):
        return {name: _arrow_value(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_arrow_value(item) for item in value]
    if isinstance(value, bool | float | str | bytes):
        return value
    return int(value)


def test_ring_buffer_arrow_batch_equals_the_typed_records(records: Ebpf) -> None:
    pa = pytest.importorskip("pyarrow")
    samples = records.maps["SAMPLES"]
    batch = samples.drain_arrow(timeout=5)
    assert isinstance(batch, pa.RecordBatch)
    assert batch.num_rows == 1
    assert batch.column("name").type == pa.string()
    assert batch.column("name").to_pylist() == ["hello types"]
    assert batch.column("blob").type == pa.binary(8)  # not UTF-8: all its bytes
    assert pa.types.is_struct(batch.column("inner").type)
    assert pa.types.is_fixed_size_list(batch.column("inners").type)
    os.getppid()
    (record,) = samples.drain(timeout=5)
    os.getppid()
    again = samples.drain_arrow(timeout=5)
    assert again.to_pylist() == [_arrow_value(record)]


def test_map_arrow_batch_equals_items(records: Ebpf) -> None:
    pa = pytest.importorskip("pyarrow")
    for name in ("TOTALS", "SAMPLES_BY_KEY", "SIGNED"):
        table = records.maps[name]
        batch = table.to_arrow()
        assert isinstance(batch, pa.RecordBatch)
        assert batch.schema.names == ["key", "value"]
        assert sorted(map(repr, batch.to_pylist())) == sorted(
            repr({"key": _arrow_value(k), "value": _arrow_value(v)}) for k, v in table.items()
        )


@pytest.fixture
def bench_stream(fixtures_dir: Path) -> Iterator[Ebpf]:
    """bench_stream with BENCH_TGID = this process: one 64-byte BenchEvent per getppid() of this process."""
    tgid = ctypes.c_uint32(os.getpid())
    with Ebpf.load_file(fixtures_dir / "bench_stream", globals={"BENCH_TGID": tgid}) as bpf:
        yield bpf


def _drain_exactly(stream: Any, count: int) -> Any:
    arrays = [stream.drain_array(timeout=5)]
    while sum(len(array) for array in arrays) < count:
        arrays.append(stream.drain_array(timeout=5))
    return np.concatenate(arrays)


@pytest.mark.parametrize(("stream_name", "program"), [("BENCH_RING", "bench_ring"), ("BENCH_PERF", "bench_perf")])
def test_stream_arrays_equal_typed_records_of_both_stream_kinds(
    bench_stream: Ebpf, stream_name: str, program: str
) -> None:
    stream = bench_stream.maps[stream_name].typed("BenchEvent")
    with bench_stream.programs[program].attach("sys_enter"):
        for _ in range(200):
            os.getppid()
        array = _drain_exactly(stream, 200)
        for _ in range(3):
            os.getppid()
        typed = stream.drain(timeout=5)
        while len(typed) < 3:
            typed += stream.drain(timeout=5)
    assert len(array) == 200
    assert array.dtype.itemsize == bench_stream.types["BenchEvent"].size == 64
    assert set(array["pid"].tolist()) == {os.getpid()}
    # seq counts every record the program wrote, so the 200 arrive in order and none twice (per CPU for perf).
    for cpu in set(array["cpu"].tolist()):
        seqs = array["seq"][array["cpu"] == cpu]
        assert (np.diff(seqs.astype(np.int64)) > 0).all()
    assert len(set(array["seq"].tolist())) == 200
    row = _columnar(array[-1])
    assert set(row) == set(typed[0]._asdict())
    assert row["comm"] == _typed(typed[0])["comm"]
    assert row["syscall"] == typed[0].syscall == 110


@pytest.mark.parametrize(("stream_name", "program"), [("BENCH_RING", "bench_ring"), ("BENCH_PERF", "bench_perf")])
def test_array_of_a_larger_type_raises_for_each_record_and_loses_none(
    bench_stream: Ebpf, stream_name: str, program: str
) -> None:
    # BenchExecEvent is 288 bytes: every 64-byte BenchEvent is short of it.
    stream = bench_stream.maps[stream_name].typed("BenchExecEvent")
    with bench_stream.programs[program].attach("sys_enter"):
        os.getppid()
        os.getppid()
    errors = []
    for _ in range(2):
        with pytest.raises(pyaya.RecordError, match=f"record of {stream_name} is shorter than") as bad:
            stream.drain_array(timeout=5)
        errors.append(bad.value)
    assert [len(error.data) >= 64 for error in errors] == [True, True]
    assert [int.from_bytes(error.data[16:20], "little") for error in errors] == [os.getpid()] * 2
    assert stream.undecoded == 2
    assert len(stream.drain_array(timeout=0)) == 0


@pytest.fixture
def bench_maps(fixtures_dir: Path) -> Iterator[Ebpf]:
    entries = {"BENCH_HASH": 40_000, "BENCH_ARRAY": 4096, "BENCH_PERCPU_HASH": 16}
    with Ebpf.load_file(fixtures_dir / "bench_maps", max_entries=entries) as bpf:
        yield bpf


@pytest.mark.parametrize("batch", [None, False])
@pytest.mark.parametrize("name", ["BENCH_HASH", "BENCH_ARRAY"])
def test_update_array_writes_what_items_array_reads_back(bench_maps: Ebpf, name: str, batch: bool | None) -> None:
    table = bench_maps.maps[name]
    keys = np.arange(4096, dtype=np.uint32)
    assert table.update_array(keys, keys.astype(np.uint64) * 3 + 1, batch=batch) == 4096
    read_keys, read_values = table.items_array()
    assert sorted(zip(read_keys.tolist(), read_values.tolist(), strict=True)) == [(k, k * 3 + 1) for k in range(4096)]
    assert dict(table.items()) == {k: k * 3 + 1 for k in range(4096)}
    # Python ints convert to the map's dtypes too.
    assert table.update_array([1, 2], [10, 20], batch=batch) == 2
    assert (table[1], table[2]) == (10, 20)


def test_update_array_refuses_what_does_not_fit_and_writes_nothing(bench_maps: Ebpf) -> None:
    table = bench_maps.maps["BENCH_HASH"]
    with pytest.raises(pyaya.InvalidArgumentError, match=r"values of update_array\(\) on BENCH_HASH do not fit"):
        table.update_array(np.array([1, 2], dtype=np.uint32), np.array([5, -1]))
    with pytest.raises(pyaya.InvalidArgumentError, match=r"keys of update_array\(\) on BENCH_HASH do not fit"):
        table.update_array([1, 2**32], [5, 6])
    with pytest.raises(pyaya.InvalidArgumentError, match="got 2 keys and 3 values"):
        table.update_array([1, 2], [5, 6, 7])
    with pytest.raises(pyaya.InvalidArgumentTypeError, match="cannot be read as uint64"):
        table.update_array([1, 2], [0.5, 1.5])
    with pytest.raises(pyaya.InvalidArgumentError, match="one-dimensional"):
        table.update_array(np.zeros((2, 2), dtype=np.uint32), np.zeros((2, 2), dtype=np.uint64))
    assert len(table) == 0
    with pytest.raises(pyaya.UnsupportedError, match="one value per CPU"):
        bench_maps.maps["BENCH_PERCPU_HASH"].update_array([1], [1])


@pytest.mark.parametrize("batch", [None, False])
def test_to_dict_and_items_of_a_map_read_in_several_chunks(bench_maps: Ebpf, batch: bool | None) -> None:
    table = bench_maps.maps["BENCH_HASH"]
    keys = np.arange(40_000, dtype=np.uint32)  # more than one chunk of the batch reader thread
    table.update_array(keys, keys.astype(np.uint64) + 7)
    expected = {key: key + 7 for key in range(40_000)}
    assert table.to_dict(batch=batch) == expected
    items = table.items(batch=batch)
    assert len(items) == 40_000
    assert dict(items) == expected
    per_cpu = bench_maps.maps["BENCH_PERCPU_HASH"]
    per_cpu.update_many({1: 5, 2: 6}, batch=batch)
    assert {key: list(value) for key, value in per_cpu.to_dict(batch=batch).items()} == {
        1: [5] * len(per_cpu[1]),
        2: [6] * len(per_cpu[2]),
    }


def test_to_dict_of_an_empty_map_and_of_a_closed_one(bench_maps: Ebpf) -> None:
    table = bench_maps.maps["BENCH_HASH"]
    assert table.to_dict() == {}
    table[3] = 4
    chunks = table._native.lookup_batch_chunks()
    bench_maps.close()
    # The reader thread holds its own fd: what it read before the close still arrives, whole.
    assert [count for count, _, _ in chunks] == [1]
    with pytest.raises(pyaya.ClosedError):
        table.to_dict()
