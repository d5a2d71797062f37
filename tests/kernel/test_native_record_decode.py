"""Records decoded in Rust (``RecordType.native_plan``) against the Python plan, for every struct of every
fixture object and C test object: the same values, of the same types, on bytes built to reach every text path."""

from __future__ import annotations

import gc
import math
import random
from pathlib import Path
from typing import Any

import pytest
from pyaya.btf import Btf
from pyaya.errors import UnsupportedError
from pyaya.types import Record, RecordType, Types

# Pieces of byte arrays: NULs, printable ASCII, printable UTF-8 (é), non-printable UTF-8 (a zero-width space),
# bytes that are no UTF-8 and a control character.
_PIECES = (b"\0", b"a", b"Z", b" ", b"\xc3\xa9", b"\xe2\x80\x8b", b"\xff", b"\x01", b"\x80")


def _record_bytes(rng: random.Random, size: int) -> bytes:
    if rng.random() < 0.3:
        return rng.randbytes(size)
    data = b""
    while len(data) < size:
        data += rng.choice(_PIECES)
    return data[:size]


def _batch(rng: random.Random, size: int, count: int) -> list[bytes]:
    """``count`` records of ``size`` bytes, each new, a repeat of the one before, or that one with a span of it
    changed: the Rust plan hands a field the same object as the record before when its bytes repeat, so batches
    must hold repeats next to changes."""
    records = [_record_bytes(rng, size)]
    while len(records) < count:
        previous = records[-1]
        kind = rng.random()
        if kind < 0.3:
            records.append(_record_bytes(rng, size))
        elif kind < 0.5:
            records.append(previous)
        else:
            start = rng.randrange(size)
            end = min(size, start + rng.randint(1, 16))
            records.append(previous[:start] + _record_bytes(rng, end - start) + previous[end:])
    return records


def _normal(value: Any) -> Any:
    """A value with its type kept (True is not 1 here) and NaN equal to itself."""
    if isinstance(value, Record):
        return (type(value).__name__, [_normal(item) for item in value])
    if isinstance(value, list):
        return ("list", [_normal(item) for item in value])
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    return (type(value).__name__, value)


def _objects(fixtures_dir: Path) -> list[Path]:
    return [
        path
        for path in sorted(fixtures_dir.iterdir())
        if path.is_file() and not path.suffix and path.read_bytes()[:4] == b"\x7fELF"
    ]


def _compare(types: Types, label: str, rng: random.Random, limit: int | None = None) -> list[str]:
    """Every struct of ``types`` with a native plan decoded both ways; the names compared."""
    planned: list[str] = []
    for name in list(types):
        if limit is not None and len(planned) >= limit:
            break
        try:
            codec = types[name]
        except UnsupportedError:
            continue  # a name that is no value type (a function prototype): nothing to decode
        if not isinstance(codec, RecordType) or codec.size == 0 or codec.size > 4096:
            continue
        plan = codec.native_plan()
        if plan is None:
            continue
        planned.append(f"{label}:{name}")
        count = 40
        data = b"".join(_batch(rng, codec.size, count))
        native = plan.decode_many(data, count)
        python = [codec.decode(data[i * codec.size : (i + 1) * codec.size]) for i in range(count)]
        assert [_normal(r) for r in native] == [_normal(r) for r in python], f"{label}: {name}"
        assert all(type(record) is codec.record_class for record in native)
    return planned


def test_rust_decoding_equals_the_python_plan_for_every_fixture_struct(fixtures_dir: Path) -> None:
    rng = random.Random(1307)
    planned: list[str] = []
    for path in _objects(fixtures_dir):
        btf = Btf.from_object(path.read_bytes())
        if btf is not None:
            planned += _compare(Types(btf), path.name, rng)
    assert len(planned) >= 20, planned
    assert any(entry.endswith(":BenchEvent") for entry in planned), planned


def test_rust_decoding_equals_the_python_plan_for_the_kernels_structs() -> None:
    if not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("this kernel exposes no BTF at /sys/kernel/btf/vmlinux")
    # Structs nobody here wrote: unions, anonymous members, nested arrays of structs, padding.
    planned = _compare(Types(Btf.vmlinux()), "vmlinux", random.Random(5), limit=400)
    assert len(planned) == 400


def test_a_plan_refuses_a_batch_shorter_than_its_records(fixtures_dir: Path) -> None:
    types = Types(Btf.from_object((fixtures_dir / "bench_stream").read_bytes()))  # type: ignore[arg-type]
    plan = types["BenchEvent"].native_plan()
    with pytest.raises(ValueError, match="2 records of 64 bytes need more than 100 bytes"):
        plan.decode_many(bytes(100), 2)
    assert plan.decode_many(bytes(128), 2)[1].pid == 0


def test_types_the_python_plan_keeps_have_no_native_plan(fixtures_dir: Path) -> None:
    types = Types(Btf.from_object((fixtures_dir / "types_records").read_bytes()))  # type: ignore[arg-type]
    sample = types["Sample"]
    assert sample.variant(partial=True).native_plan() is None


def test_a_batch_leaves_the_garbage_collector_as_it_found_it(fixtures_dir: Path) -> None:
    # decode_many holds the collector off while it builds a batch (each record a tracked container).
    types = Types(Btf.from_object((fixtures_dir / "bench_stream").read_bytes()))  # type: ignore[arg-type]
    plan = types["BenchEvent"].native_plan()
    was_enabled = gc.isenabled()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            assert len(plan.decode_many(bytes(64 * 3), 3)) == 3
            assert gc.isenabled() is enabled
            with pytest.raises(ValueError, match="need more than"):
                plan.decode_many(bytes(10), 3)
            assert gc.isenabled() is enabled
    finally:
        (gc.enable if was_enabled else gc.disable)()


def test_records_of_plain_values_are_left_out_of_the_garbage_collectors_walks(fixtures_dir: Path) -> None:
    # An immutable record of ints, text and bytes can be in no reference cycle: as CPython does for such tuples,
    # the collector does not track it. One with an array (a list) stays tracked.
    types = Types(Btf.from_object((fixtures_dir / "bench_stream").read_bytes()))  # type: ignore[arg-type]
    for codec, tracked in ((types["BenchExecEvent"], False), (types["BenchEvent"], True)):
        plan = codec.native_plan()
        assert plan is not None
        size = codec.size
        data = bytes(range(97, 123)) * (size * 4 // 26 + 1)
        records = plan.decode_many(data, 4)
        python = [codec.decode(data[index * size : (index + 1) * size]) for index in range(4)]
        assert [_normal(record) for record in records] == [_normal(record) for record in python]
        assert {gc.is_tracked(record) for record in records} == {tracked}
