"""USDT without a kernel: the argument-string parser (every form and every refusal), and the note reader against
real binaries (programs built here with ``<sys/sdt.h>`` and the system's Python), checked against ``readelf``."""

from __future__ import annotations

import ast
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
import usdt_binaries
from pyaya import usdt
from pyaya.cli import app
from pyaya.errors import NotFoundError, ObjectError, UnsupportedError
from typer.testing import CliRunner


def arg(text: str, arch: str = "x86_64") -> tuple[object, ...]:
    parsed = usdt.parse_argument(text, arch)
    assert parsed.text == text
    return (parsed.size, parsed.signed, parsed.kind, parsed.value, parsed.register, parsed.index, parsed.scale,
            parsed.symbol)  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # registers of every width, signed and unsigned
        ("8@%rax", (8, False, "register", 0, "rax", None, 0, None)),
        ("-4@%eax", (4, True, "register", 0, "eax", None, 0, None)),
        ("2@%ax", (2, False, "register", 0, "ax", None, 0, None)),
        ("-1@%al", (1, True, "register", 0, "al", None, 0, None)),
        ("1@%ah", (1, False, "register", 0, "ah", None, 0, None)),
        ("-1@%dil", (1, True, "register", 0, "dil", None, 0, None)),
        ("1@%spl", (1, False, "register", 0, "spl", None, 0, None)),
        ("8@%r15", (8, False, "register", 0, "r15", None, 0, None)),
        ("-4@%r8d", (4, True, "register", 0, "r8d", None, 0, None)),
        ("2@%r9w", (2, False, "register", 0, "r9w", None, 0, None)),
        ("1@%r10b", (1, False, "register", 0, "r10b", None, 0, None)),
        ("8@%rip", (8, False, "register", 0, "rip", None, 0, None)),
        # memory operands
        ("8@-8(%rbp)", (8, False, "memory", -8, "rbp", None, 0, None)),
        ("-4@-0x18(%rbp)", (4, True, "memory", -0x18, "rbp", None, 0, None)),
        ("-4@(%rdi)", (4, True, "memory", 0, "rdi", None, 0, None)),
        ("8@8(%rax,%rdx,8)", (8, False, "memory", 8, "rax", "rdx", 8, None)),
        ("-8@(%rsi,%rdx,8)", (8, True, "memory", 0, "rsi", "rdx", 8, None)),
        ("4@(%rsi,%rcx)", (4, False, "memory", 0, "rsi", "rcx", 1, None)),
        ("8@(,%rdx,4)", (8, False, "memory", 0, None, "rdx", 4, None)),
        ("-8@global_counter(%rip)", (8, True, "memory", 0, None, None, 0, "global_counter")),
        ("4@table+16(%rip)", (4, False, "memory", 16, None, None, 0, "table")),
        ("4@counter.0-4(%rip)", (4, False, "memory", -4, None, None, 0, "counter.0")),
        ("8@counter", (8, False, "memory", 0, None, None, 0, "counter")),
        # constants
        ("4@$5", (4, False, "constant", 5, None, None, 0, None)),
        ("-4@$-6", (4, True, "constant", -6, None, None, 0, None)),
        ("8@$0x10", (8, False, "constant", 16, None, None, 0, None)),
        ("8@$18446744073709551615", (8, False, "constant", -1, None, None, 0, None)),
        # no size (old <sys/sdt.h>): 8 bytes
        ("%rdi", (8, False, "register", 0, "rdi", None, 0, None)),
    ],
)
def test_x86_argument_forms(text: str, expected: tuple[object, ...]) -> None:
    assert arg(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-4@w0", (4, True, "register", 0, "w0", None, 0, None)),
        ("8@x30", (8, False, "register", 0, "x30", None, 0, None)),
        ("8@sp", (8, False, "register", 0, "sp", None, 0, None)),
        ("8@[sp]", (8, False, "memory", 0, "sp", None, 0, None)),
        ("-4@[x29, -12]", (4, True, "memory", -12, "x29", None, 0, None)),
        ("8@[x1, #16]", (8, False, "memory", 16, "x1", None, 0, None)),
        ("4@5", (4, False, "constant", 5, None, None, 0, None)),
        ("-4@#-3", (4, True, "constant", -3, None, None, 0, None)),
    ],
)
def test_arm64_argument_forms(text: str, expected: tuple[object, ...]) -> None:
    assert arg(text, "aarch64") == expected


@pytest.mark.parametrize(
    ("text", "arch", "reason"),
    [
        ("3@%eax", "x86_64", "argument size 3 is not 1, 2, 4 or 8"),
        ("4@%foo", "x86_64", "unknown x86-64 register %foo"),
        ("8@%xmm0", "x86_64", "floating-point and vector registers are not supported"),
        ("8@%fs:0x28", "x86_64", "segment-relative operands (%fs:...) are not supported"),
        ("8@(%eax)", "x86_64", "32-bit addressing is not supported"),
        ("8@16(%rip)", "x86_64", "numeric %rip-relative displacement is not supported"),
        ("8@sym(%rax)", "x86_64", "symbol (sym) with a base or index register other than %rip"),
        ("8@$sym", "x86_64", "symbol address constants are not supported"),
        ("8@foo@GOTPCREL(%rip)", "x86_64", "relocation operators (@GOTPCREL) are not supported"),
        ("8@8(%rax,%rdx,3)", "x86_64", "scale 3 is not 1, 2, 4 or 8"),
        ("8@(%rax,%rsp)", "x86_64", "%rsp cannot be an index register"),
        ("8@0x1000", "x86_64", "absolute numeric addresses are not supported"),
        ("8@-8(%rbp", "x86_64", "unbalanced parentheses"),
        ("4@", "x86_64", "nothing after the size"),
        ("8@[x0, x1]", "aarch64", "register offsets are not supported"),
        ("8@[w0]", "aarch64", "not a 64-bit arm64 base register"),
        ("8@x31", "aarch64", "unknown arm64 register"),
        ("4@%eax", "riscv64", "USDT arguments of riscv64 binaries are not supported"),
    ],
)
def test_refused_forms_say_why(text: str, arch: str, reason: str) -> None:
    with pytest.raises(UnsupportedError) as raised:
        usdt.parse_argument(text, arch)
    assert reason in str(raised.value)
    if arch != "riscv64":
        assert repr(text) in str(raised.value) or f'"{text}"' in str(raised.value)


def test_describe_reads_like_a_declaration() -> None:
    assert usdt.parse_argument("-4@%eax", "x86_64").describe() == "s32 %eax"
    assert usdt.parse_argument("8@-8(%rbp)", "x86_64").describe() == "u64 *(%rbp - 8)"
    assert usdt.parse_argument("-8@8(%rax,%rdx,8)", "x86_64").describe() == "s64 *(%rax + %rdx*8 + 8)"
    assert usdt.parse_argument("-8@counter(%rip)", "x86_64").describe() == "s64 *(counter)"
    assert usdt.parse_argument("4@$5", "x86_64").describe() == "u32 5"


# -- the note reader against real binaries -------------------------------------------------------------------------


def readelf_notes(path: Path) -> list[tuple[str, str, int, int, int, str]]:
    """``readelf -n``'s reading of the file's stapsdt notes: (provider, name, location, base, semaphore, args)."""
    if shutil.which("readelf") is None:
        pytest.skip("readelf (binutils) is not installed")
    output = subprocess.run(["readelf", "-n", str(path)], capture_output=True, text=True, check=True).stdout
    pattern = re.compile(
        r"Provider: (\S+)\n\s+Name: (\S+)\n\s+Location: (0x[0-9a-f]+), Base: (0x[0-9a-f]+), "
        r"Semaphore: (0x[0-9a-f]+)\n\s+Arguments: ?([^\n]*)"
    )
    return [(p, n, int(loc, 16), int(base, 16), int(sem, 16), args.strip()) for p, n, loc, base, sem, args in
            pattern.findall(output)]  # fmt: skip


def readelf_offset(path: Path, address: int, *, executable: bool) -> int:
    """The file offset of ``address`` by ``readelf -lW``'s LOAD program headers."""
    output = subprocess.run(["readelf", "-lW", str(path)], capture_output=True, text=True, check=True).stdout
    for line in output.splitlines():
        fields = line.split()
        if not fields or fields[0] != "LOAD":
            continue
        offset, vaddr, file_size = int(fields[1], 16), int(fields[2], 16), int(fields[4], 16)
        flags = "".join(fields[6:-1])
        if vaddr <= address < vaddr + file_size and (not executable or "E" in flags):
            return address - vaddr + offset
    raise AssertionError(f"no LOAD segment holds {address:#x}")


def check_against_readelf(path: Path) -> list[usdt.Probe]:
    probes = usdt.probes(path)
    expected = readelf_notes(path)
    assert [(p.provider, p.name, p.location, p.base, p.semaphore, p.arguments) for p in probes] == expected
    for probe in probes:
        assert probe.error is None
        assert probe.file_offset == readelf_offset(path, probe.location, executable=True)
        if probe.semaphore:
            assert probe.semaphore_offset == readelf_offset(path, probe.semaphore, executable=False)
        else:
            assert probe.semaphore_offset is None
    return probes


@pytest.mark.parametrize("flags", [(), ("-no-pie",)], ids=["pie", "no-pie"])
def test_notes_of_a_built_program_and_its_library(tmp_path: Path, flags: tuple[str, ...]) -> None:
    binary = usdt_binaries.build(tmp_path, *flags)
    probes = check_against_readelf(binary)
    labels = [probe.label for probe in probes]
    assert labels.count("pyaya:twice") == 2
    assert {"pyaya:widths", "pyaya:memory", "pyaya:constants", "pyaya:registers", "pyaya:unsupported"} <= set(labels)
    widths = next(p for p in probes if p.name == "widths")
    assert [a.size for a in widths.parsed_arguments()] == [1, 1, 2, 2, 4, 4, 8, 8]
    assert [a.signed for a in widths.parsed_arguments()] == [True, False] * 4
    (guarded,) = check_against_readelf(tmp_path / "libpyaya_guarded.so")
    assert guarded.label == "pyaya:guarded"
    assert guarded.semaphore != 0


def test_unsupported_argument_names_probe_and_argument(tmp_path: Path) -> None:
    binary = usdt_binaries.build(tmp_path)
    (probe,) = [p for p in usdt.probes(binary) if p.name == "unsupported"]
    with pytest.raises(UnsupportedError, match=r"pyaya:unsupported in .*probes, argument 1: .*8@%fs:0x28.*segment"):
        probe.parsed_arguments()


def test_prelinked_base_moves_location_and_semaphore(tmp_path: Path) -> None:
    """A note whose recorded base differs from where .stapsdt.base is (a prelinked file) is adjusted by the
    difference: the note is rewritten here with a base 0x10 higher (as if the sections had moved 0x10 down), so the
    probe and its semaphore are 0x10 earlier in the file."""
    usdt_binaries.build(tmp_path)
    library = tmp_path / "libpyaya_guarded.so"
    (before,) = usdt.probes(library)
    data = bytearray(library.read_bytes())
    packed = struct.pack("<QQQ", before.location, before.base, before.semaphore)
    at = data.find(packed)
    assert at > 0
    assert data.find(packed, at + 1) < 0
    data[at + 8 : at + 16] = struct.pack("<Q", before.base + 0x10)
    moved = tmp_path / "moved.so"
    moved.write_bytes(bytes(data))
    (after,) = usdt.probes(moved)
    assert after.base == before.base + 0x10
    assert after.location == before.location  # what the note says, as readelf shows it
    assert before.file_offset is not None
    assert before.semaphore_offset is not None
    assert after.file_offset == before.file_offset - 0x10
    assert after.semaphore_offset == before.semaphore_offset - 0x10


SYSTEM_PYTHON = Path("/usr/bin/python3")


def test_notes_of_the_system_python() -> None:
    """Debian builds CPython with its USDT probes (python:function__entry, line, gc__start...)."""
    if not SYSTEM_PYTHON.exists() or not usdt.probes(SYSTEM_PYTHON):
        pytest.skip(f"{SYSTEM_PYTHON} has no USDT probes (a Python built without --with-dtrace)")
    probes = check_against_readelf(SYSTEM_PYTHON.resolve())
    by_name = {probe.name: probe for probe in probes}
    entry = by_name["function__entry"]
    assert entry.provider == "python"
    assert entry.semaphore != 0  # Python checks PyDTrace_FUNCTION_ENTRY_ENABLED() first
    assert [a.size for a in entry.parsed_arguments()] == [8, 8, 4]
    for probe in probes:
        probe.parsed_arguments()  # every argument of CPython's probes is in a form pyaya reads


def test_files_without_probes_and_not_elf(tmp_path: Path) -> None:
    assert usdt.probes("/bin/true" if Path("/bin/true").exists() else "/usr/bin/true") == []
    text = tmp_path / "notes.txt"
    text.write_text("not an ELF file")
    with pytest.raises(ObjectError, match="not an ELF file"):
        usdt.probes(text)
    with pytest.raises(NotFoundError):
        usdt.probes(tmp_path / "missing")


def test_resolve_target_paths_libraries_and_programs(tmp_path: Path) -> None:
    assert usdt.resolve_target("/bin/sh") == Path("/bin/sh")
    libc = usdt.resolve_target("libc")
    assert libc.name.startswith("libc.so")
    if shutil.which("python3"):
        assert usdt.resolve_target("python3") == Path(shutil.which("python3") or "").resolve()
    with pytest.raises(NotFoundError, match="neither a path"):
        usdt.resolve_target("pyaya-no-such-thing")
    with pytest.raises(NotFoundError, match="no such file"):
        usdt.resolve_target(tmp_path / "missing")


# -- pyaya inspect --usdt --------------------------------------------------------------------------------------------


def test_inspect_usdt_lists_probes_like_readelf(tmp_path: Path) -> None:
    binary = usdt_binaries.build(tmp_path)
    result = CliRunner().invoke(app, ["inspect", "--usdt", str(binary)])
    assert result.exit_code == 0, result.output
    assert "USDT probes (7)" in result.output
    assert re.search(r"pyaya\s+memory\s+0x[0-9a-f]+\s+-\s+-4@-4\(%rsp\) -4@\(%rdi\)", result.output)
    assert "pyaya:unsupported argument 1 (8@%fs:0x28): segment-relative operands" in result.output
    as_json = json.loads(CliRunner().invoke(app, ["inspect", "--usdt", str(binary), "--json"]).output)
    memory = next(p for p in as_json["probes"] if p["name"] == "memory")
    assert memory["arguments"][3] == {
        "text": "-8@(%rsi,%rdx,8)",
        "size": 8,
        "signed": True,
        "kind": "memory",
        "value": 0,
        "register": "rsi",
        "index": "rdx",
        "scale": 8,
        "symbol": None,
        "describe": "s64 *(%rsi + %rdx*8)",
    }
    unsupported = next(p for p in as_json["probes"] if p["name"] == "unsupported")
    assert "segment-relative" in unsupported["arguments"][1]["error"]
    library = json.loads(CliRunner().invoke(app, ["inspect", "--usdt", str(tmp_path / "libpyaya_guarded.so"),
                                                 "--json"]).output)  # fmt: skip
    (guarded,) = library["probes"]
    assert guarded["semaphore"] != 0
    assert guarded["semaphore_offset"] is not None


def test_inspect_usdt_errors_are_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["inspect", "--usdt", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    none = CliRunner().invoke(app, ["inspect", "--usdt", "/bin/sh"])
    assert none.exit_code == 0
    assert "USDT probes: none" in none.output


# -- pyaya new -t usdt -----------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


def new(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["new", "traced", "-t", "usdt", "--path", str(tmp_path / "traced"), *args])
    return result.exit_code, result.output


def test_new_usdt_checks_the_probe_and_ships_the_crate(tmp_path: Path) -> None:
    binary = usdt_binaries.build(tmp_path)
    code, output = new(tmp_path, "--target", str(binary), "--probe", "pyaya:widths")
    assert code == 0, output
    project = tmp_path / "traced"
    main = (project / "main.py").read_text()
    assert f'TARGET = "{binary}"' in main
    assert 'PROVIDER, _, PROBE = "pyaya:widths".partition(":")' in main
    shipped = REPO / "crates" / "pyaya-usdt"
    for path in shipped.rglob("*"):
        if path.is_file():
            assert (project / "pyaya-usdt" / path.relative_to(shipped)).read_bytes() == path.read_bytes()
    assert 'pyaya-usdt = { path = "../pyaya-usdt" }' in (project / "traced-ebpf" / "Cargo.toml").read_text()


def test_new_usdt_refuses_what_the_binary_lacks(tmp_path: Path) -> None:
    binary = usdt_binaries.build(tmp_path)
    code, output = new(tmp_path, "--target", str(binary), "--probe", "pyaya:width")
    assert code == 1
    assert "has no USDT probe 'pyaya:width' (did you mean pyaya:widths" in output
    code, output = new(tmp_path, "--target", "/bin/sh", "--probe", "pyaya:widths")
    assert code == 1
    assert "/bin/sh has no USDT probes" in output
    assert not (tmp_path / "traced").exists()


@pytest.mark.parametrize(
    ("flag", "value", "constant"),
    [
        ("--target", '/tmp/a"; import os #', "TARGET"),
        ("--target", "/tmp/a\\b", "TARGET"),
        ("--probe", 'a:b"); import os #', "PROBE_SPEC"),
    ],
)
def test_new_usdt_escapes_hostile_values_even_unchecked(tmp_path: Path, flag: str, value: str, constant: str) -> None:
    code, output = new(tmp_path, "--no-check", flag, value)
    assert code == 0, output
    tree = ast.parse((tmp_path / "traced" / "main.py").read_text())
    strings = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    assert value in strings, constant
    assert not any(isinstance(node, ast.Import) and node.names[0].name == "os" for node in ast.walk(tree))


def test_new_usdt_checks_the_probe_syntax(tmp_path: Path) -> None:
    binary = usdt_binaries.build(tmp_path)
    code, output = new(tmp_path, "--target", str(binary), "--probe", "python")
    assert code == 1
    assert "is not PROVIDER:NAME" in output
    assert not (tmp_path / "traced").exists()


def test_new_usdt_unchecked_renders_plain_values(tmp_path: Path) -> None:
    code, output = new(tmp_path, "--no-check", "--target", "/opt/app/bin/server", "--probe", "app:request__start")
    assert code == 0, output
    assert 'TARGET = "/opt/app/bin/server"' in (tmp_path / "traced" / "main.py").read_text()
