"""A Rust panic inside aya in the middle of Ebpf.load: ObjectError, and nothing left pinned.

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
from pyaya.errors import ObjectError

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
