"""Types from an object's DWARF (``_native.btf_from_dwarf``) agree with those clang writes to its BTF."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pyaya import _native
from pyaya.btf import Btf
from pyaya.elf import Elf
from pyaya.errors import ObjectError
from pyaya.types import RecordType, Types

SOURCE = r"""
struct ev {
    unsigned pid;
    int x : 3;
    unsigned y : 5;
    char comm[16];
    long m[2][3];
    union { int a; short b; };
    struct { char c; long long d; } inner;
    enum { NEG = -1, POS = 2 } e;
    unsigned long long big;
    int (*fp)(int, char *);
    struct ev *next;
    int flex[];
};
enum wide { WIDE = 0x100000000ULL };
enum small { S0, S1 } __attribute__((packed));
struct __attribute__((packed)) packed { char a; int b; short c; };
typedef struct ev ev_t;
typedef unsigned int u32_t;
struct fwd;
struct uses { struct fwd *f; volatile const u32_t v; enum small s; float fl; _Bool ok; };

struct ev g_ev; enum wide g_wide; struct packed g_packed; struct uses g_uses;
int f(ev_t *p) { return p->pid; }
"""


def _clang() -> str:
    for name in ("clang-22", "clang-21", "clang-20", "clang-19", "clang"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("clang is not installed: the test compiles its objects")


def _compile(tmp_path: Path, *flags: str) -> bytes:
    (tmp_path / "t.c").write_text(SOURCE)
    out = tmp_path / "t.o"
    subprocess.run([_clang(), "-target", "bpf", "-O2", *flags, "-c", str(tmp_path / "t.c"), "-o", str(out)], check=True)
    return out.read_bytes()


def _layout(node: Any) -> Any:
    if isinstance(node, RecordType):
        return (
            node.size,
            [
                (f.name, f.offset, type(f.node).__name__, getattr(f.node, "bits", None), _layout(f.node))
                for f in node.fields
            ],
        )
    return (type(node).__name__, node.size)


def _agree(data: bytes, *, namespaced: bool = False) -> int:
    blob = _native.btf_from_dwarf(data, namespaced)
    assert blob is not None
    dwarf = Types(Btf.from_bytes(blob))
    btf = Btf.from_object(data)
    assert btf is not None
    ours = Types(btf)
    compared = 0
    for name in ours:
        if name in dwarf:
            assert _layout(dwarf[name]) == _layout(ours[name]), name
            assert ours.btf.find_all(name)[0].kind == dwarf.btf.find_all(name)[0].kind, name
            compared += 1
    return compared


@pytest.mark.parametrize("flags", [("-g",), ("-g", "-gdwarf-4"), ("-g", "-mbig-endian")])
def test_dwarf_layouts_agree_with_btf(tmp_path: Path, flags: tuple[str, ...]) -> None:
    if "-mbig-endian" in flags:
        flags = ("-g",)
        (tmp_path / "t.c").write_text(SOURCE)
        out = tmp_path / "t.o"
        subprocess.run(
            [_clang(), "-target", "bpfeb", "-O2", "-g", "-c", str(tmp_path / "t.c"), "-o", str(out)], check=True
        )
        data = out.read_bytes()
    else:
        data = _compile(tmp_path, *flags)
    assert _agree(data) >= 6


def test_fixture_objects_agree(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2] / "crates" / "pyaya-fixtures" / "target"
    objects = [p for p in root.glob("bpfel-unknown-none/release/*") if p.is_file() and p.read_bytes()[:4] == b"\x7fELF"]
    if not objects:
        pytest.skip("the fixtures are not built (pyaya build crates/pyaya-fixtures)")
    compared = 0
    for path in objects:
        data = path.read_bytes()
        if _native.btf_from_dwarf(data) is not None and Btf.from_object(data) is not None:
            compared += _agree(data, namespaced=True)
    assert compared  # bpf-linker keeps the DWARF: the fixtures' types are in both


def test_no_debug_info_gives_none(tmp_path: Path) -> None:
    assert _native.btf_from_dwarf(_compile(tmp_path)) is None


def test_truncated_or_mutated_debug_info_raises_object_error(tmp_path: Path) -> None:
    data = _compile(tmp_path, "-g")
    section = next(s for s in Elf(data).sections if s.name == ".debug_info")
    start, size = section.offset, section.size
    failures = 0
    for cut in range(0, size, max(1, size // 40)):
        mutated = bytearray(data)
        mutated[start + cut : start + size] = b"\xff" * (size - cut)
        try:
            _native.btf_from_dwarf(bytes(mutated))
        except ObjectError:
            failures += 1
    assert failures
    mutated = bytearray(data)
    mutated[start + 4 : start + 6] = b"\x09\x00"  # DWARF version 9
    with pytest.raises(ObjectError):
        _native.btf_from_dwarf(bytes(mutated))
