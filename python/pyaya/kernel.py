"""Facts about the running kernel that kernel-side Rust code needs from user space.

Rust eBPF programs have no CO-RE relocations: a program that reads a kernel struct (``task_struct.real_parent``,
say) needs the member's offset in *this* kernel, which user space reads from the kernel's BTF and passes in as a
global (``Ebpf.load(..., globals=...)``). The lookup runs natively and takes milliseconds.

>>> from pyaya.kernel import member_offsets  # doctest: +SKIP
>>> member_offsets("task_struct", "real_parent", "tgid")  # doctest: +SKIP
{'real_parent': 1280, 'tgid': 1268}
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from pyaya import _native
from pyaya.errors import NotFoundError

__all__ = ["VMLINUX_BTF", "cgroup", "cgroup2_mount", "member_offset", "member_offsets"]

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")


def member_offsets(struct: str, *members: str, btf_path: str | os.PathLike[str] | None = None) -> dict[str, int]:
    """Byte offsets of ``members`` in kernel struct ``struct`` (members of anonymous inner structs and unions
    included). Raises :class:`~pyaya.NotFoundError` when the kernel has no BTF, no such struct or no such member."""
    path = Path(btf_path) if btf_path is not None else None
    offsets = _native.kernel_member_offsets(struct, list(members), path)
    return dict(zip(members, offsets, strict=True))


def member_offset(struct: str, member: str, *, btf_path: str | os.PathLike[str] | None = None) -> int:
    """Byte offset of one member; see :func:`member_offsets`."""
    return member_offsets(struct, member, btf_path=btf_path)[member]


def cgroup2_mount() -> Path:
    """Where the cgroup v2 hierarchy is mounted (``/sys/fs/cgroup``, or ``/sys/fs/cgroup/unified`` on hybrid
    systems). Raises :class:`~pyaya.NotFoundError` saying how to mount it when there is none."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            return Path(fields[1])
    raise NotFoundError("no cgroup v2 hierarchy is mounted: mount -t cgroup2 none /sys/fs/cgroup")


@contextlib.contextmanager
def cgroup(path: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """The cgroup a cgroup program attaches to: ``path`` (created when it does not exist, and then removed on
    exit if it is empty again) or, when None, the root of the cgroup v2 hierarchy.

    >>> with pyaya.kernel.cgroup() as root:  # doctest: +SKIP
    ...     bpf.programs["sysctl_log"].attach(root)
    """
    if path is None:
        yield cgroup2_mount()
        return
    folder = Path(path)
    created = not folder.exists()
    if created:
        folder.mkdir()
    try:
        yield folder
    finally:
        if created:
            with contextlib.suppress(OSError):  # still has processes: leave it to its owner
                folder.rmdir()
