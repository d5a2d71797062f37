"""The native kernel-struct offset lookup agrees with the full BTF decoder on this kernel's BTF."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyaya import NotFoundError
from pyaya.btf import Btf
from pyaya.kernel import VMLINUX_BTF, cgroup, member_offset, member_offsets

pytestmark = pytest.mark.skipif(
    not VMLINUX_BTF.is_file(), reason=f"this kernel exposes no BTF at {VMLINUX_BTF} (CONFIG_DEBUG_INFO_BTF)"
)

CASES = {
    "task_struct": ["real_parent", "tgid", "pid", "comm", "mm"],
    "sk_buff": ["len", "protocol", "data", "dev"],  # several of these sit in anonymous unions
    "file": ["f_inode", "f_path"],
}


@pytest.fixture(scope="module")
def vmlinux() -> Btf:
    return Btf.vmlinux()


@pytest.mark.parametrize("struct", sorted(CASES))
def test_native_offsets_match_the_decoder(vmlinux: Btf, struct: str) -> None:
    members = CASES[struct]
    assert member_offsets(struct, *members) == {m: vmlinux.member_offset(struct, m) for m in members}


def test_missing_struct_and_member_are_named() -> None:
    with pytest.raises(NotFoundError, match="no struct no_such_struct"):
        member_offset("no_such_struct", "x")
    with pytest.raises(NotFoundError, match="task_struct has no member no_such_member"):
        member_offset("task_struct", "no_such_member")


def test_unreadable_btf_file_says_what_is_needed(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="CONFIG_DEBUG_INFO_BTF"):
        member_offset("task_struct", "pid", btf_path=tmp_path / "missing")


def test_cgroup_folder_is_created_and_removed(tmp_path: Path) -> None:
    folder = tmp_path / "child"
    with cgroup(folder) as path:
        assert path == folder
        assert folder.is_dir()
    assert not folder.exists()
    existing = tmp_path / "kept"
    existing.mkdir()
    with cgroup(existing):
        pass
    assert existing.is_dir()  # not created here, so not removed


def test_cgroup_root_is_the_cgroup2_mount() -> None:
    mounted = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines() if " cgroup2 " in line]
    if not mounted:
        with pytest.raises(NotFoundError, match="mount -t cgroup2"), cgroup():
            pass
        return
    with cgroup() as root:
        assert root == Path(mounted[0])
