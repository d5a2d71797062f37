"""Which loaders accept a BPF object, and why not: ``pyaya inspect --compat``.

Read from the object alone (no kernel, no privilege), as each loader reads it when it opens the file:

- **pyaya** (aya 0.14 behind pyaya's object pass): program sections aya-obj parses or pyaya rewrites first.
- **libbpf >= 1.0** (bpftool, libbpf-tools, libbpf-rs, BCC's libbpf mode): no legacy ``maps`` section (libbpf 1.0
  dropped bpf_map_def), program sections it knows (its ``SEC()`` table), and a ``license`` section when the code
  calls GPL-only helpers (libbpf assumes a non-GPL license where there is none; aya assumes GPL).
- **cilium/ebpf** (Go loaders): program sections of its own table and the same license rule (it reads legacy
  maps). Only these rules: no cilium/ebpf runs here to check more.

What the kernel will then say (a program type it lacks, the verifier) is another question: ``pyaya doctor`` and a
load answer it. tests/kernel/test_templates.py holds the libbpf verdict to what bpftool (libbpf) does with every
template's object, tests/kernel/test_fixture_objects.py with every fixture object.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyaya import _native
from pyaya._btf_fixups import ring_value_members
from pyaya.btf import Btf
from pyaya.elf import Elf, read_object_file
from pyaya.errors import ObjectError

__all__ = ["LOADERS", "LoaderVerdict", "compatibility", "compatibility_of_file"]

#: The loaders reported on, in the order they are shown.
LOADERS = ("pyaya", "libbpf", "cilium/ebpf")

# libbpf's SEC() table (libbpf 1.1's section_defs): a name ending in "+" matches itself and itself + "/..." (or
# "." for the sleepable/multi forms, listed separately); the others match exactly.
_LIBBPF_SECTIONS = (
    "socket", "sk_reuseport/migrate", "sk_reuseport", "kprobe+", "uprobe+", "uprobe.s+", "kretprobe+",
    "uretprobe+", "uretprobe.s+", "kprobe.multi+", "kretprobe.multi+", "ksyscall+", "kretsyscall+", "usdt+",
    "tc", "classifier", "action", "tracepoint+", "tp+", "raw_tracepoint+", "raw_tp+", "raw_tracepoint.w+",
    "raw_tp.w+", "tp_btf+", "fentry+", "fmod_ret+", "fexit+", "fentry.s+", "fmod_ret.s+", "fexit.s+",
    "freplace+", "lsm+", "lsm.s+", "lsm_cgroup+", "iter+", "iter.s+", "syscall", "xdp.frags/devmap",
    "xdp/devmap", "xdp.frags/cpumap", "xdp/cpumap", "xdp.frags", "xdp", "perf_event", "lwt_in", "lwt_out",
    "lwt_xmit", "lwt_seg6local", "sockops", "sk_skb/stream_parser", "sk_skb/stream_verdict", "sk_skb", "sk_msg",
    "lirc_mode2", "flow_dissector", "cgroup_skb/ingress", "cgroup_skb/egress", "cgroup/skb", "cgroup/sock_create",
    "cgroup/sock_release", "cgroup/sock", "cgroup/post_bind4", "cgroup/post_bind6", "cgroup/bind4",
    "cgroup/bind6", "cgroup/connect4", "cgroup/connect6", "cgroup/sendmsg4", "cgroup/sendmsg6",
    "cgroup/recvmsg4", "cgroup/recvmsg6", "cgroup/getpeername4", "cgroup/getpeername6", "cgroup/getsockname4",
    "cgroup/getsockname6", "cgroup/sysctl", "cgroup/getsockopt", "cgroup/setsockopt", "cgroup/dev",
    "struct_ops+", "sk_lookup",
)  # fmt: skip
# cilium/ebpf's section table (elf_sections.go, v0.12+): prefixes ("/" follows) and exact names.
_CILIUM_PREFIXES = (
    "socket", "sk_reuseport/migrate", "sk_reuseport", "kprobe", "uprobe", "kretprobe", "uretprobe", "tc",
    "classifier", "action", "tracepoint", "tp", "raw_tracepoint", "raw_tp", "raw_tracepoint.w", "raw_tp.w",
    "tp_btf", "fentry", "fmod_ret", "fexit", "fentry.s", "fmod_ret.s", "fexit.s", "freplace", "lsm", "lsm.s",
    "iter", "iter.s", "syscall", "xdp.frags_devmap", "xdp_devmap", "xdp.frags_cpumap", "xdp_cpumap",
    "xdp.frags", "xdp", "perf_event", "lwt_in", "lwt_out", "lwt_xmit", "lwt_seg6local", "sockops",
    "sk_skb/stream_parser", "sk_skb/stream_verdict", "sk_skb", "sk_msg", "lirc_mode2", "flow_dissector",
    "cgroup_skb/ingress", "cgroup_skb/egress", "cgroup/skb", "cgroup/sock_create", "cgroup/sock_release",
    "cgroup/sock", "cgroup/post_bind4", "cgroup/post_bind6", "cgroup/dev", "sockops", "cgroup/bind4",
    "cgroup/bind6", "cgroup/connect4", "cgroup/connect6", "cgroup/sendmsg4", "cgroup/sendmsg6",
    "cgroup/recvmsg4", "cgroup/recvmsg6", "cgroup/getpeername4", "cgroup/getpeername6", "cgroup/getsockname4",
    "cgroup/getsockname6", "cgroup/sysctl", "cgroup/getsockopt", "cgroup/setsockopt", "struct_ops",
    "sk_lookup", "kprobe.multi", "kretprobe.multi", "uprobe.multi", "uretprobe.multi", "netfilter",
    "tcx/ingress", "tcx/egress", "netkit/primary", "netkit/peer",
)  # fmt: skip
# GPL-only helpers a program may call (the kernel's gpl_only = true): the license question matters only then.
_GPL_ONLY_HELPERS = frozenset(
    {
        "bpf_probe_read", "bpf_probe_read_kernel", "bpf_probe_read_kernel_str", "bpf_probe_read_user",
        "bpf_probe_read_user_str", "bpf_probe_read_str", "bpf_trace_printk", "bpf_trace_vprintk",
        "bpf_get_current_task", "bpf_get_current_task_btf", "bpf_get_stackid", "bpf_get_stack",
        "bpf_perf_event_read", "bpf_perf_event_read_value", "bpf_send_signal", "bpf_send_signal_thread",
        "bpf_override_return", "bpf_probe_write_user", "bpf_get_func_ip", "bpf_get_attach_cookie",
        "bpf_get_func_ret", "bpf_get_func_arg", "bpf_get_func_arg_cnt", "bpf_snprintf_btf", "bpf_seq_printf",
        "bpf_seq_write", "bpf_seq_printf_btf", "bpf_d_path", "bpf_copy_from_user", "bpf_find_vma",
        "bpf_ktime_get_coarse_ns", "bpf_get_branch_snapshot", "bpf_skb_output", "bpf_xdp_output",
        "bpf_sys_bpf", "bpf_btf_find_by_name_kind", "bpf_sys_close", "bpf_kallsyms_lookup_name",
        "bpf_read_branch_records", "bpf_get_ns_current_pid_tgid", "bpf_task_storage_get",
        "bpf_task_storage_delete", "bpf_get_task_stack", "bpf_ima_inode_hash", "bpf_ima_file_hash",
    }
)  # fmt: skip
_CALL_OPCODE = 0x85
_BPF_PSEUDO_CALL = 1


@dataclass(frozen=True, slots=True)
class LoaderVerdict:
    """Whether ``loader`` opens the object, and what stands in the way (or is worth knowing)."""

    loader: str
    accepts: bool
    reasons: list[str] = field(default_factory=list)
    """Why not, when it does not; otherwise warnings (e.g. a missing license)."""

    def to_json(self) -> dict[str, Any]:
        return {"loader": self.loader, "accepts": self.accepts, "reasons": list(self.reasons)}


def _libbpf_knows(section: str) -> bool:
    for name in _LIBBPF_SECTIONS:
        if name.endswith("+"):
            stem = name[:-1]
            if section == stem or section.startswith(stem + "/"):
                return True
        elif section == name:
            return True
    return False


def _cilium_knows(section: str) -> bool:
    return any(section == name or section.startswith(name + "/") for name in _CILIUM_PREFIXES)


def _helpers_called(elf: Elf) -> set[int]:
    """The helper numbers the object's code calls (``call imm`` with src_reg 0)."""
    numbers: set[int] = set()
    for section in elf.sections:
        if not section.is_executable:
            continue
        code = elf.section_data(section)
        for offset in range(0, len(code) - 7, 8):
            opcode, registers, _, imm = struct.unpack_from("<BBhi", code, offset)
            if opcode == _CALL_OPCODE and registers >> 4 != _BPF_PSEUDO_CALL and imm > 0:
                numbers.add(imm)
    return numbers


def _gpl_only_calls(elf: Elf) -> list[str]:
    helpers = _native.HELPERS
    names = {"bpf_" + helpers[number] for number in _helpers_called(elf) if number < len(helpers)}
    return sorted(name for name in names if name in _GPL_ONLY_HELPERS)


def _license(elf: Elf) -> str | None:
    section = elf.section("license")
    if section is None:
        return None
    return elf.section_data(section).split(b"\0", 1)[0].decode("latin-1")


def _gpl_compatible(license_name: str) -> bool:
    # The kernel's license_is_gpl_compatible().
    return license_name in (
        "GPL",
        "GPL v2",
        "GPL and additional rights",
        "Dual BSD/GPL",
        "Dual MIT/GPL",
        "Dual MPL/GPL",
    )


def _legacy_maps(elf: Elf) -> list[tuple[str, bytes]]:
    section = elf.section("maps")
    if section is None:
        return []
    data = elf.section_data(section)
    found = []
    for symbol in elf.symbols_in(section):
        if symbol.name:
            found.append((symbol.name, data[symbol.value : symbol.value + max(symbol.size, 20)]))
    return sorted(found)


def compatibility(data: bytes) -> list[LoaderVerdict]:
    """One :class:`LoaderVerdict` per loader of :data:`LOADERS` for the BPF object ``data``.

    Raises :class:`ObjectError` when ``data`` is not a BPF ELF object.
    """
    elf = Elf(data)
    if not elf.header.is_bpf:
        raise ObjectError(f"not a BPF object (ELF machine {elf.header.machine}, expected 247 for BPF)")
    sections = sorted({s.name for s in elf.sections if s.is_executable and s.name != ".text" and s.size})
    legacy = _legacy_maps(elf)
    license_name = _license(elf)
    gpl_calls = _gpl_only_calls(elf)
    license_reason: str | None = None
    if gpl_calls and (license_name is None or not _gpl_compatible(license_name)):
        what = "no license section" if license_name is None else f"license {license_name!r} is not GPL-compatible"
        license_reason = (
            f"{what}, and the code calls GPL-only helpers ({', '.join(gpl_calls)}): the kernel refuses them under "
            "a non-GPL license (aya assumes GPL when there is none; this loader does not). Fix: "
            '#[no_mangle] #[link_section = "license"] pub static LICENSE: [u8; 4] = *b"GPL\\0";'
        )

    verdicts = [_pyaya_verdict(data, license_name)]

    libbpf: list[str] = []
    if legacy:
        names = ", ".join(name for name, _ in legacy)
        libbpf.append(
            f"legacy map definitions in the 'maps' section ({names}): libbpf 1.0 dropped them; declare them "
            "with #[btf_map]" + _aya_log_note(legacy)
        )
    btf = Btf.from_object(data)
    rings = [name for name, *_ in ring_value_members(btf)] if btf is not None else []
    if rings:
        libbpf.append(
            f"ring buffers with a sized record type and value_size 0 ({', '.join(rings)}; aya-ebpf 0.2's "
            'btf_maps::RingBuf<T, N>): libbpf refuses them ("conflicting value size"); `pyaya build` rewrites '
            "them as T[0]: build the object with pyaya"
        )
    unknown = [s for s in sections if not _libbpf_knows(s)]
    if unknown:
        libbpf.append(f"program sections libbpf does not know: {', '.join(unknown)}")
    if license_reason:
        libbpf.append(license_reason)
    verdicts.append(LoaderVerdict("libbpf", not libbpf, libbpf))

    cilium: list[str] = []
    unknown = [s for s in sections if not _cilium_knows(s)]
    if unknown:
        cilium.append(f"program sections cilium/ebpf does not know: {', '.join(unknown)}")
    if license_reason:
        cilium.append(license_reason)
    verdicts.append(LoaderVerdict("cilium/ebpf", not cilium, cilium))
    return verdicts


def _aya_log_note(legacy: list[tuple[str, bytes]]) -> str:
    if any(name == "AYA_LOGS" for name, _ in legacy):
        return (
            " (AYA_LOGS is aya-log-ebpf 0.2's own map, declared the legacy way: an object that logs with "
            "aya-log cannot be loaded by libbpf yet)"
        )
    return ""


def _pyaya_verdict(data: bytes, license_name: str | None) -> LoaderVerdict:
    """aya-obj's parse (behind pyaya's object pass) is the test: what ``pyaya inspect`` reads, a load reads."""
    try:
        _native.inspect_object(data)
    except ObjectError as error:
        return LoaderVerdict("pyaya", False, [str(error)])
    notes = [] if license_name is not None else ["no license section: aya loads it as GPL"]
    return LoaderVerdict("pyaya", True, notes)


def compatibility_of_file(path: str | Path) -> list[LoaderVerdict]:
    """:func:`compatibility` of a file; a missing or unreadable file raises :class:`ObjectError` naming it."""
    data = read_object_file(path)
    try:
        return compatibility(data)
    except ObjectError as error:
        raise ObjectError(f"{path}: {error}") from None
