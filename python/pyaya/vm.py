"""Commands run as root inside QEMU guests booted from other kernels: the kernel matrix behind ``pyaya test``.

A guest boots a stock kernel (Debian's current package of a series, or any vmlinuz with its modules) with a small
initramfs: busybox, the kernel's own virtio/9p/overlay modules and an ``/init`` that mounts the host's root
read-only over virtio-9p under a tmpfs overlay and chroots into it. Host binaries, the virtualenv and the objects
already built run inside unchanged, every write is gone when the guest stops, and the command gets the caller's
environment and folder (so cargo, with the same HOME and target folders, finds everything up to date).

Debian kernels are booted through their PVH entry: the uncompressed vmlinux taken out of the vmlinuz needs no
real-mode setup and no decompressor, which saves seconds under emulation. KVM is used only where a real boot shows
that it works (a ``/dev/kvm`` can be a paravirtual one that boots no stock kernel); otherwise QEMU emulates (TCG).

>>> kernel = debian_kernel("6.12")  # doctest: +SKIP
>>> result = run(kernel, ["uname", "-r"], config=VmConfig())  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pyaya import _native
from pyaya._cache import cache_home
from pyaya.errors import PyayaError, VmError

__all__ = [
    "GUEST_SHARE",
    "SERIES",
    "GuestResult",
    "Kernel",
    "VmConfig",
    "busybox_binary",
    "cache_root",
    "choose_accel",
    "debian_kernel",
    "image_kernel",
    "qemu_binary",
    "run",
    "save_console_log",
]

#: The kernel series ``--kernel`` knows, each with the Debian suites whose current package is that series.
SERIES: dict[str, tuple[str, ...]] = {
    "5.10": ("bullseye", "bullseye-security"),
    "6.1": ("bookworm", "bookworm-security"),
    "6.12": ("trixie", "trixie-security"),
}
_DEBIAN = "http://deb.debian.org/debian"
_DEBIAN_SECURITY = "http://deb.debian.org/debian-security"
_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
#: Modules the initramfs loads (with their dependencies) when the kernel has them as modules: the guest's root
#: is the host's, whose /lib/modules holds the host kernel's modules, not the guest's, so what tests of BPF
#: programs commonly need is loaded here (clsact and cls_bpf for TC programs without tcx, veth for netns pairs).
INITRD_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay", "virtio_rng", "sch_ingress", "cls_bpf", "veth")
QEMU_FIX = "apt-get install qemu-system-x86 busybox-static (Debian/Ubuntu)"
_SHARE_TAG = "pyayavm"
#: Where the guest sees its share folder (``$PYAYA_VM_SHARE``): files a command writes there come back.
GUEST_SHARE = "/run/pyaya-vm"

Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    del message


def cache_root() -> Path:
    """Where kernels and the KVM check are cached: ``kernels`` in :func:`pyaya._cache.cache_home`."""
    return cache_home() / "kernels"


# -- tools -------------------------------------------------------------------------------------------------------


def qemu_binary() -> Path:
    """``qemu-system-x86_64`` on PATH; :class:`VmError` with the install command when it is missing."""
    found = shutil.which("qemu-system-x86_64")
    if found is None:
        raise VmError(f"qemu-system-x86_64 is not on PATH; `pyaya test` boots kernels with it: {QEMU_FIX}")
    return Path(found)


def busybox_binary() -> Path:
    """A statically linked busybox for the initramfs (Debian's busybox-static)."""
    for candidate in (shutil.which("busybox"), "/bin/busybox", "/usr/bin/busybox"):
        if candidate and Path(candidate).is_file():
            data = Path(candidate).read_bytes()[:4096]
            if b"/lib64/ld-linux" not in data and b"/lib/ld-linux" not in data:  # no interpreter: static
                return Path(candidate)
    raise VmError(f"no statically linked busybox found (the guest's initramfs needs one): {QEMU_FIX}")


def _run_tool(argv: list[str], what: str, *, cwd: Path | None = None, timeout: float = 900) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise VmError(f"{what}: {argv[0]} is not installed (apt-get install {argv[0]})") from None
    except subprocess.TimeoutExpired:
        raise VmError(f"{what}: `{argv[0]}` did not finish within {timeout:g} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise VmError(f"{what}: `{' '.join(argv[:2])} ...` failed ({done.returncode}): {last}")
    return done.stdout


# -- kernels -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kernel:
    """A bootable kernel: ``image`` (a PVH vmlinux or a bzImage) and the initramfs made for it."""

    label: str
    release: str
    image: Path
    initrd: Path
    config: Path | None = None

    def config_option(self, name: str) -> str | None:
        """The value of ``CONFIG_<name>`` in the kernel's build config (``"y"``, ``"m"``...), None when unset."""
        if self.config is None or not self.config.is_file():
            return None
        prefix = f"CONFIG_{name}="
        for line in self.config.read_text(errors="replace").splitlines():
            if line.startswith(prefix):
                return line[len(prefix) :]
        return None


def _apt_options(state: Path) -> list[str]:
    return [
        "-o",
        f"Dir::Etc::SourceList={state / 'sources.list'}",
        "-o",
        "Dir::Etc::SourceParts=/dev/null",
        "-o",
        f"Dir::State::Lists={state / 'lists'}",
        "-o",
        f"Dir::Cache={state / 'cache'}",
        "-o",
        "Dir::State::Status=/dev/null",
        "-o",
        "Debug::NoLocking=1",
        "-o",
        "APT::Sandbox::User=root",
    ]


def _apt_state(series: str, suites: tuple[str, ...]) -> Path:
    """A private apt configuration for ``suites`` (the system's sources are never touched)."""
    state = cache_root() / "apt" / series
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    signed = f" [signed-by={_KEYRING}]" if _KEYRING.is_file() else ""
    lines = [
        f"deb{signed} {_DEBIAN_SECURITY if suite.endswith('-security') else _DEBIAN} {suite} main" for suite in suites
    ]
    (state / "sources.list").write_text("\n".join(lines) + "\n")
    return state


def _current_package(series: str, state: Path) -> str:
    """The versioned image package that Debian's ``linux-image-amd64`` of these suites depends on now."""
    shown = _run_tool(
        ["apt-cache", *_apt_options(state), "--no-all-versions", "show", "linux-image-amd64"],
        f"finding Debian's current {series} kernel",
    )
    for line in shown.splitlines():
        if line.startswith(("Depends:", "Pre-Depends:")):
            for alternative in re.split(r"[,|]", line.partition(":")[2]):
                name = alternative.strip().split(" ")[0]
                if name.startswith(f"linux-image-{series}") and name.endswith("-amd64"):
                    return name
    raise VmError(f"Debian's linux-image-amd64 ({', '.join(SERIES[series])}) does not depend on a {series} kernel")


def debian_kernel(series: str, *, refresh: bool = False, progress: Progress = _quiet) -> Kernel:
    """Debian's current package of kernel ``series`` (a :data:`SERIES` key), fetched once and cached under
    :func:`cache_root`; ``refresh`` asks Debian again for the newest package of the series."""
    if series not in SERIES:
        raise VmError(
            f"unknown kernel series {series!r}: known are {', '.join(SERIES)}; for another kernel pass "
            "--kernel-image PATH (a vmlinuz with its modules)"
        )
    root = cache_root()
    pointer = root / f"{series}.current"
    package = pointer.read_text().strip() if pointer.is_file() and not refresh else ""
    if not package or not _complete(root / package):
        state = _apt_state(series, SERIES[series])
        progress(f"asking Debian ({', '.join(SERIES[series])}) for its current {series} kernel")
        _run_tool(["apt-get", *_apt_options(state), "update"], f"apt-get update of {', '.join(SERIES[series])}")
        package = _current_package(series, state)
        if not _complete(root / package):
            progress(f"downloading {package}")
            _fetch_debian_package(package, state, root / package)
        pointer.write_text(package + "\n")
    folder = root / package
    return Kernel(
        label=series,
        release=(folder / "release").read_text().strip(),
        image=folder / "image",
        initrd=_initrd(folder),
        config=folder / "config",
    )


def _complete(folder: Path) -> bool:
    """Whether a cached kernel has its image and the initramfs modules this version of pyaya wants."""
    wanted = folder / "modules" / "wanted"
    return (folder / "image").is_file() and wanted.is_file() and wanted.read_text().split() == list(INITRD_MODULES)


def _fetch_debian_package(package: str, state: Path, folder: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="pyaya-kernel-") as scratch:
        work = Path(scratch)
        _run_tool(["apt-get", *_apt_options(state), "download", package], f"downloading {package}", cwd=work)
        debs = sorted(work.glob("*.deb"))
        if not debs:
            raise VmError(f"apt-get download {package} left no .deb file")
        _run_tool(["dpkg-deb", "-x", str(debs[0]), str(work / "x")], f"unpacking {debs[0].name}")
        vmlinuz = sorted((work / "x" / "boot").glob("vmlinuz-*"))
        if not vmlinuz:
            raise VmError(f"{package} holds no /boot/vmlinuz-*")
        release = vmlinuz[0].name.removeprefix("vmlinuz-")
        staging = folder.with_name(folder.name + f".partial-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        _store_kernel(vmlinuz[0], _modules_folder(work / "x", release), staging, release)
        config = work / "x" / "boot" / f"config-{release}"
        if config.is_file():
            shutil.copyfile(config, staging / "config")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)  # complete or absent: never a half-written kernel in the cache


def _modules_folder(root: Path, release: str) -> Path | None:
    for candidate in (root / "lib" / "modules" / release, root / "usr" / "lib" / "modules" / release):
        if candidate.is_dir():
            return candidate
    return None


def bzimage_release(image: Path) -> str | None:
    """The kernel release a bzImage names in its setup header (``kernel_version``), None for other files."""
    with image.open("rb") as file:
        header = file.read(0x400)
        if len(header) < 0x210 or header[0x202:0x206] != b"HdrS":
            return None
        pointer = int.from_bytes(header[0x20E:0x210], "little")
        if not pointer:
            return None
        file.seek(pointer + 0x200)
        text = file.read(256).split(b"\0")[0].decode("ascii", errors="replace")
    return text.split(" ")[0] or None


def _decompressed_vmlinux(bzimage: bytes) -> bytes | None:
    """The ELF vmlinux inside a bzImage: the first xz, zstd or gzip stream that decompresses to an ELF file."""
    candidates: list[tuple[int, str]] = []
    for magic, kind in ((b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\x1f\x8b\x08", "gzip")):
        candidates += [(match.start(), kind) for match in re.finditer(re.escape(magic), bzimage)]
    for offset, kind in sorted(candidates):
        data = bzimage[offset:]
        try:
            if kind == "xz":
                out = lzma.LZMADecompressor().decompress(data)
            elif kind == "gzip":
                out = gzip.GzipFile(fileobj=io.BytesIO(data)).read1(1 << 31)
            else:
                out = _zstd_decompress(data)
        except (lzma.LZMAError, OSError, EOFError, VmError):
            continue
        if out[:4] == b"\x7fELF":
            return out
    return None


def _zstd_decompress(data: bytes) -> bytes:
    zstd = shutil.which("zstd")
    if zstd is None:
        raise VmError("this kernel is zstd-compressed and zstd is not installed: apt-get install zstd")
    # Trailing bytes after the frame make zstd complain; what it wrote before is the whole frame.
    done = subprocess.run([zstd, "-dc"], input=data, capture_output=True, check=False, timeout=120)
    return done.stdout


def has_pvh_entry(vmlinux: bytes) -> bool:
    """Whether an ELF vmlinux carries the PVH entry note (``XEN_ELFNOTE_PHYS32_ENTRY``) QEMU boots it by."""
    if vmlinux[:5] != b"\x7fELF\x02":
        return False
    phoff = int.from_bytes(vmlinux[0x20:0x28], "little")
    entsize = int.from_bytes(vmlinux[0x36:0x38], "little")
    count = int.from_bytes(vmlinux[0x38:0x3A], "little")
    for index in range(count):
        header = vmlinux[phoff + index * entsize : phoff + (index + 1) * entsize]
        if int.from_bytes(header[0:4], "little") != 4:  # PT_NOTE
            continue
        offset, size = int.from_bytes(header[8:16], "little"), int.from_bytes(header[32:40], "little")
        notes, position = vmlinux[offset : offset + size], 0
        while position + 12 <= len(notes):
            namesz, descsz, kind = (int.from_bytes(notes[position + i : position + i + 4], "little") for i in (0, 4, 8))
            name = notes[position + 12 : position + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and kind == 18:
                return True
            position += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def _read_module(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(data)
    if path.suffix == ".zst":
        return _zstd_decompress(data)
    if path.suffix == ".gz":
        return gzip.decompress(data)
    return data


def _module_files(modules: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in modules.rglob("*.ko*"):
        name = path.name.split(".ko")[0].replace("-", "_")
        found.setdefault(name, path)
    return found


def _store_kernel(vmlinuz: Path, modules: Path | None, folder: Path, release: str) -> None:
    """Writes ``folder``'s ``image`` (the PVH vmlinux, else the bzImage), ``release`` and ``modules/`` (the
    initramfs's modules, decompressed, with ``order``: dependencies first)."""
    raw = vmlinuz.read_bytes()
    vmlinux = _decompressed_vmlinux(raw) if raw[:4] != b"\x7fELF" else raw
    if vmlinux is not None and has_pvh_entry(vmlinux):
        (folder / "image").write_bytes(vmlinux)
    else:
        shutil.copyfile(vmlinuz, folder / "image")  # QEMU boots the bzImage itself: slower, but it works
    (folder / "release").write_text(release + "\n")
    target = folder / "modules"
    target.mkdir()
    order: list[str] = []
    files = _module_files(modules) if modules is not None else {}

    def need(name: str, chain: tuple[str, ...] = ()) -> None:
        name = name.replace("-", "_")
        if name in order or name in chain or name not in files:
            return  # already there, a cycle, or built into the kernel
        data = _read_module(files[name])
        match = re.search(rb"depends=([^\0]*)\0", data)
        for dependency in match.group(1).decode().split(",") if match else []:
            if dependency:
                need(dependency, (*chain, name))
        (target / f"{name}.ko").write_bytes(data)
        order.append(name)

    for module in INITRD_MODULES:
        need(module)
    (target / "order").write_text(" ".join(order) + "\n")
    (target / "wanted").write_text(" ".join(INITRD_MODULES) + "\n")


def image_kernel(image: Path, modules: Path | None = None, *, progress: Progress = _quiet) -> Kernel:
    """A kernel of another distribution: ``image`` (a vmlinuz/bzImage or an ELF vmlinux) and its modules folder
    (``lib/modules/<release>``; by default the one beside it in the same root, else this machine's). Prepared
    once and cached by the image's path, size and modification time."""
    image = image.expanduser().resolve()
    if not image.is_file():
        raise VmError(f"--kernel-image {image}: no such file (pass a vmlinuz, e.g. /boot/vmlinuz-$(uname -r))")
    release = bzimage_release(image)
    if release is None:
        match = re.match(r"vmlinu[xz]-(.+)", image.name)
        if match is None and image.read_bytes()[:4] != b"\x7fELF":
            raise VmError(f"--kernel-image {image}: not a bzImage (no setup header) and not an ELF vmlinux")
        release = match.group(1) if match else image.name
    if modules is None:
        root = image.parent.parent if image.parent.name == "boot" else image.parent
        modules = _modules_folder(root, release) or _modules_folder(Path("/"), release)
    stat = image.stat()
    key = hashlib.sha256(f"{image}\0{stat.st_size}\0{stat.st_mtime_ns}\0{modules}".encode()).hexdigest()[:16]
    folder = cache_root() / "images" / key
    if not _complete(folder):
        progress(f"preparing {image} ({release}; modules: {modules or 'none found, expecting them built in'})")
        staging = folder.with_name(folder.name + f".partial-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        _store_kernel(image, modules, staging, release)
        config = image.parent / f"config-{release}"
        if config.is_file():
            shutil.copyfile(config, staging / "config")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    return Kernel(
        label=image.name,
        release=release,
        image=folder / "image",
        initrd=_initrd(folder),
        config=folder / "config" if (folder / "config").is_file() else None,
    )


# -- the initramfs -----------------------------------------------------------------------------------------------

_INIT = r"""#!/bin/busybox sh
# pyaya test's guest init: modules, the host's root (9p, read-only) under a tmpfs overlay, then the job.
/bin/busybox --install -s /bin
export PATH=/bin
say() { echo "pyaya-vm: $*" > /dev/console; }
mkdir -p /proc /sys /dev /lower /rw /root
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /mods/order); do insmod "/mods/$m.ko" || say "insmod $m failed"; done
o=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o ro,cache=loose,$o hostroot /lower || { say "cannot mount the host's root over 9p"; poweroff -f; }
mount -t tmpfs -o mode=755 rw /rw; mkdir /rw/up /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/up,workdir=/rw/work overlay /root || {
    say "cannot mount the overlay"; poweroff -f; }
for d in proc sys dev; do mount --move "/$d" "/root/$d"; done
mkdir -p /root/dev/pts /root/dev/shm /root/run/pyaya-vm /root/tmp
mount -t devpts devpts /root/dev/pts; mount -t tmpfs shm /root/dev/shm
mount -t 9p -o $o pyayavm /root/run/pyaya-vm || { say "cannot mount the job's share"; poweroff -f; }
cd /root/sys
mount -t bpf bpf fs/bpf; mount -t tracefs tracefs kernel/tracing; mount -t debugfs debugfs kernel/debug
mount -t securityfs securityfs kernel/security
# cgroup2 where the host has it (/sys/fs/cgroup/unified on hybrid hosts), so tests see the paths they know
cg=$(cat /root/run/pyaya-vm/cgroup2)
[ "$cg" = /sys/fs/cgroup ] || { mount -t tmpfs cgroup /root/sys/fs/cgroup; mkdir -p "/root$cg"; }
mount -t cgroup2 cgroup2 "/root$cg"
cd /
ip link set lo up
stty -F /root/dev/ttyS1 raw -echo 2>/dev/null
say "running the job"
chroot /root "$(cat /root/run/pyaya-vm/python)" -I -S "$(cat /root/run/pyaya-vm/runner)" /run/pyaya-vm \
    < /root/dev/null > /root/dev/ttyS1 2>&1
say "job done ($?)"
sync
poweroff -f
"""


def _cpio(entries: list[tuple[str, int, bytes, tuple[int, int]]]) -> bytes:
    """A newc cpio archive of ``(name, mode, data, (rdev major, minor))`` entries."""
    out = io.BytesIO()

    def pad() -> None:
        out.write(b"\0" * (-out.tell() % 4))

    for number, (name, mode, data, (major, minor)) in enumerate([*entries, ("TRAILER!!!", 0, b"", (0, 0))], 1):
        encoded = name.encode() + b"\0"
        fields = (number, mode, 0, 0, 1, 0, len(data), 0, 0, major, minor, len(encoded), 0)
        out.write(b"070701" + b"".join(b"%08X" % value for value in fields))
        out.write(encoded)
        pad()
        out.write(data)
        pad()
    return out.getvalue()


def _initrd(folder: Path) -> Path:
    """``folder``'s initramfs (busybox, its modules, /init), rebuilt when /init or busybox changes."""
    busybox = busybox_binary()
    payload = busybox.read_bytes()
    order = (folder / "modules" / "order").read_text().split()
    key = hashlib.sha256(_INIT.encode() + payload + " ".join(order).encode()).hexdigest()[:16]
    path = folder / f"initrd-{key}.gz"
    if path.is_file():
        return path
    directory, executable, regular, device = 0o40755, 0o100755, 0o100644, 0o20600
    entries = [
        ("bin", directory, b"", (0, 0)),
        ("dev", directory, b"", (0, 0)),
        ("dev/console", device, b"", (5, 1)),
        ("mods", directory, b"", (0, 0)),
        ("bin/busybox", executable, payload, (0, 0)),
        ("init", executable, _INIT.encode(), (0, 0)),
        ("mods/order", regular, " ".join(order).encode() + b"\n", (0, 0)),
    ]
    entries += [
        (f"mods/{name}.ko", regular, (folder / "modules" / f"{name}.ko").read_bytes(), (0, 0)) for name in order
    ]
    staging = path.with_name(path.name + f".partial-{os.getpid()}")
    staging.write_bytes(gzip.compress(_cpio(entries), compresslevel=1))
    staging.rename(path)
    return path


# -- acceleration ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VmConfig:
    """How a guest runs: memory (QEMU's ``-m``), CPUs, extra kernel parameters, ``accel`` (``"auto"``, ``"kvm"``
    or ``"tcg"``), how long the boot may take until the command starts and how long the whole run may take."""

    memory: str = "2G"
    cpus: int = 2
    append: str = ""
    accel: str = "auto"
    boot_timeout: float = 180.0
    timeout: float = 3600.0


def _accel_args(accel: str) -> list[str]:
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    # One host thread for all vCPUs: with multi-threaded TCG a guest kernel patching its own text (jump labels,
    # static calls: text_poke_bp's int3) on one vCPU while another runs it now and then dies at boot with
    # "Oops: int3" in sched_clock_cpu (seen with QEMU 7.2 and Debian's 6.12). The tests run one guest at a time
    # and mostly one thread inside it, so this costs little.
    return ["-accel", "tcg,thread=single", "-cpu", "max"]


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def choose_accel(kernel: Kernel, requested: str = "auto", *, progress: Progress = _quiet) -> tuple[str, str]:
    """``(accel, why)``: ``"kvm"`` when ``/dev/kvm`` boots ``kernel`` for real (checked once per host boot and
    cached), else ``"tcg"``. ``requested`` ``"kvm"`` or ``"tcg"`` is taken as asked."""
    if requested in ("kvm", "tcg"):
        return requested, "as asked"
    if requested != "auto":
        raise VmError(f"--accel {requested!r}: use auto, kvm or tcg")
    kvm = Path("/dev/kvm")
    if not kvm.exists():
        return "tcg", "/dev/kvm does not exist"
    if not os.access(kvm, os.R_OK | os.W_OK):
        return "tcg", "/dev/kvm is not readable and writable by this user"
    record = cache_root() / "kvm-check.json"
    with contextlib.suppress(OSError, ValueError):
        known = json.loads(record.read_text())
        if known.get("boot_id") == _boot_id():
            return ("kvm" if known["works"] else "tcg"), f"{known['why']} (checked at this host's boot)"
    progress("checking whether /dev/kvm boots a stock kernel (once per host boot)")
    try:
        result = run(
            kernel,
            ["/bin/true"],
            config=VmConfig(memory="512M", cpus=1, accel="kvm", boot_timeout=30, timeout=40),
            output=_quiet,
        )
        works = result.returncode == 0
        why = f"a KVM guest booted in {result.boot_seconds:.1f} s" if works else "the KVM guest's command failed"
    except VmError as error:
        works, why = False, f"a KVM guest did not boot ({str(error).splitlines()[0]})"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"boot_id": _boot_id(), "works": works, "why": why}) + "\n")
    return ("kvm" if works else "tcg"), why


# -- running a guest ---------------------------------------------------------------------------------------------


@dataclass
class GuestResult:
    """What a guest run gave: the command's exit status, seconds from QEMU's start to the command's start
    (``boot_seconds``) and of the command (``run_seconds``), the accelerator, the guest's console log and the files
    asked for by ``keep``."""

    returncode: int
    boot_seconds: float
    run_seconds: float
    accel: str
    console: str = ""
    files: dict[str, bytes] = field(default_factory=dict)


def _cgroup2_mount() -> str:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            return fields[1]
    return "/sys/fs/cgroup"


def _die_with_parent() -> None:
    """In the QEMU child before exec: SIGKILL it when this process dies, however it dies."""
    with contextlib.suppress(PyayaError):
        _native.set_parent_death_signal(signal.SIGKILL)


def _tail(path: Path, stop: threading.Event, output: Callable[[str], object]) -> None:
    """Hands ``output`` what is appended to ``path`` until ``stop`` is set and the file is read to its end."""
    while not path.exists() and not stop.is_set():
        time.sleep(0.05)
    with contextlib.suppress(FileNotFoundError), path.open("rb") as file:
        while True:
            chunk = file.read(65536)
            if chunk:
                output(chunk.decode("utf-8", errors="replace").replace("\r\n", "\n"))
                continue
            if stop.is_set():
                return
            time.sleep(0.05)


def _console_tail(console: str, lines: int = 12) -> str:
    text = [line for line in console.replace("\r", "").splitlines() if line.strip()]
    return "\n".join(f"  | {line}" for line in text[-lines:])


def save_console_log(console: str, kernel: Kernel) -> Path:
    """Keeps a guest's console log under the cache (``logs/``) and returns its path."""
    logs = cache_root() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / f"{kernel.release}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    path.write_text(console)
    return path


def qemu_argv(kernel: Kernel, config: VmConfig, accel: str, share: Path) -> list[str]:
    """QEMU's argument list for a guest of ``kernel`` whose job is in ``share`` (no shell ever parses it)."""
    append = f"console=ttyS0 loglevel=4 panic=-1 {config.append}".strip()
    return [
        str(qemu_binary()),
        *_accel_args(accel),
        "-smp",
        str(config.cpus),
        "-m",
        config.memory,
        "-nodefaults",
        "-no-reboot",
        "-display",
        "none",
        "-kernel",
        str(kernel.image),
        "-initrd",
        str(kernel.initrd),
        "-append",
        append,
        "-chardev",
        f"file,id=console,path={share / 'console.log'}",
        "-serial",
        "chardev:console",
        "-chardev",
        f"file,id=out,path={share / 'output'}",
        "-serial",
        "chardev:out",
        "-device",
        "virtio-rng-pci",
        "-virtfs",
        "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        "-virtfs",
        f"local,path={share},mount_tag={_SHARE_TAG},security_model=none",
    ]


@contextlib.contextmanager
def _share() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="pyaya-vm-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(
    kernel: Kernel,
    argv: list[str],
    *,
    config: VmConfig,
    accel: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    output: Callable[[str], object] = sys.stderr.write,
    keep: tuple[str, ...] = (),
) -> GuestResult:
    """Runs ``argv`` as root in a guest of ``kernel`` and returns when it finished; ``output`` receives what it
    writes (stdout and stderr). ``keep`` names files the command writes into ``$PYAYA_VM_SHARE`` to hand back in
    :attr:`GuestResult.files`.

    Raises :class:`VmError` (the QEMU process always killed first) when QEMU cannot start, the kernel does not
    reach the command within ``config.boot_timeout`` seconds, the run exceeds ``config.timeout`` or the guest
    stops before the command has finished; the message names the saved console log."""
    if not argv:
        raise VmError("no command to run in the guest")
    accel = accel or choose_accel(kernel, config.accel)[0]
    environment = dict(os.environ if env is None else env)
    environment["PYAYA_VM_SHARE"] = GUEST_SHARE
    environment["PYAYA_VM_KERNEL"] = kernel.release
    with _share() as share:
        (share / "argv").write_bytes(b"".join(os.fsencode(arg) + b"\0" for arg in argv))
        (share / "env").write_bytes(b"".join(os.fsencode(f"{k}={v}") + b"\0" for k, v in environment.items()))
        (share / "cwd").write_bytes(os.fsencode(cwd or Path.cwd()))
        (share / "python").write_text(sys.executable)
        (share / "runner").write_text(str(Path(__file__).with_name("_vmguest.py")))
        (share / "cgroup2").write_text(_cgroup2_mount())
        stop = threading.Event()
        tail = threading.Thread(target=_tail, args=(share / "output", stop, output), daemon=True)
        argv_qemu = qemu_argv(kernel, config, accel, share)
        start = time.monotonic()
        try:
            with (share / "qemu.stderr").open("wb") as qemu_stderr:
                qemu = subprocess.Popen(
                    argv_qemu,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=qemu_stderr,
                    start_new_session=True,  # Ctrl-C reaches pyaya, which kills QEMU: never a guest left running
                    preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, before any thread of ours starts
                )
        except OSError as error:
            raise VmError(f"cannot start {argv_qemu[0]}: {error.strerror}: {QEMU_FIX}") from None
        tail.start()
        started: float | None = None
        try:
            while qemu.poll() is None:
                now = time.monotonic()
                if started is None and (share / "started").exists():
                    started = now
                if started is None and now - start > config.boot_timeout:
                    raise _failure(kernel, share, f"did not reach the command within {config.boot_timeout:g} s")
                if now - start > config.timeout:
                    raise _failure(kernel, share, f"timed out after {config.timeout:g} s (the command was killed)")
                time.sleep(0.05)
        finally:
            if qemu.poll() is None:
                qemu.kill()
            qemu.wait()
            stop.set()
            tail.join(timeout=5)
        end = time.monotonic()
        if started is None and (share / "started").exists():
            started = end
        status = share / "status"
        if not status.is_file() or not status.read_text().strip():
            qemu_error = (share / "qemu.stderr").read_text(errors="replace").strip()
            if started is None and qemu.returncode != 0 and qemu_error:
                raise VmError(
                    f"QEMU failed ({qemu.returncode}) booting {kernel.release}: {qemu_error.splitlines()[-1]}"
                )
            what = "stopped before the command finished" if started else "stopped before it reached the command"
            raise _failure(kernel, share, what)
        files = {name: (share / name).read_bytes() for name in keep if (share / name).is_file()}
        return GuestResult(
            returncode=int(status.read_text().strip()),
            boot_seconds=(started or end) - start,
            run_seconds=end - (started or end),
            accel=accel,
            console=_read(share / "console.log"),
            files=files,
        )


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _failure(kernel: Kernel, share: Path, what: str) -> VmError:
    console = _read(share / "console.log")
    log = save_console_log(console, kernel)
    tail = _console_tail(console)
    return VmError(f"the {kernel.release} guest {what}; console log: {log}" + (f"\n{tail}" if tail else ""))
