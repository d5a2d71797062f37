"""``pyaya build`` of C projects (``*.bpf.c``, :mod:`pyaya.cbuild`) with the real clang and libbpf headers: the
objects, incremental rebuilds, and the errors a user meets. Loading and running a C project is the c-tracepoint
template's test (tests/kernel/test_templates.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyaya import cbuild
from pyaya.errors import ProjectError, ToolchainError
from pyaya.inspect import inspect_file
from pyaya.project import load_project

COUNTER = """\
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "limits.h"

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, SLOTS);
    __type(key, __u32);
    __type(value, __u64);
} counts SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int count_getppid(void *ctx)
{
    __u32 slot = 0;
    __u64 *count = bpf_map_lookup_elem(&counts, &slot);
    if (count)
        __sync_fetch_and_add(count, 1);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

CORE = """\
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

SEC("tracepoint/syscalls/sys_enter_getppid")
int parent(void *ctx)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    return BPF_CORE_READ(task, real_parent, tgid) > 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(autouse=True)
def _compiler() -> None:
    try:
        cbuild.find_compiler()
    except ToolchainError as error:
        pytest.skip(str(error))


def _project(tmp_path: Path, sources: dict[str, str], build: str = "") -> Path:
    root = tmp_path / "cproj"
    (root / "src").mkdir(parents=True)
    (root / "pyaya.toml").write_text(f'[project]\nname = "cproj"\n{build}')
    for name, text in sources.items():
        (root / name).write_text(text)
    return root


def _pyaya(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyaya", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_a_c_project_builds_with_clang_into_target_bpf(tmp_path: Path) -> None:
    root = _project(tmp_path, {"src/counter.bpf.c": COUNTER, "src/limits.h": "#define SLOTS 4\n"})
    result = _pyaya("build", cwd=root)
    assert result.returncode == 0, result.stderr
    target = root / "target" / "bpf" / "counter.bpf.o"
    assert result.stdout.split() == [str(target)]
    info = inspect_file(target)
    assert [(p.name, p.section) for p in info.programs] == [("count_getppid", "tracepoint/syscalls/sys_enter_getppid")]
    (counts,) = [m for m in info.maps if m.name == "counts"]
    assert (counts.key_size, counts.value_size, counts.max_entries) == (4, 8, 4)
    # The object has DWARF (-g), as libbpf users build theirs.
    assert b".debug_info" in target.read_bytes()


def test_a_no_op_build_compiles_nothing_and_a_changed_header_or_flag_rebuilds(tmp_path: Path) -> None:
    root = _project(tmp_path, {"src/counter.bpf.c": COUNTER, "src/limits.h": "#define SLOTS 4\n"})
    project = load_project(root / "pyaya.toml")
    (target,) = cbuild.build_c(project)
    built = target.stat().st_mtime_ns
    compiled: list[str] = []
    assert cbuild.build_c(project, status=compiled.append) == [target]
    assert compiled == []
    assert target.stat().st_mtime_ns == built
    time.sleep(0.01)
    (root / "src" / "limits.h").write_text("#define SLOTS 8\n")  # an included header, not a listed source
    cbuild.build_c(project, status=compiled.append)
    assert compiled == ["   Compiling src/counter.bpf.c (" + cbuild.find_compiler().clang.name + ")"]
    assert next(m for m in inspect_file(target).maps if m.name == "counts").max_entries == 8
    (root / "pyaya.toml").write_text('[project]\nname = "cproj"\n[build]\nc_flags = ["-DEXTRA=1"]\n')
    cbuild.build_c(load_project(root / "pyaya.toml"), status=compiled.append)
    assert len(compiled) == 2


def test_a_compile_error_names_file_line_and_column_and_leaves_no_object(tmp_path: Path) -> None:
    broken = COUNTER.replace("return 0;", "return 0")
    root = _project(tmp_path, {"src/counter.bpf.c": broken, "src/limits.h": "#define SLOTS 4\n"})
    result = _pyaya("build", cwd=root)
    assert result.returncode == 1
    assert "clang could not build src/counter.bpf.c" in result.stderr
    assert "\nsrc/counter.bpf.c:19:13: error: expected ';'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not [p for p in (root / "target" / "bpf").iterdir() if p.name.endswith((".o", ".tmp"))]


def test_missing_clang_or_headers_say_what_to_install(tmp_path: Path) -> None:
    root = _project(tmp_path, {"src/counter.bpf.c": COUNTER, "src/limits.h": "#define SLOTS 4\n"})
    result = _pyaya("build", cwd=root, env={"CLANG": "/nonexistent/clang"})
    assert result.returncode == 1
    assert "CLANG=/nonexistent/clang is not an executable" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _pyaya("build", cwd=root, env={"LIBBPF_INCLUDE": str(empty)})
    assert result.returncode == 1
    assert "apt-get install libbpf-dev" in result.stderr
    assert "Traceback" not in result.stderr


def test_c_sources_must_exist_inside_the_project_and_build_distinct_objects(tmp_path: Path) -> None:
    root = _project(tmp_path, {"src/counter.bpf.c": COUNTER})
    config = root / "pyaya.toml"
    config.write_text('[project]\nname = "cproj"\n[build]\nc_sources = ["../outside.bpf.c"]\n')
    with pytest.raises(ProjectError, match="points outside the project"):
        load_project(config)
    config.write_text('[project]\nname = "cproj"\n[build]\nc_sources = ["src/missing.bpf.c"]\n')
    with pytest.raises(ProjectError, match="does not exist"):
        load_project(config)
    (root / "other").mkdir()
    (root / "other" / "counter.bpf.c").write_text(COUNTER)
    config.write_text('[project]\nname = "cproj"\n')
    with pytest.raises(ProjectError, match=r"several C sources would build counter\.bpf\.o"):
        load_project(config)


def test_vmlinux_h_is_generated_by_pyaya_for_core_sources_and_kept_when_unchanged(tmp_path: Path) -> None:
    if not Path("/sys/kernel/btf/vmlinux").is_file():
        pytest.skip("this kernel has no BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF)")
    root = _project(tmp_path, {"src/parent.bpf.c": CORE})
    project = load_project(root / "pyaya.toml")
    (target,) = cbuild.build_c(project)
    header = root / "target" / "bpf" / "include" / "vmlinux.h"
    assert "struct task_struct {" in header.read_text()
    written = header.stat().st_mtime_ns
    assert cbuild.build_c(project) == [target]
    assert header.stat().st_mtime_ns == written
    # A CO-RE relocation of task_struct.real_parent->tgid, as libbpf users' objects carry.
    assert b".BTF.ext" in target.read_bytes()
