"""bpfman bytecode images: a project's BPF object as an OCI image that bpfman (and its Kubernetes operator) load.

The image follows bpfman's "backwards compatible OCI compliant" bytecode image spec: one
``application/vnd.oci.image.layer.v1.tar+gzip`` layer holding the object as ``<name>.o`` at the layer root (bpfman
reads the layer's first entry), and two labels on the image config, JSON objects bpfman parses:
``io.ebpf.programs`` (``{"<function>": "<type>"}``) and ``io.ebpf.maps`` (``{"<map>": "<type>"}``, in the
spelling of bpfman's ``MapType``: ``hash``, ``array``, ``ringbuf``, ``per_cpu_array``...). Maps that hold globals
(``.rodata``, ``.data``, ``.bss``) and aya-log's ``AYA_LOGS`` are left out of ``io.ebpf.maps``, as bpfman's own
image builder leaves out the first three: they belong to one load, not to the application's interface.

The image is written by Debian's ``umoci`` (layout, gzip, digests, config, manifest, index) into an OCI image layout
folder; pyaya makes only the layer's tar stream, so that it holds exactly one entry. ``skopeo`` pushes the layout to
a registry. With ``SOURCE_DATE_EPOCH`` set, the layer's file time and the config's ``created`` come from it and two
runs write byte-identical layouts. The object's byte order must match the image's platform (the host's): it is
recorded in the ``io.pyaya.byte_order`` label, and bpfman checks it again against its node when it pulls.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import platform
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

from pyaya.btf import Btf, BtfDatasec, Kind
from pyaya.elf import Elf
from pyaya.errors import PackageError, PyayaError
from pyaya.inspect import ObjectInfo, inspect_bytes
from pyaya.project import AttachPoint, GlobalValue, Project

__all__ = [
    "BPFMAN_MAP_TYPES",
    "BPFMAN_PROGRAM_TYPES",
    "LABEL_BYTE_ORDER",
    "LABEL_MAPS",
    "LABEL_PROGRAMS",
    "Image",
    "PackageResult",
    "PackagedImage",
    "bpfman_load_command",
    "bpfman_program_type",
    "global_data",
    "image_labels",
    "package",
    "parse_tag",
    "push",
    "read_image",
    "write_image",
]

LABEL_PROGRAMS = "io.ebpf.programs"
LABEL_MAPS = "io.ebpf.maps"
LABEL_BYTE_ORDER = "io.pyaya.byte_order"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"

#: aya's program types (as ``pyaya inspect`` names them) that bpfman 0.6 loads, under bpfman's names. A classifier
#: is ``tc`` or ``tcx`` depending on how it is attached (``[attach.NAME] kind``, default ``tcx``).
BPFMAN_PROGRAM_TYPES: dict[str, str] = {
    "TracePoint": "tracepoint",
    "KProbe": "kprobe",
    "KRetProbe": "kretprobe",
    "UProbe": "uprobe",
    "URetProbe": "uretprobe",
    "FEntry": "fentry",
    "FExit": "fexit",
    "Xdp": "xdp",
    "SchedClassifier": "tcx",
}
_BPFMAN_KINDS = ", ".join(sorted({*BPFMAN_PROGRAM_TYPES.values(), "tc"}))

#: Map kinds (as `pyaya inspect` names them, aya's names) as bpfman spells them in ``io.ebpf.maps``.
BPFMAN_MAP_TYPES: dict[str, str] = {
    "HashMap": "hash",
    "Array": "array",
    "ProgramArray": "prog_array",
    "PerfEventArray": "perf_event_array",
    "PerCpuHashMap": "per_cpu_hash",
    "PerCpuArray": "per_cpu_array",
    "StackTraceMap": "stack_trace",
    "CgroupArray": "cgroup_array",
    "LruHashMap": "lru_hash",
    "PerCpuLruHashMap": "lru_per_cpu_hash",
    "LpmTrie": "lpm_trie",
    "ArrayOfMaps": "array_of_maps",
    "HashOfMaps": "hash_of_maps",
    "DevMap": "devmap",
    "SockMap": "sockmap",
    "CpuMap": "cpumap",
    "XskMap": "xskmap",
    "SockHash": "sockhash",
    "CgroupStorage": "cgroup_storage",
    "ReusePortSockArray": "reuseport_sockarray",
    "PerCpuCgroupStorage": "per_cpu_cgroup_storage",
    "Queue": "queue",
    "Stack": "stack",
    "SkStorage": "sk_storage",
    "DevMapHash": "devmap_hash",
    "StructOps": "struct_ops",
    "RingBuf": "ringbuf",
    "InodeStorage": "inode_storage",
    "TaskStorage": "task_storage",
    "BloomFilter": "bloom_filter",
    "UserRingBuf": "user_ringbuf",
    "CgrpStorage": "cgrp_storage",
    "Arena": "arena",
}

# Go's names for the machines an image can be for (what OCI's `architecture` holds), and their byte order.
_ARCHITECTURES: dict[str, tuple[str, str]] = {
    "x86_64": ("amd64", "little"),
    "amd64": ("amd64", "little"),
    "aarch64": ("arm64", "little"),
    "arm64": ("arm64", "little"),
    "ppc64le": ("ppc64le", "little"),
    "riscv64": ("riscv64", "little"),
    "loongarch64": ("loong64", "little"),
    "s390x": ("s390x", "big"),
}
_TAG = re.compile(
    r"^(?P<name>[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*):(?P<version>\w[\w.-]{0,127})$"
)
_REFERENCE = re.compile(
    r"^(?P<host>[A-Za-z0-9.-]+(?::[0-9]+)?)/(?P<repo>[a-z0-9]+(?:[._/-][a-z0-9]+)*)(?::(?P<tag>\w[\w.-]{0,127}))?$"
)


def _internal_map(name: str) -> bool:
    return name.startswith((".rodata", ".data", ".bss")) or name == "AYA_LOGS"


def parse_tag(tag: str) -> tuple[str, str]:
    """``"execwatch:1.0"`` -> ``("execwatch", "1.0")``; a malformed tag raises :class:`PackageError`."""
    match = _TAG.match(tag)
    if match is None:
        raise PackageError(
            f"--tag {tag!r} is not NAME:VERSION (NAME: lower-case letters, digits and . _ - /; VERSION: letters, "
            "digits and . _ -), e.g. --tag execwatch:0.1.0"
        )
    return match["name"], match["version"]


def bpfman_program_type(program: str, aya_type: str, attach: AttachPoint | None) -> str:
    """bpfman's type for one program (``io.ebpf.programs``), or a :class:`PackageError` saying why there is none."""
    kind = BPFMAN_PROGRAM_TYPES.get(aya_type)
    if kind is None:
        raise PackageError(
            f"program {program!r} is a {aya_type} program, which bpfman 0.6 cannot load (it loads {_BPFMAN_KINDS} "
            "programs): run this project with `pyaya run` on each node instead, or use one of those program types"
        )
    if attach is not None and attach.kind is not None and attach.kind != kind:
        if {kind, attach.kind} != {"tc", "tcx"}:
            raise PackageError(
                f"[attach.{program}] kind = {attach.kind!r} does not fit program {program!r}, a {aya_type} program "
                f"(bpfman type {kind!r}): remove `kind` or set it to {kind!r}"
            )
        kind = attach.kind
    return kind


def image_labels(info: ObjectInfo, attach: Mapping[str, AttachPoint]) -> tuple[dict[str, str], dict[str, str]]:
    """``io.ebpf.programs`` and ``io.ebpf.maps`` of an object, as dicts (every program must be one bpfman loads)."""
    if not info.programs:
        raise PackageError("the object has no programs: there is nothing for bpfman to load")
    programs = {p.name: bpfman_program_type(p.name, p.type, attach.get(p.name)) for p in info.programs}
    maps: dict[str, str] = {}
    for found in info.maps:
        if _internal_map(found.name):
            continue
        bpfman_type = BPFMAN_MAP_TYPES.get(found.type)
        if bpfman_type is None:
            raise PackageError(f"map {found.name!r} has a type ({found.type}) bpfman does not know")
        maps[found.name] = bpfman_type
    unknown = sorted(set(attach) - set(programs))
    if unknown:
        raise PackageError(
            f"[attach.{unknown[0]}] names no program of the object (its programs: {', '.join(sorted(programs))})"
        )
    return programs, maps


def _global_sizes(btf: Btf) -> dict[str, int]:
    """The size of every global variable in the object's data sections, by name (from its BTF)."""
    sizes: dict[str, int] = {}
    for datasec in btf.types:
        if datasec.kind is not Kind.DATASEC or not datasec.name.startswith((".rodata", ".data", ".bss")):
            continue
        assert isinstance(datasec, BtfDatasec)
        for var in datasec.vars:
            sizes[btf.name_of(var.type_id)] = var.size
    return sizes


def global_data(
    globals: Mapping[str, GlobalValue], object_data: bytes, *, btf_path: str | os.PathLike[str] | None = None
) -> dict[str, bytes]:
    """The bytes of each ``[globals]`` entry, as bpfman's ``globalData`` (and ``bpfman load -g NAME=HEX``) want them:
    the global's size (from the object's BTF), in the object's byte order, and the object's kernel fields
    (``kernel_field!``) filled as ``pyaya.Ebpf.load`` fills them. Kernel struct offsets are read from ``btf_path``
    (default: this machine's ``/sys/kernel/btf/vmlinux``)."""
    from pyaya.kernel_fields import fill as fill_kernel_fields  # noqa: PLC0415

    try:
        kernel_btf = None if btf_path is None else Btf.vmlinux(Path(btf_path))
        fields, _ = fill_kernel_fields(object_data, set(globals), kernel_btf)
    except PyayaError as error:
        raise PackageError(str(error)) from None
    if not globals:
        return fields
    elf = Elf(object_data)
    order: Literal["little", "big"] = "little" if elf.endian == "<" else "big"
    if elf.section(".BTF") is None:
        raise PackageError("the object has no BTF, so the sizes of its globals are unknown: build it with pyaya build")
    sizes = _global_sizes(Btf.from_elf(elf))
    values: dict[str, bytes] = {}
    for name, entry in globals.items():
        size = sizes.get(name)
        if size is None:
            raise PackageError(
                f"[globals] {name}: the object has no global of that name (its globals: {', '.join(sorted(sizes))})"
            )
        if entry.member_offset is not None:
            from pyaya.kernel import member_offsets  # noqa: PLC0415 - the native module, only for offsets

            struct, member = entry.member_offset
            try:
                number = member_offsets(struct, member, btf_path=btf_path)[member]
            except PyayaError as error:
                raise PackageError(f"[globals] {name}: {error}") from None
        else:
            assert entry.value is not None
            number = entry.value
        try:
            values[name] = number.to_bytes(size, order, signed=number < 0)
        except OverflowError:
            raise PackageError(f"[globals] {name} = {number} does not fit the global's {size} bytes") from None
    return {**fields, **values}


def _architecture() -> tuple[str, str]:
    machine = platform.machine()
    found = _ARCHITECTURES.get(machine)
    if found is None:
        raise PackageError(f"cannot tell the OCI architecture of this machine ({machine!r})")
    return found


def _source_date_epoch() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None:
        return int(time.time())
    try:
        epoch = int(value)
    except ValueError:
        raise PackageError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds since 1970") from None
    if epoch < 0:
        raise PackageError(f"SOURCE_DATE_EPOCH={value!r} is before 1970")
    return epoch


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise PackageError(f"`{name}` is not on PATH: install it (Debian: apt-get install {package})")
    return found


def _run(argv: Sequence[str], what: str) -> str:
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=300)
    except OSError as error:
        raise PackageError(f"cannot run {argv[0]}: {error.strerror or error}") from None
    except subprocess.TimeoutExpired:
        raise PackageError(f"{what}: `{' '.join(argv[:3])} ...` did not finish in 300 s") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise PackageError(f"{what} failed: {detail}")
    return result.stdout


def _layer_tar(filename: str, data: bytes, mtime: int) -> bytes:
    """A tar stream of exactly one regular file at its root: bpfman takes the layer's first entry as the object."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        entry = tarfile.TarInfo(filename)
        entry.size = len(data)
        entry.mtime = mtime
        entry.mode = 0o644
        entry.uid = entry.gid = 0
        entry.uname = entry.gname = ""
        archive.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


@dataclass(frozen=True)
class Image:
    """An image written by :func:`write_image`."""

    layout: Path
    """The OCI image layout folder."""
    reference: str
    """Its ``org.opencontainers.image.ref.name`` (the VERSION of ``--tag``); skopeo calls it ``oci:LAYOUT:REF``."""
    digest: str
    """The manifest's digest (``sha256:...``)."""
    programs: dict[str, str]
    maps: dict[str, str]


def write_image(
    object_data: bytes,
    layout: str | os.PathLike[str],
    *,
    filename: str,
    reference: str,
    programs: Mapping[str, str],
    maps: Mapping[str, str],
) -> Image:
    """Write a bytecode image of ``object_data`` into the OCI layout folder ``layout`` (replaced if it holds one).

    The layout is built in a temporary folder beside ``layout`` and renamed into place, so a failure leaves the old
    one (or nothing) behind. ``filename`` is the object's name in the layer (``<name>.o``).
    """
    umoci = _tool("umoci", "umoci")
    target = Path(layout)
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not (target / "oci-layout").exists())):
        raise PackageError(f"{target} exists and is not an OCI image layout: pick another --output folder")
    elf = Elf(object_data)
    if not elf.header.is_bpf:
        raise PackageError(f"not a BPF object (ELF machine {elf.header.machine})")
    object_order = "little" if elf.endian == "<" else "big"
    architecture, host_order = _architecture()
    if object_order != host_order:
        raise PackageError(
            f"the object is {object_order}-endian (bpf{'el' if object_order == 'little' else 'eb'}) but images "
            f"made here are for {architecture}, a {host_order}-endian platform bpfman would refuse it on: package "
            "it on a machine of the architecture it was built for"
        )
    epoch = _source_date_epoch()
    created = datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        staged = work / "layout"
        layer = work / "layer.tar"
        layer.write_bytes(_layer_tar(filename, object_data, epoch))
        image = f"{staged}:{reference}"
        labels = {
            LABEL_PROGRAMS: json.dumps(dict(programs), sort_keys=True, separators=(",", ":")),
            LABEL_MAPS: json.dumps(dict(maps), sort_keys=True, separators=(",", ":")),
            LABEL_BYTE_ORDER: object_order,
        }
        _run([umoci, "init", "--layout", str(staged)], "umoci init")
        _run([umoci, "new", "--image", image], "umoci new")
        _run([umoci, "raw", "add-layer", "--no-history", "--image", image, str(layer)], "umoci raw add-layer")
        config = [umoci, "config", "--no-history", "--image", image, "--created", created]
        config += ["--architecture", architecture, "--os", "linux"]
        for key, value in labels.items():
            config += ["--config.label", f"{key}={value}"]
        _run(config, "umoci config")
        _run([umoci, "gc", "--layout", str(staged)], "umoci gc")
        written = read_image(staged, reference)
        if written.object_data != object_data or written.filename != filename:
            raise PackageError(f"umoci wrote a layer that does not hold {filename} as given")
        if target.exists():
            old = work / "old"
            target.rename(old)
        staged.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Image(target, reference, written.digest, dict(programs), dict(maps))


@dataclass(frozen=True)
class PackagedImage:
    """A bytecode image read back from an OCI layout (what bpfman would see)."""

    digest: str
    labels: dict[str, str]
    architecture: str
    filename: str
    object_data: bytes

    @property
    def programs(self) -> dict[str, str]:
        return dict(json.loads(self.labels[LABEL_PROGRAMS]))

    @property
    def maps(self) -> dict[str, str]:
        return dict(json.loads(self.labels[LABEL_MAPS]))


def _blob(layout: Path, digest: str) -> bytes:
    algorithm, _, value = digest.partition(":")
    try:
        return (layout / "blobs" / algorithm / value).read_bytes()
    except OSError as error:
        raise PackageError(f"{layout}: blob {digest} is missing ({error.strerror})") from None


def read_image(layout: str | os.PathLike[str], reference: str | None = None) -> PackagedImage:
    """Read the bytecode image ``reference`` (default: the only one) of an OCI layout folder, checking it the way
    bpfman reads it: one gzip layer whose first entry is the object, labels parsed as JSON objects."""
    folder = Path(layout)
    try:
        index = json.loads((folder / "index.json").read_text())
    except (OSError, ValueError) as error:
        raise PackageError(f"{folder} is not an OCI image layout ({error})") from None
    manifests = index.get("manifests", [])
    if reference is not None:
        manifests = [
            m for m in manifests if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == reference
        ]
    if len(manifests) != 1:
        raise PackageError(f"{folder}: expected one image{f' named {reference}' if reference else ''}")
    digest = manifests[0]["digest"]
    manifest = json.loads(_blob(folder, digest))
    config = json.loads(_blob(folder, manifest["config"]["digest"]))
    layers = manifest.get("layers", [])
    if len(layers) != 1 or layers[0].get("mediaType") != LAYER_MEDIA_TYPE:
        raise PackageError(f"{folder}: a bytecode image has exactly one {LAYER_MEDIA_TYPE} layer")
    with tarfile.open(fileobj=io.BytesIO(_blob(folder, layers[0]["digest"])), mode="r:gz") as archive:
        entries = archive.getmembers()
        if not entries or not entries[0].isfile() or "/" in entries[0].name.strip("./"):
            raise PackageError(f"{folder}: the layer's first entry is not a file at its root")
        extracted = archive.extractfile(entries[0])
        assert extracted is not None
        data = extracted.read()
    labels = dict((config.get("config") or {}).get("Labels") or {})
    for key in (LABEL_PROGRAMS, LABEL_MAPS):
        try:
            parsed = json.loads(labels[key])
        except (KeyError, ValueError):
            raise PackageError(f"{folder}: label {key} is missing or not JSON") from None
        if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
            raise PackageError(f"{folder}: label {key} is not a JSON object of strings")
    return PackagedImage(digest, labels, str(config.get("architecture", "")), entries[0].name, data)


def push(
    layout: str | os.PathLike[str],
    reference: str,
    destination: str,
    *,
    cert_dir: str | os.PathLike[str] | None = None,
    tls_verify: bool = True,
) -> str:
    """Push image ``reference`` of an OCI layout to ``destination`` (``HOST[:PORT]/REPO:TAG``) with skopeo; returns
    the pushed manifest's digest. ``cert_dir`` holds the registry's CA (``*.crt``) when it is not a public one."""
    match = _REFERENCE.match(destination)
    if match is None or not match["tag"]:
        raise PackageError(
            f"--push {destination!r} is not REGISTRY/REPOSITORY:TAG (e.g. 127.0.0.1:5000/execwatch:0.1.0 or "
            "quay.io/me/execwatch:0.1.0)"
        )
    skopeo = _tool("skopeo", "skopeo")
    with tempfile.TemporaryDirectory(prefix="pyaya-push-") as scratch:
        digest_file = Path(scratch) / "digest"
        argv = [skopeo, "copy", "--quiet", "--digestfile", str(digest_file)]
        if cert_dir is not None:
            argv.append(f"--dest-cert-dir={os.fspath(cert_dir)}")
        if not tls_verify:
            argv.append("--dest-tls-verify=false")
        argv += [f"oci:{os.fspath(layout)}:{reference}", f"docker://{destination}"]
        _run(argv, f"pushing to {destination}")
        return digest_file.read_text().strip()


def bpfman_load_command(image_url: str, programs: Mapping[str, str], globals: Mapping[str, bytes]) -> list[str]:
    """The ``bpfman load image`` command line that loads an image's programs with its globals (``-g NAME=HEX``,
    the bytes in memory order, as bpfman wants them)."""
    argv = ["bpfman", "load", "image", "--image-url", image_url, "--programs"]
    argv += [f"{kind}:{name}" for name, kind in sorted(programs.items())]
    if globals:
        argv += ["--global", *(f"{name}={value.hex()}" for name, value in sorted(globals.items()))]
    return argv


@dataclass(frozen=True)
class PackageResult:
    """What :func:`package` did."""

    image: Image
    object_path: Path
    global_data: dict[str, bytes]
    pushed: str | None = None
    """``destination@digest`` when pushed."""
    manifests: tuple[Path, ...] = ()


def package(
    project: Project,
    tag: str,
    *,
    output: str | os.PathLike[str] | None = None,
    push_to: str | None = None,
    manifests: str | os.PathLike[str] | None = None,
    cert_dir: str | os.PathLike[str] | None = None,
    tls_verify: bool = True,
    user_image: str | None = None,
    stream: TextIO | None = None,
) -> PackageResult:
    """Build ``project`` (when stale) and write its bytecode image (default folder: ``target/oci/NAME``); push it
    when ``push_to`` is given and write Kubernetes manifests into ``manifests``. Build output goes to ``stream``
    (default: stderr)."""
    from pyaya.build import ensure_built  # noqa: PLC0415 - cargo's driver, only when packaging

    name, version = parse_tag(tag)
    objects = ensure_built(project, stream=stream)
    if len(objects) != 1:
        raise PackageError(
            f"a bytecode image holds one object and {project.config_path} names {len(objects)} ([build] objects): "
            "package a project with one object"
        )
    object_path = objects[0]
    data = object_path.read_bytes()
    info = inspect_bytes(data)
    programs, maps = image_labels(info, project.fleet.attach)
    values = global_data(project.fleet.globals, data)
    layout = Path(output) if output is not None else project.target_dir / "oci" / name.replace("/", "_")
    image = write_image(data, layout, filename=f"{object_path.name}.o", reference=version, programs=programs, maps=maps)
    pushed = None
    if push_to is not None:
        digest = push(image.layout, version, push_to, cert_dir=cert_dir, tls_verify=tls_verify)
        pushed = f"{push_to}@{digest}"
    written: tuple[Path, ...] = ()
    if manifests is not None:
        from pyaya.manifests import write_manifests  # noqa: PLC0415

        url = push_to or f"{name}:{version}"
        written = write_manifests(
            project, Path(manifests), image_url=url, programs=programs, maps=maps, global_data=values,
            object_name=object_path.name, user_image=user_image or f"{name}-userspace:{version}",
            sections={p.name: p.section for p in info.programs},
        )  # fmt: skip
    return PackageResult(image, object_path, values, pushed, written)
