"""bpfman bytecode images: labels, refusals, the layout umoci writes (read back as bpfman reads it), reproducibility.

The images are written for real with Debian's umoci (skipped, saying how to install it, when it is missing); the
objects are small BPF ELF files built byte by byte (tests/unit/bpfobj.py).
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from bpfobj import Sym, build_elf
from pyaya.errors import PackageError, ProjectError
from pyaya.inspect import MapInfo, ObjectInfo, ProgramInfo
from pyaya.package import (
    LABEL_BYTE_ORDER,
    LABEL_MAPS,
    LABEL_PROGRAMS,
    global_data,
    image_labels,
    parse_tag,
    push,
    read_image,
    write_image,
)
from pyaya.project import AttachPoint, GlobalValue, load_project

needs_umoci = pytest.mark.skipif(
    shutil.which("umoci") is None, reason="umoci is not installed (apt-get install umoci; scripts/setup-fleet.sh)"
)


def _object(endian: str = "<") -> bytes:
    code = bytes(16)
    return build_elf(
        [("tracepoint/syscalls/sys_enter_execve", 1, 6, code)],
        [Sym("count", "tracepoint/syscalls/sys_enter_execve", 0, 16)],
        endian,
    )


def _info(*programs: tuple[str, str], maps: tuple[tuple[str, str], ...] = ()) -> ObjectInfo:
    return ObjectInfo(
        programs=[ProgramInfo(name, f"{kind.lower()}/x", kind) for name, kind in programs],
        maps=[MapInfo(name, kind, 4, 8, 16) for name, kind in maps],
    )


def test_labels_use_bpfmans_spelling_and_leave_internal_maps_out() -> None:
    info = _info(
        ("execs", "TracePoint"),
        ("entry", "KProbe"),
        ("ret", "URetProbe"),
        ("pass", "Xdp"),
        maps=(
            ("EXEC_COUNTS", "HashMap"),
            ("EVENTS", "RingBuf"),
            ("PACKETS", "PerCpuArray"),
            ("FLOWS", "LruHashMap"),
            ("PER_CPU", "PerCpuHashMap"),
            (".rodata", "Array"),
            (".bss", "Array"),
            (".data.rel", "Array"),
            ("AYA_LOGS", "RingBuf"),
        ),
    )
    programs, maps = image_labels(info, {})
    assert programs == {"execs": "tracepoint", "entry": "kprobe", "ret": "uretprobe", "pass": "xdp"}
    assert maps == {
        "EXEC_COUNTS": "hash",
        "EVENTS": "ringbuf",
        "PACKETS": "per_cpu_array",
        "FLOWS": "lru_hash",
        "PER_CPU": "per_cpu_hash",
    }


def test_classifiers_are_tcx_unless_attach_says_tc() -> None:
    info = _info(("flows", "SchedClassifier"))
    assert image_labels(info, {})[0] == {"flows": "tcx"}
    assert image_labels(info, {"flows": AttachPoint("flows", kind="tc")})[0] == {"flows": "tc"}
    with pytest.raises(PackageError, match=r"kind = 'xdp' does not fit program 'flows'"):
        image_labels(info, {"flows": AttachPoint("flows", kind="xdp")})


@pytest.mark.parametrize("kind", ["Lsm", "SocketFilter", "CgroupSkb", "RawTracePoint", "BtfTracePoint", "PerfEvent"])
def test_program_types_bpfman_cannot_load_are_refused(kind: str) -> None:
    with pytest.raises(PackageError, match=rf"a {kind} program, which bpfman 0.6 cannot load \(it loads fentry, "):
        image_labels(_info(("prog", kind)), {})


def test_attach_tables_must_name_programs() -> None:
    with pytest.raises(PackageError, match=r"\[attach.other\] names no program of the object \(its programs: execs\)"):
        image_labels(_info(("execs", "TracePoint")), {"other": AttachPoint("other")})


@pytest.mark.parametrize("tag", ["execwatch", "Exec:1", "exec:", ":1", "exec:1:2", "exec:-1"])
def test_bad_tags_are_refused(tag: str) -> None:
    with pytest.raises(PackageError, match="is not NAME:VERSION"):
        parse_tag(tag)


def test_tags_split() -> None:
    assert parse_tag("execwatch:0.1.0") == ("execwatch", "0.1.0")
    assert parse_tag("team/exec-watch:v2_rc1") == ("team/exec-watch", "v2_rc1")


def test_global_data_needs_btf() -> None:
    with pytest.raises(PackageError, match="has no BTF"):
        global_data({"X": GlobalValue("X", value=1)}, _object())


@needs_umoci
def test_image_layout_is_what_bpfman_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    data = _object()
    image = write_image(
        data,
        tmp_path / "oci",
        filename="execs.o",
        reference="0.1.0",
        programs={"count": "tracepoint"},
        maps={"EXEC_COUNTS": "hash"},
    )
    assert image.digest.startswith("sha256:")
    layout = tmp_path / "oci"
    assert json.loads((layout / "oci-layout").read_text())["imageLayoutVersion"] == "1.0.0"
    index = json.loads((layout / "index.json").read_text())
    (entry,) = index["manifests"]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "0.1.0"
    manifest = json.loads((layout / "blobs" / "sha256" / entry["digest"].split(":")[1]).read_text())
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    blob = (layout / "blobs" / "sha256" / layer["digest"].split(":")[1]).read_bytes()
    # As bpfman reads it: gunzip, untar, the first entry's bytes are the object.
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as archive:
        members = archive.getmembers()
        assert [m.name for m in members] == ["execs.o"]
        assert members[0].mtime == 1700000000
        extracted = archive.extractfile(members[0])
        assert extracted is not None
        assert extracted.read() == data
    config = json.loads((layout / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]).read_text())
    labels = config["config"]["Labels"]
    assert json.loads(labels[LABEL_PROGRAMS]) == {"count": "tracepoint"}
    assert json.loads(labels[LABEL_MAPS]) == {"EXEC_COUNTS": "hash"}
    assert labels[LABEL_BYTE_ORDER] == "little"
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert config["os"] == "linux"
    read = read_image(layout)
    assert read.object_data == data
    assert read.programs == {"count": "tracepoint"}


@needs_umoci
def test_source_date_epoch_makes_images_byte_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234567890")
    trees = []
    for name in ("a", "b"):
        write_image(_object(), tmp_path / name, filename="x.o", reference="1", programs={"count": "xdp"}, maps={})
        trees.append(
            {p.relative_to(tmp_path / name): p.read_bytes() for p in (tmp_path / name).rglob("*") if p.is_file()}
        )
    assert trees[0] == trees[1]
    assert len(trees[0]) == 5  # oci-layout, index.json, manifest, config, layer: nothing left over


@needs_umoci
def test_rewriting_replaces_the_layout_and_never_clobbers_other_folders(tmp_path: Path) -> None:
    layout = tmp_path / "oci"
    first = write_image(_object(), layout, filename="x.o", reference="1", programs={"count": "xdp"}, maps={})
    second = write_image(_object(), layout, filename="x.o", reference="1", programs={"count": "tc"}, maps={})
    assert first.digest != second.digest
    assert read_image(layout).programs == {"count": "tc"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("keep me")
    with pytest.raises(PackageError, match="is not an OCI image layout"):
        write_image(_object(), other, filename="x.o", reference="1", programs={"count": "xdp"}, maps={})
    assert (other / "todo.txt").read_text() == "keep me"


@needs_umoci
def test_an_object_of_the_other_byte_order_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match=r"the object is big-endian \(bpfeb\) but images made here are for"):
        write_image(_object(">"), tmp_path / "oci", filename="x.o", reference="1", programs={}, maps={})
    assert not (tmp_path / "oci").exists()


def test_push_checks_the_destination_before_running_skopeo(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="is not REGISTRY/REPOSITORY:TAG"):
        push(tmp_path, "1", "execwatch:1")
    with pytest.raises(PackageError, match="is not REGISTRY/REPOSITORY:TAG"):
        push(tmp_path, "1", "127.0.0.1:5000/execwatch")


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pyaya.toml"
    path.write_text('[project]\nname = "demo"\n' + text)
    return path


def test_fleet_tables_are_read(tmp_path: Path) -> None:
    project = load_project(
        _config(
            tmp_path,
            """
[attach.flows]
kind = "tcx"
interfaces = ["eth0"]
direction = "egress"
priority = 10
[globals]
TGID = { member_offset = "task_struct.tgid" }
LIMIT = 5
[metrics]
program_stats = true
[metrics.COUNTS]
type = "counter"
labels = ["uid"]
""",
        )
    )
    fleet = project.fleet
    assert fleet.attach["flows"] == AttachPoint(
        "flows", kind="tcx", interfaces=("eth0",), direction="egress", priority=10
    )
    assert fleet.globals["TGID"].member_offset == ("task_struct", "tgid")
    assert fleet.globals["LIMIT"].value == 5
    assert fleet.metrics["COUNTS"].labels == ("uid",)
    assert fleet.program_stats


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[attach.p]\ninterface = 'eth0'\n", r"unknown key `interface` in \[attach.p\]"),
        ("[attach.p]\npriority = 2000\n", r"priority must be between 0 and 1000"),
        ("[attach.p]\ndirection = 'up'\n", r"direction must be ingress or egress"),
        ("[attach.p]\nkind = 'lsm'\n", r"kind = 'lsm' is not one of"),
        ("[attach.p]\ntracepoint = 'sys_enter_execve'\n", r'tracepoint must be "category/name"'),
        ("[attach.p]\npriority = true\n", r"priority must be a int"),
        ("[globals]\nX = 'five'\n", r"X must be an integer or"),
        ("[metrics.M]\ntype = 'summary'\n", r"type must be one of counter, gauge"),
        ("[metrics.M]\ntype = 'gauge'\nname = 'a-b'\n", r"name must be letters"),
        ("[metrics]\nM = 1\n", r"M must be a table"),
    ],
)
def test_bad_fleet_tables_say_what_to_fix(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ProjectError, match=message):
        load_project(_config(tmp_path, text))
