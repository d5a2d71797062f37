"""`pyaya inspect --compat`'s rules and the build's ring-buffer BTF fix, on objects built byte by byte."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest
from bpfobj import BtfBuilder, Sym, build_elf
from pyaya._btf_fixups import fixed
from pyaya.btf import Btf, BtfArray, BtfComposite, BtfPtr
from pyaya.cli import app
from pyaya.compat import compatibility
from typer.testing import CliRunner

SHT_PROGBITS, SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE = 1, 2, 4, 1
CALL = 0x85
EXIT = bytes([0x95]) + bytes(7)
MOV_R0_0 = bytes([0xB7]) + bytes(7)


def call(helper: int) -> bytes:
    return struct.pack("<BBhi", CALL, 0, 0, helper)


def ring_object(*, license_text: bytes | None = b"GPL\0", helper: int = 113, legacy: list[str] | None = None) -> bytes:
    """A uprobe program calling ``helper`` and a `#[btf_map]` ring buffer of 20-byte Events, laid out as
    aya-ebpf 0.2 lays it out (`value` points to the record type, `value_size` is 0)."""
    b = BtfBuilder()
    u32 = b.int_("u32", 4)
    index = b.int_("__ARRAY_SIZE_TYPE__", 4)
    event = b.composite("STRUCT", "Event", 20, [("pid", u32, 0, 0), ("rest", u32, 32, 0)])

    def uint(value: int) -> int:
        return b.add("PTR", "", b.add("ARRAY", "", 0, [u32, index, value]))

    members = [
        ("type", uint(27), 0, 0),
        ("key", b.add("PTR", "", b.int_("()", 0)), 64, 0),  # Rust's `()`, as bpf-linker writes it
        ("value", b.add("PTR", "", event), 128, 0),
        ("max_entries", uint(4096), 192, 0),
        ("map_flags", uint(0), 256, 0),
        ("value_size", uint(0), 320, 0),
    ]
    definition = b.composite("STRUCT", "RingBuf_3C_Event_3E_", 48, members)
    var = b.add("VAR", "EVENTS", definition, [1])
    b.add("DATASEC", ".maps", 48, [var, 0, 48], vlen=1)
    code = call(helper) + MOV_R0_0 + EXIT
    sections = [
        ("uprobe", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, code),
        (".maps", SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, bytes(48)),
        (".BTF", SHT_PROGBITS, 0, b.to_bytes()),
    ]
    symbols = [Sym("probe", "uprobe", 0, len(code)), Sym("EVENTS", ".maps", 0, 48, type=1)]
    if legacy:
        sections.append(("maps", SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, bytes(28 * len(legacy))))
        symbols += [Sym(name, "maps", 28 * i, 28, type=1) for i, name in enumerate(legacy)]
    if license_text is not None:
        sections.append(("license", SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, license_text))
    return build_elf(sections, symbols)


def verdicts(data: bytes) -> dict[str, tuple[bool, str]]:
    return {v.loader: (v.accepts, " | ".join(v.reasons)) for v in compatibility(data)}


def ring_value(data: bytes) -> BtfArray | BtfComposite:
    btf = Btf.from_object(data)
    assert btf is not None
    definition = next(t for t in btf if isinstance(t, BtfComposite) and t.name.startswith("RingBuf"))
    pointer = btf.resolve(next(m.type_id for m in definition.members if m.name == "value"))
    assert isinstance(pointer, BtfPtr)
    target = btf.resolve(pointer.type_id)
    assert isinstance(target, (BtfArray, BtfComposite))
    return target


def test_the_build_fix_gives_ring_records_size_zero_and_keeps_their_type() -> None:
    original = ring_object()
    assert isinstance(ring_value(original), BtfComposite)
    libbpf_ok, why = verdicts(original)["libbpf"]
    assert not libbpf_ok
    assert "EVENTS" in why
    assert "conflicting value size" in why

    result = fixed(original)
    assert result is not None
    array = ring_value(result)
    assert isinstance(array, BtfArray)
    assert array.nelems == 0
    btf = Btf.from_object(result)
    assert btf is not None
    assert btf.type(array.type_id).name == "Event"
    assert fixed(result) is None  # idempotent
    assert verdicts(result)["libbpf"] == (True, "")
    assert result[: len(original)][:0x28] == original[:0x28]  # the ELF header up to the section table: unchanged


def test_legacy_maps_are_refused_by_libbpf_and_aya_logs_is_named() -> None:
    found = verdicts(ring_object(legacy=["COUNTS", "AYA_LOGS"]))
    accepted, why = found["libbpf"]
    assert not accepted
    assert "legacy map definitions in the 'maps' section (AYA_LOGS, COUNTS)" in why
    assert "aya-log" in why
    assert found["cilium/ebpf"][0]  # cilium/ebpf reads legacy maps


@pytest.mark.parametrize(
    ("license_text", "helper", "refused"),
    [
        (None, 113, True),  # bpf_probe_read_kernel is GPL-only: libbpf assumes a non-GPL license without one
        (b"Proprietary\0", 113, True),
        (b"Dual MIT/GPL\0", 113, False),
        (None, 14, False),  # bpf_get_current_pid_tgid: any license
    ],
)
def test_license_matters_only_with_gpl_only_helpers(license_text: bytes | None, helper: int, refused: bool) -> None:
    data = fixed(ring_object(license_text=license_text, helper=helper))
    assert data is not None
    found = verdicts(data)
    for loader in ("libbpf", "cilium/ebpf"):
        accepted, why = found[loader]
        assert accepted is not refused, (loader, why)
        if refused:
            assert "bpf_probe_read_kernel" in why
            assert 'link_section = "license"' in why
    assert found["pyaya"][0]


def test_inspect_compat_prints_each_loader_and_why(tmp_path: Path) -> None:
    path = tmp_path / "ring.o"
    path.write_bytes(ring_object(legacy=["AYA_LOGS"]))
    result = CliRunner().invoke(app, ["inspect", "--compat", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Loaders"
    assert re.match(r"\s+pyaya\s+accepts$", lines[1])
    assert re.match(r"\s+libbpf\s+refuses$", lines[2])
    assert "conflicting value size" in result.output
    assert "AYA_LOGS" in result.output
    document = json.loads(CliRunner().invoke(app, ["inspect", "--compat", "--json", str(path)]).output)
    assert [(v["loader"], v["accepts"]) for v in document["loaders"]] == [
        ("pyaya", True),
        ("libbpf", False),
        ("cilium/ebpf", True),
    ]
    missing = CliRunner().invoke(app, ["inspect", "--compat", str(tmp_path / "missing.o")])
    assert missing.exit_code == 1
    assert "missing.o" in missing.output
    assert "Traceback" not in missing.output
