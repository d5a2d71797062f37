"""Rust panics inside aya while loading: ObjectError and nothing left pinned, or avoided where pyaya can.

aya-obj 0.3 panics (a ``todo!()``) while relocating a call against a data symbol, which happens after aya has
created the object's maps and pinned them where ``pin_maps`` says; pyaya catches the panic, removes the pins this
load made, and raises ObjectError naming the panic.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bpfobj import call_relocated_against_data
from pyaya import Ebpf
from pyaya.elf import Elf
from pyaya.errors import ObjectError, VerifierError
from pyaya.inspect import line_info

PANIC = r"Ebpf.load failed: internal error \(not yet implemented: FIXME: return an error here for kind=Data"


def test_a_panic_after_the_maps_exist_is_an_object_error() -> None:
    with pytest.raises(ObjectError, match=PANIC):
        Ebpf.load(call_relocated_against_data())


def test_the_pins_of_a_load_that_panicked_are_removed() -> None:
    created = Path(f"/sys/fs/bpf/pyaya-guard-{os.getpid()}")
    with pytest.raises(ObjectError, match=PANIC):
        Ebpf.load(call_relocated_against_data(), pin_maps=created)
    assert not created.exists()  # the folder this load created goes too
    existing = Path(f"/sys/fs/bpf/pyaya-guard-kept-{os.getpid()}")
    existing.mkdir()
    try:
        with pytest.raises(ObjectError, match=PANIC):
            Ebpf.load(call_relocated_against_data(), pin_maps=existing)
        assert list(existing.iterdir()) == []
    finally:
        for pin in existing.iterdir():
            pin.unlink()
        existing.rmdir()


def test_a_verifier_log_quoting_non_utf8_bytes_keeps_the_log(fixtures_dir: Path) -> None:
    # The verifier quotes the object's line info (file names, source lines) from its BTF strings; aya 0.14 unwraps
    # the log's UTF-8 conversion, so one Latin-1 byte there cost the log (a panic, caught as "internal error").
    # pyaya replaces invalid bytes of the BTF strings with "?" before loading.
    data = bytearray((fixtures_dir / "rejected").read_bytes())
    section = Elf(bytes(data)).section(".BTF")
    assert section is not None
    patched = 0
    for file in {record.file for record in line_info(bytes(data))}:
        at = data.find(file.encode() + b"\0", section.offset, section.offset + section.size)
        if at >= 0:
            data[at + file.rfind("/") + 1] = 0xE9  # the file name's first letter, in Latin-1
            patched += 1
    assert patched
    with Ebpf.load(bytes(data)) as bpf, pytest.raises(VerifierError) as caught:
        bpf.programs["rejected"].load()
    assert "?" in caught.value.log
