"""Program and map type names have one source: the native module's tables (``_native.PROGRAM_TYPES``, aya's
program types by pyaya class name; ``_native.MAP_TYPES``, the kernel's map types by number). Every Python table
that names types (the probes doctor reports, the classes, bpfman's vocabulary) must use names from them, so that
a misspelt or renamed type fails here rather than as a probe's "no program type" at a user's."""

from __future__ import annotations

from pyaya import _native, features, maps, package, programs

#: The names `pyaya inspect` gives from aya's parsed sections that are not program classes: the return probes are
#: kprobe/uprobe programs attached at return.
_SECTION_ONLY = {"KRetProbe", "URetProbe"}


def test_native_tables_are_well_formed() -> None:
    assert len(set(_native.PROGRAM_TYPES)) == len(_native.PROGRAM_TYPES)
    assert {"TracePoint", "Xdp", "FEntry", "LsmCgroup"} <= set(_native.PROGRAM_TYPES)
    # Index = the kernel's enum bpf_map_type number.
    assert _native.MAP_TYPES[0] == "Unspecified"
    assert _native.MAP_TYPES[1] == "HashMap"
    assert _native.MAP_TYPES.index("RingBuf") == 27


def test_doctor_probes_name_native_types() -> None:
    assert set(features.PROGRAM_TYPES) <= set(_native.PROGRAM_TYPES)
    assert set(features.MAP_TYPES) <= set(_native.MAP_TYPES)


def test_classes_name_native_types() -> None:
    program_kinds = {cls.kind for cls in programs._base._CLASSES.values()}
    map_kinds = set(maps._core._CLASSES)
    assert program_kinds <= set(_native.PROGRAM_TYPES)
    assert map_kinds <= set(_native.MAP_TYPES)


def test_bpfman_tables_name_native_types() -> None:
    assert set(package.BPFMAN_PROGRAM_TYPES) <= set(_native.PROGRAM_TYPES) | _SECTION_ONLY
    assert set(package.BPFMAN_MAP_TYPES) <= set(_native.MAP_TYPES)
