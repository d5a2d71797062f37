"""Kernel fields without CO-RE (``pyaya_fields::kernel_field!``): the fixture trace_fields declares fields by path,
the loader fills them from this kernel's BTF, and the program reads them on a real exec; the values it saw are
checked against what this process knows (its pid, its parent's, the host name). The same built object runs on
every kernel of the VM matrix (5.10 has ``task_struct.state``, later kernels ``__state``; offsets differ)."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bpfobj import BtfBuilder
from pyaya import Ebpf, KernelFieldError, loaded_maps, loaded_programs
from pyaya.btf import Btf
from pyaya.errors import InvalidArgumentTypeError, NotFoundError, ObjectError, PackageError
from pyaya.inspect import inspect_file
from pyaya.kernel_fields import DECLARATION_SIZE, declarations, resolve, resolve_path
from pyaya.package import global_data

pytestmark = [pytest.mark.smoke, pytest.mark.needs("btf")]


def _kernel_version() -> tuple[int, int]:
    major, minor = platform.release().split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()))


def test_declared_fields_are_filled_and_read_back_right_on_an_exec(fixtures_dir: Path) -> None:
    with Ebpf.load_file(fixtures_dir / "trace_fields") as bpf:
        fields = bpf.kernel_fields
        declared = {"TASK_TGID", "PARENT_TGID", "GRANDPARENT_TGID", "NODENAME", "TASK_STATE", "NO_SUCH_FIELD"}
        assert set(fields) == declared
        kernel = Btf.vmlinux()
        tgid = kernel.member_offset("task_struct", "tgid")
        parent = kernel.member_offset("task_struct", "real_parent")
        assert fields["TASK_TGID"].offsets == (tgid,)
        assert fields["PARENT_TGID"].offsets == (parent, tgid)
        assert fields["GRANDPARENT_TGID"].offsets == (parent, parent, tgid)
        assert fields["NODENAME"].size == 65
        program = bpf.programs["trace_fields"]
        program.load()
        with program.attach("sched", "sched_process_exec"):
            bpf.globals["WATCH_PPID"] = os.getpid()
            child = subprocess.Popen(["/bin/true"])
            child.wait()
            seen = bpf.globals["SEEN"]
    assert seen.hits == 1
    assert seen.tgid == child.pid
    assert seen.ppid == os.getpid()
    assert seen.grandparent == os.getppid()
    assert seen.tgid_offset == tgid
    assert seen.nodename == os.uname().nodename
    # `state` was renamed `__state` (a long became an unsigned int) in 5.14: the alternative this kernel has won.
    state = fields["TASK_STATE"]
    expected = "task_struct.__state" if _kernel_version() >= (5, 14) else "task_struct.state"
    assert (state.exists, state.resolved) == (True, expected)
    assert (seen.state_exists, seen.state_size) == (1, state.size)
    # An optional field no kernel has: the object loads, the program sees exists() false and read() -ENOENT.
    missing = fields["NO_SUCH_FIELD"]
    assert not missing.exists
    assert "has no member pyaya_no_such_field" in missing.missing
    assert (seen.missing_exists, seen.missing_error) == (0, -2)


def test_a_required_field_the_kernel_lacks_fails_the_load_naming_it(fixtures_dir: Path) -> None:
    # Ids, not counts: the kernel frees earlier tests' objects after a grace period, which can fall in between.
    programs, maps = {p[0] for p in loaded_programs()}, {m[0] for m in loaded_maps()}
    with pytest.raises(KernelFieldError) as raised:
        Ebpf.load_file(fixtures_dir / "trace_fields_missing")
    message = str(raised.value)
    assert "PARENT_COOKIE" in message
    assert "task_struct.real_parent->pyaya_no_such_field|pyaya_nor_this" in message
    assert "pyaya_no_such_field or pyaya_nor_this" in message
    assert platform.release() in message
    assert "optional" in message
    # Refused before any map was made.
    assert not {p[0] for p in loaded_programs()} - programs
    assert not {m[0] for m in loaded_maps()} - maps


def test_a_field_set_through_globals_is_left_as_given(fixtures_dir: Path) -> None:
    data = (fixtures_dir / "trace_fields").read_bytes()
    with Ebpf.load_file(fixtures_dir / "trace_fields") as filled:
        declared = filled.kernel_fields
    assert "TASK_STATE" in declared
    raw = dict((field.name, raw) for field, raw in declarations(data))["TASK_STATE"]
    assert len(raw) == DECLARATION_SIZE
    with Ebpf.load(data, globals={"TASK_STATE": raw}) as bpf:
        assert "TASK_STATE" not in bpf.kernel_fields
        assert "TASK_TGID" in bpf.kernel_fields


def test_a_mutated_path_is_refused_with_the_syntax(fixtures_dir: Path) -> None:
    data = (fixtures_dir / "trace_fields").read_bytes()
    mutated = data.replace(b"task_struct.tgid\0", b"task_struct..gid\0", 1)
    assert mutated != data
    with pytest.raises(KernelFieldError, match=r"TASK_TGID.*does not parse.*'->'"):
        Ebpf.load(mutated)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("task_struct.in_execve", "is a bitfield"),
        ("task_struct.tgid->pid", "is pid_t, not a pointer: write '.' before pid"),
        ("task_struct.real_parent.tgid", "is a pointer to struct task_struct: write '->' before tgid"),
        ("task_struct.real_parent->real_parent->real_parent->real_parent->tgid", "follows at most 3"),
        ("task_struct", "does not parse"),
        ("task_struct.tgid|", "does not parse"),
    ],
)
def test_paths_used_the_wrong_way_are_refused(path: str, message: str) -> None:
    with pytest.raises(KernelFieldError, match=message.replace(".", r"\.").replace("|", r"\|")):
        resolve_path(path)


def test_paths_resolve_through_embedded_structs_and_alternatives() -> None:
    kernel = Btf.vmlinux()
    family = resolve_path("sk_buff.sk->__sk_common.skc_family")
    assert family.exists
    assert family.offsets == (
        kernel.member_offset("sk_buff", "sk"),
        kernel.member_offset("sock", "__sk_common") + kernel.member_offset("sock_common", "skc_family"),
    )
    assert family.size == 2
    renamed = resolve_path("no_such_struct_here|task_struct.pyaya_nothing|pid")
    assert (renamed.resolved, renamed.offsets) == ("task_struct.pid", (kernel.member_offset("task_struct", "pid"),))
    absent = resolve_path("no_such_struct_here.x")
    assert not absent.exists
    assert "no struct or union no_such_struct_here" in absent.missing


def test_packages_for_bpfman_carry_the_filled_fields(fixtures_dir: Path) -> None:
    data = (fixtures_dir / "trace_fields").read_bytes()
    values = global_data({}, data)
    with Ebpf.load(data) as bpf:
        assert set(values) == set(bpf.kernel_fields)
    with pytest.raises(PackageError, match="PARENT_COOKIE"):
        global_data({}, (fixtures_dir / "trace_fields_missing").read_bytes())


def test_inspect_lists_the_declarations(fixtures_dir: Path) -> None:
    info = inspect_file(fixtures_dir / "trace_fields")
    listed = {f.name: (f.path, f.required, f.type_size) for f in info.kernel_fields}
    assert listed["NODENAME"] == ("task_struct.nsproxy->uts_ns->name.nodename", True, 65)
    assert listed["TASK_STATE"] == ("task_struct.__state|state", False, 8)
    assert len(listed) == 6
    assert info.to_json()["kernel_fields"][0].keys() == {"name", "path", "required", "type_size"}


def _crafted_kernel_btf(tgid_offset: int) -> bytes:
    """A BTF with only what trace_fields' required paths need, at offsets no kernel uses: ``task_struct.tgid`` at
    ``tgid_offset``, ``real_parent`` at 8, ``nsproxy`` at 16; ``nsproxy.uts_ns`` at 24; ``uts_namespace.name`` at
    32 and ``new_utsname.nodename`` at 65 (after a 65-byte ``sysname``)."""
    b = BtfBuilder()
    integer = b.int_("int", 4, signed=True)
    char = b.int_("char", 1, char=True)
    name_array = b.add("ARRAY", "", 0, [char, integer, 65])
    utsname = b.composite(
        "STRUCT", "new_utsname", 130, [("sysname", name_array, 0, 0), ("nodename", name_array, 520, 0)]
    )
    uts_namespace = b.composite("STRUCT", "uts_namespace", 256, [("name", utsname, 32 * 8, 0)])
    nsproxy = b.composite("STRUCT", "nsproxy", 64, [("uts_ns", b.add("PTR", "", uts_namespace), 24 * 8, 0)])
    nsproxy_ptr = b.add("PTR", "", nsproxy)
    task_ptr = b.add("PTR", "", len(b.records) + 2)  # the task_struct added next: its own parent's type
    members = [
        ("real_parent", task_ptr, 64, 0),
        ("nsproxy", nsproxy_ptr, 128, 0),
        ("tgid", integer, tgid_offset * 8, 0),
    ]
    assert b.composite("STRUCT", "task_struct", 4096, members) == task_ptr + 1
    return b.to_bytes()


def test_fields_come_from_the_btf_given_at_load(fixtures_dir: Path, tmp_path: Path) -> None:
    """``btf=`` stands in for the kernel's BTF: the offsets are the given BTF's, by path or as a ``pyaya.Btf``."""
    crafted = tmp_path / "crafted.btf"
    crafted.write_bytes(_crafted_kernel_btf(tgid_offset=1000))
    for given in (crafted, str(crafted), Btf.from_path(crafted)):
        with Ebpf.load_file(fixtures_dir / "trace_fields", btf=given) as bpf:
            fields = bpf.kernel_fields
            assert fields["TASK_TGID"].offsets == (1000,)
            assert fields["PARENT_TGID"].offsets == (8, 1000)
            assert fields["NODENAME"].offsets == (16, 24, 32 + 65)
            assert not fields["TASK_STATE"].exists  # the crafted task_struct has neither state nor __state
    # A copy of this kernel's BTF gives what the kernel's own does, and the program reads right with it.
    copy = tmp_path / "vmlinux"
    copy.write_bytes(Path("/sys/kernel/btf/vmlinux").read_bytes())
    with Ebpf.load_file(fixtures_dir / "trace_fields", btf=copy) as bpf:
        assert bpf.kernel_fields["TASK_TGID"].offsets == (Btf.vmlinux().member_offset("task_struct", "tgid"),)
        program = bpf.programs["trace_fields"]
        with program.attach("sched", "sched_process_exec"):
            bpf.globals["WATCH_PPID"] = os.getpid()
            child = subprocess.Popen(["/bin/true"])
            child.wait()
            seen = bpf.globals["SEEN"]
        assert (seen.hits, seen.tgid, seen.ppid) == (1, child.pid, os.getpid())


def test_a_given_btf_without_the_field_fails_the_load_naming_that_btf(fixtures_dir: Path, tmp_path: Path) -> None:
    b = BtfBuilder()
    b.int_("int", 4, signed=True)
    lacking = tmp_path / "lacking.btf"
    lacking.write_bytes(b.to_bytes())
    programs, maps = {p[0] for p in loaded_programs()}, {m[0] for m in loaded_maps()}
    with pytest.raises(KernelFieldError) as raised:
        Ebpf.load_file(fixtures_dir / "trace_fields", btf=lacking)
    message = str(raised.value)
    assert f"the BTF in {lacking}" in message
    assert "no struct or union task_struct" in message
    assert "this kernel" not in message
    with pytest.raises(KernelFieldError, match=r"the given BTF \(loading on"):
        Ebpf.load_file(fixtures_dir / "trace_fields", btf=Btf.from_path(lacking))
    assert not {p[0] for p in loaded_programs()} - programs
    assert not {m[0] for m in loaded_maps()} - maps


def test_a_btf_that_is_not_one_is_refused_before_anything_is_made(fixtures_dir: Path, tmp_path: Path) -> None:
    path = fixtures_dir / "trace_fields"
    with pytest.raises(NotFoundError, match="no such file"):
        Ebpf.load_file(path, btf=tmp_path / "absent.btf")
    garbage = tmp_path / "garbage.btf"
    garbage.write_bytes(b"\x9f\xeb\x01\x00" + os.urandom(64))
    with pytest.raises(ObjectError, match=re.escape(f"btf={garbage}")):
        Ebpf.load_file(path, btf=garbage)
    without_btf = tmp_path / "plain.o"
    without_btf.write_bytes(Path("/bin/true").read_bytes())
    with pytest.raises(ObjectError, match=r"no \.BTF section"):
        Ebpf.load_file(path, btf=without_btf)
    with pytest.raises(InvalidArgumentTypeError, match=r"btf must be a pyaya\.Btf or the path"):
        Ebpf.load_file(path, btf=42)  # type: ignore[arg-type]


# A load in its own process (what a start-up is), printing its kernel fields and the bytes it read: the kernel's
# BTF is read by the first load of a boot and by none after it, which reads the boot's cache file instead.
_LOAD_AND_REPORT = """
import json, sys
def read_so_far():
    with open("/proc/self/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("rchar:"))
from pyaya import Ebpf
before = read_so_far()
with Ebpf.load_file(sys.argv[1]) as bpf:
    fields = {name: [f.exists, list(f.offsets), f.size, f.resolved, f.missing] for name, f in bpf.kernel_fields.items()}
print(json.dumps({"read": read_so_far() - before, "fields": fields}))
"""


def _load_in_a_process(obj: Path, cache: Path) -> tuple[int, dict[str, list[object]]]:
    environment = {**os.environ, "PYAYA_CACHE": str(cache)}
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_REPORT, str(obj)], capture_output=True, text=True, env=environment, check=False
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    return report["read"], report["fields"]


def _expected_fields(obj: Path) -> dict[str, list[object]]:
    """The fields as resolved in this process from the parsed kernel BTF, with no cache involved."""
    kernel = Btf.vmlinux()
    found = {}
    for declared, _ in declarations(obj.read_bytes()):
        field = resolve(kernel, declared)
        found[declared.name] = [field.exists, list(field.offsets), field.size, field.resolved, field.missing]
    return found


def _cache_file(cache: Path) -> Path:
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return cache / "kernel-fields" / f"{boot_id}.txt"


def test_later_loads_of_a_boot_read_the_fields_from_its_cache_not_the_kernels_btf(
    fixtures_dir: Path, tmp_path: Path
) -> None:
    obj = fixtures_dir / "trace_fields"
    vmlinux_size = len(Path("/sys/kernel/btf/vmlinux").read_bytes())
    expected = _expected_fields(obj)
    first_read, first = _load_in_a_process(obj, tmp_path)
    assert first == expected
    assert first_read >= vmlinux_size  # nothing cached yet: the kernel's BTF was read
    assert _cache_file(tmp_path).is_file()
    second_read, second = _load_in_a_process(obj, tmp_path)
    assert second == expected
    assert second_read < vmlinux_size // 4


def test_a_cache_file_of_another_boot_kernel_or_writer_is_not_trusted(fixtures_dir: Path, tmp_path: Path) -> None:
    obj = fixtures_dir / "trace_fields"
    expected = _expected_fields(obj)
    cached = _cache_file(tmp_path)
    _load_in_a_process(obj, tmp_path)
    header, *entries = cached.read_text().splitlines()
    assert entries
    # Wrong offsets for every field under a header that is not this boot's (another kernel's BTF size), then under
    # this boot's header but in lines no writer makes: both are resolved again, and the file rewritten right.
    wrong = [line.split("\t") for line in entries]
    for columns in wrong:
        columns[3] = "999999"
    lying = "\n".join("\t".join(columns) for columns in wrong)
    other_kernel = header.replace("vmlinux-size=", "vmlinux-size=1")
    for text in (f"{other_kernel}\n{lying}\n", f"{header}\n{lying}\nnot\ta line\n", f"{header}\n\x00\xff garbage"):
        cached.write_text(text)
        _, fields = _load_in_a_process(obj, tmp_path)
        assert fields == expected
        assert cached.read_text().splitlines()[0] == header
        assert "999999" not in cached.read_text()
    # Another boot's file is removed when this boot's is written.
    stale = cached.with_name("00000000-0000-0000-0000-000000000000.txt")
    stale.write_text(f"{header}\n")
    cached.unlink()
    _load_in_a_process(obj, tmp_path)
    assert cached.is_file()
    assert not stale.exists()
