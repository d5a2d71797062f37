"""Typed data from the object's BTF against the real kernel: records through ring buffers and maps, decoded and
encoded without a user-side declaration (fixtures: crates/pyaya-fixtures/fixtures-ebpf/src/types_*.rs)."""

from __future__ import annotations

import ctypes
import json
import os
from collections.abc import Iterator
from enum import IntEnum
from pathlib import Path

import pyaya
import pytest
from conftest import FIXTURES, pyaya_cli
from pyaya import Ebpf, features
from pyaya.maps import RingBuf
from pyaya.types import EnumCodec, Record, RecordType

EXPECTED_SCALARS = {
    "small": 250,
    "small_signed": -5,
    "short": 65000,
    "short_signed": -30000,
    "word": 4_000_000_000,
    "word_signed": -2_000_000_000,
    "long": 18_000_000_000_000_000_000,
    "long_signed": -9_000_000_000_000_000_000,
    "flag": True,
    "words": [1, 2, 3],
    "name": "hello types",
    "blob": bytes([0xFF, 0xFE, 0xFD, 0xFC, 0xFB, 0xFA, 0xF9, 0xF8]),
}


@pytest.fixture
def records(fixtures_dir: Path) -> Iterator[Ebpf]:
    """types_records loaded with TARGET_PID = this process, attached, after one getppid() call."""
    with Ebpf.load_file(fixtures_dir / "types_records", globals={"TARGET_PID": ctypes.c_uint32(os.getpid())}) as bpf:
        bpf.programs["types_records"].attach("syscalls", "sys_enter_getppid")
        os.getppid()
        yield bpf


def _check_sample(sample: Record) -> None:
    for name, value in EXPECTED_SCALARS.items():
        assert getattr(sample, name) == value, name
    assert sample.pid == os.getpid()
    assert sample.color == 2
    assert isinstance(sample.color, IntEnum)
    assert sample.color.name == "Green"
    assert sample.inner.a == 7
    assert sample.inner.b == -7
    assert sample.inner.tag == b"\x01\x02\x03\x04"
    assert [inner.a for inner in sample.inners] == [10, 20]
    assert [inner.b for inner in sample.inners] == [-10, -20]
    assert sample.inners[0].tag == bytes.fromhex("deadbeef")


def test_types_lists_the_common_types_only(records: Ebpf) -> None:
    assert set(records.types) == {"Sample", "Inner", "SampleKey", "Totals", "Color"}
    assert isinstance(records.types["Sample"], RecordType)
    assert isinstance(records.types["Color"], EnumCodec)
    with pytest.raises(pyaya.NotFoundError, match="Sample"):
        records.types["NoSuchType"]


@pytest.mark.smoke
def test_btf_ring_buffer_comes_back_typed(records: Ebpf) -> None:
    samples = records.maps["SAMPLES"]
    assert isinstance(samples, RingBuf)
    got = samples.drain(timeout=5)
    assert len(got) == 1
    _check_sample(got[0])
    assert type(got[0]) is records.types["Sample"].record_class


def test_legacy_ring_buffer_typed_by_name(records: Ebpf) -> None:
    raw = records.maps["RAW_SAMPLES"]
    assert raw.drain(timeout=5)[0][:1] == bytes([250])  # untyped: bytes
    os.getppid()
    got = records.maps["RAW_SAMPLES"].typed("Sample").drain(timeout=5)
    assert len(got) == 1
    _check_sample(got[0])


def test_decode_by_type_and_by_call_agree(records: Ebpf) -> None:
    data = records.maps["RAW_SAMPLES"].drain(timeout=5)[0]
    sample_type = records.types["Sample"]
    assert sample_type.size == len(data)
    assert sample_type.decode(data) == sample_type(data)
    encoded = bytes(sample_type(data))[: sample_type.size]
    assert sample_type(encoded) == sample_type(data)
    # Encoding writes the fields and zero padding (what a map key needs), whatever the kernel's copy held there:
    # the program's stack leaves garbage in Sample's padding on some kernels (5.10).
    assert all(mine in (theirs, 0) for mine, theirs in zip(encoded, data, strict=True))


def test_record_json_and_repr(records: Ebpf) -> None:
    sample = records.maps["SAMPLES"].drain(timeout=5)[0]
    plain = json.loads(json.dumps(sample.asdict()))
    assert plain["color"] == "Green"
    assert plain["name"] == "hello types"
    assert plain["blob"] == "fffefdfcfbfaf9f8"
    assert plain["inner"] == {"a": 7, "b": -7, "tag": "01020304"}
    assert sample._asdict()["inner"]["tag"] == b"\x01\x02\x03\x04"
    text = repr(sample)
    assert text.startswith("Sample(small=250, small_signed=-5,")
    assert "name='hello types'" in text


def test_legacy_hash_map_with_struct_key_and_value(records: Ebpf) -> None:
    by_key = records.maps["SAMPLES_BY_KEY"]
    key_type = records.types["SampleKey"]
    key = key_type(pid=os.getpid(), slot=3)
    _check_sample(by_key[key])
    assert list(by_key) == [key]
    # Writes: a dict is encoded through the BTF type too.
    by_key[{"pid": 1, "slot": 9}] = by_key[key]
    assert by_key[key_type(pid=1, slot=9)].name == "hello types"
    del by_key[{"pid": 1, "slot": 9}]
    assert len(by_key) == 1


def test_legacy_primitive_types_from_the_static_name(records: Ebpf) -> None:
    signed = records.maps["SIGNED"]
    assert dict(signed) == {os.getpid(): -42}
    signed[7] = -1
    assert signed[7] == -1


@pytest.mark.smoke
def test_btf_map_with_struct_key_and_value(records: Ebpf) -> None:
    totals = records.maps["TOTALS"]
    key = records.types["SampleKey"](pid=os.getpid(), slot=3)
    assert totals[key].calls == 1
    assert totals[key].last.name == "Blue"
    os.getppid()
    assert totals[key].calls == 2
    assert len(totals) == 1  # the kernel's key has zero padding too: one entry, not one per call
    totals[key] = {"calls": 100, "last": "Red"}
    os.getppid()
    assert totals[key].calls == 101
    assert totals[key].last == records.types["Color"]("Blue")


def test_legacy_array_of_structs(records: Ebpf) -> None:
    last = records.maps["LAST_TOTALS"]
    assert last[0].calls == 1
    assert last[0].last.name == "Blue"
    last[0] = records.types["Totals"](calls=5, last="Green")
    assert last[0].calls == 5


def test_encode_rejects_bad_values(records: Ebpf) -> None:
    key_type = records.types["SampleKey"]
    with pytest.raises(pyaya.MapError, match="no field 'nope'"):
        key_type.encode({"nope": 1})
    with pytest.raises(pyaya.MapError, match="does not fit"):
        key_type.encode({"slot": 256})
    with pytest.raises(pyaya.MapError, match="no member 'Purple'"):
        records.types["Totals"].encode({"last": "Purple"})


def test_object_without_types_still_loads(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "types_plain") as bpf:
        assert "Sample" not in bpf.types
        shared = bpf.maps["SHARED"]
        shared[1] = 2  # u32 -> u64 from the static's type name
        assert dict(shared) == {1: 2}


def test_build_warns_about_padded_keys(fixtures_dir: Path) -> None:
    if os.environ.get("PYAYA_VM_KERNEL"):
        pytest.skip("the host builds the fixtures for a pyaya test guest (cargo over 9p takes minutes)")
    result = pyaya_cli("build", str(FIXTURES))  # already built by fixtures_dir: cargo has nothing to do
    assert result.returncode == 0, result.stderr
    warned = [line for line in result.stderr.splitlines() if "padding byte" in line]
    assert sorted(line.split(": ")[2] for line in warned) == ["map SAMPLES_BY_KEY", "map TOTALS"]
    assert all("struct SampleKey has 3 padding byte(s) (3 at offset 5)" in line for line in warned)


def test_undecodable_record_raises_alone(records: Ebpf) -> None:
    mixed = records.maps["MIXED"].typed("Totals")
    assert [t.calls for t in mixed.drain(timeout=5)] == [1]  # the record before the short one
    with pytest.raises(pyaya.RecordError, match=r"a 4-byte record of MIXED does not decode as struct Totals") as bad:
        mixed.drain()
    assert bad.value.data == os.getpid().to_bytes(4, "little")
    assert bad.value.stream == "MIXED"
    assert isinstance(bad.value, pyaya.ObjectError)
    assert [(t.calls, t.last.name) for t in mixed.drain()] == [(1001, "Red")]  # and the one after it
    assert mixed.undecoded == 1
    os.getppid()
    # Iteration goes the same way: good records, the error, then the rest.
    got: list[object] = []
    with pytest.raises(pyaya.RecordError):
        got.extend(t.calls for t in mixed.records(timeout=5))
    got.extend(t.calls for t in mixed.drain())
    assert got == [2, 1002]


def test_globals_read_and_written_while_running(records: Ebpf) -> None:
    globals_ = records.globals
    assert set(globals_) == {"TARGET_PID", "CALLS", "STEP", "LAST_SEEN", "AYA_LOG_LEVEL"}
    assert (globals_.info("CALLS").section, globals_.info("STEP").section) == (".bss", ".data")
    assert globals_["TARGET_PID"] == os.getpid()  # set before load
    assert globals_["CALLS"] == 1  # the fixture's call
    assert globals_["LAST_SEEN"].last.name == "Blue"  # a record, typed from the BTF
    if features.bpffs_mount() is not None:  # the sections were made mmapable ahead of aya
        assert all(globals_.area(section).mapped for section in (".bss", ".data", ".rodata"))
    globals_["STEP"] = 10  # .data, seen by the program at once
    os.getppid()
    assert globals_["CALLS"] == 11
    assert globals_["LAST_SEEN"].calls == 2
    globals_["CALLS"] = 0
    os.getppid()
    assert globals_["CALLS"] == 10
    with pytest.raises(pyaya.UnsupportedError, match=r"\.rodata is frozen once the object is loaded"):
        globals_["TARGET_PID"] = 1
    with pytest.raises(pyaya.NotFoundError, match="its globals: AYA_LOG_LEVEL, CALLS, LAST_SEEN, STEP, TARGET_PID"):
        globals_["NOPE"]
    with pytest.raises(pyaya.MapError, match="does not fit"):
        globals_["STEP"] = 2**64
    records.close()
    with pytest.raises(pyaya.ClosedError):
        globals_["CALLS"]
