"""pyaya's own vmlinux.h (``pyaya.cheader``) against the compiler and bpftool: every named struct and union of this
kernel's BTF has the size and member offsets the BTF says once clang lays out the header (``_Static_assert``s,
``-target bpf``), the header compiles with ``-Wall -Werror``, it names the same types bpftool's does, and the BTF
of clang-built objects dumps to C that compiles too. No privilege needed, only the kernel's BTF and clang."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import _c_objects
import pytest
from pyaya.btf import Btf, BtfComposite, Kind
from pyaya.cheader import vmlinux_header, write_vmlinux_header
from pyaya.errors import NotFoundError, ObjectError

pytestmark = pytest.mark.skipif(not _c_objects.VMLINUX_BTF.is_file(), reason="this kernel has no BTF")


def _clang() -> str:
    clang = _c_objects._clang()
    if clang is None:
        pytest.skip("no clang (apt-get install clang-22; make setup installs it)")
    return clang


def _compile(source: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            _clang(),
            "-target",
            "bpf",
            "-O2",
            "-ferror-limit=0",
            *flags,
            "-I",
            str(source.parent),
            "-c",
            str(source),
            "-o",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def _holds_va_list(btf: Btf, t: BtfComposite) -> bool:
    """Whether a member is a ``va_list``: the compiler's own type, 24 bytes on x86-64 but a pointer for BPF (the
    same in bpftool's header), so no BPF header can give such a struct its kernel size."""
    for member in t.members:
        current = btf.type(member.type_id)
        while current.kind == Kind.TYPEDEF:
            if current.name == "__builtin_va_list":
                return True
            current = btf.type(current.type_id)  # type: ignore[attr-defined]
    return False


def test_every_named_struct_has_the_btf_layout(tmp_path: Path) -> None:
    write_vmlinux_header(tmp_path)
    btf = Btf.vmlinux()
    # Names defined once (a name used twice is written NAME___2 in an order this test does not predict).
    counts = Counter(
        t.name for t in btf.types if t.kind in {Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64} and t.name
    )
    lines = ['#include "vmlinux.h"']
    structs = members = 0
    for t in btf.types:
        if not isinstance(t, BtfComposite) or not t.name or counts[t.name] != 1 or _holds_va_list(btf, t):
            continue
        tag = f"{'struct' if t.kind == Kind.STRUCT else 'union'} {t.name}"
        lines.append(f'_Static_assert(sizeof({tag}) == {t.size}, "sizeof {tag}");')
        structs += 1
        for member in t.members:
            if not member.name or member.bitfield_size:
                continue
            lines.append(
                f"_Static_assert(__builtin_offsetof({tag}, {member.name}) == {member.bit_offset // 8}, "
                f'"{tag}.{member.name}");'
            )
            members += 1
    source = tmp_path / "layout.c"
    source.write_text("\n".join(lines) + "\n")
    result = _compile(source)
    assert result.returncode == 0, result.stderr[-5000:]
    assert structs > 5000
    assert members > 50000


def test_the_header_compiles_with_wall_werror(tmp_path: Path) -> None:
    write_vmlinux_header(tmp_path)
    source = tmp_path / "main.c"
    source.write_text('#include "vmlinux.h"\nint x;\n')
    result = _compile(source, "-Wall", "-Werror")
    assert result.returncode == 0, result.stderr[-5000:]


def _type_names(header: str) -> set[str]:
    defined = {f"{kind} {name}" for kind, name in re.findall(r"^(struct|union|enum) (\w+)(?: \{|;)", header, re.M)}
    typedefs = re.findall(r"^typedef [^\n]*?(?:\(\*(\w+)\)\(|(\w+)(?:\[\d+\])*;$)", header, re.M)
    defined |= {f"typedef {a or b}" for a, b in typedefs}
    defined |= {f"typedef {name}" for name in re.findall(r"^\} (\w+)(?: __attribute__\(\(\w+\)\))?;$", header, re.M)}
    return defined


def test_names_the_types_bpftool_names() -> None:
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        pytest.skip("bpftool is not installed (apt-get install bpftool)")
    theirs = subprocess.run(
        [bpftool, "btf", "dump", "file", str(_c_objects.VMLINUX_BTF), "format", "c"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    ours = vmlinux_header()
    names = _type_names(ours)
    assert len(names) > 10000
    assert names == _type_names(theirs)


OBJECT = """\
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct event {
    u32 pid;
    u8 comm[16];
    u64 flags: 3, kind: 5;
    union { u64 as_u64; void (*callback)(int, ...); } u;
    struct event *next;
    char payload[];
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16);
    __type(key, u32);
    __type(value, struct event);
} events SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_execve")
int on_exec(void *ctx)
{
    u32 key = 0;
    struct event *e = bpf_map_lookup_elem(&events, &key);
    return e ? e->kind : 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


def test_object_btf_dumps_to_c_that_compiles(tmp_path: Path) -> None:
    from pyaya.btf import Btf as PyBtf  # noqa: PLC0415

    objects = [_c_objects.build("cheader_event", OBJECT, vmlinux=True)]
    for index, path in enumerate(objects):
        btf = PyBtf.from_path(path)
        header = tmp_path / f"object{index}" / "vmlinux.h"
        header.parent.mkdir()
        header.write_text(btf.to_c_header())
        assert "struct event {" in header.read_text()
        source = header.parent / "main.c"
        size = btf.find("event", Kind.STRUCT).size
        source.write_text(f'#include "vmlinux.h"\n_Static_assert(sizeof(struct event) == {size}, "event");\n')
        result = _compile(source, "-Wall")
        assert result.returncode == 0, result.stderr[-5000:]


def test_writes_only_when_changed(tmp_path: Path) -> None:
    first = write_vmlinux_header(tmp_path)
    assert first == tmp_path / "vmlinux.h"
    before = first.stat().st_mtime_ns
    assert write_vmlinux_header(tmp_path).stat().st_mtime_ns == before
    first.write_text("stale")
    assert write_vmlinux_header(tmp_path).read_text().startswith("#ifndef __VMLINUX_H__")
    assert [p.name for p in tmp_path.iterdir()] == ["vmlinux.h"]


def test_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such BTF file"):
        write_vmlinux_header(tmp_path, tmp_path / "missing")
    (tmp_path / "bad").write_bytes(b"\x9f\xeb\x01\x00" + b"\0" * 4)
    with pytest.raises(ObjectError, match="BTF"):
        write_vmlinux_header(tmp_path, tmp_path / "bad")
