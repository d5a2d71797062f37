"""Every template in templates/, and what this kernel can run of them: shared by the template tests and the SIGKILL
matrix (the ``built`` fixture of conftest.py scaffolds and builds each template once per session)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Built
from pyaya import features
from pyaya.scaffold import list_templates

__all__ = ["CGROUP_TYPES", "KINDS", "NEEDS", "PROBES", "SYSTEM_PYTHON", "TEMPLATES", "Built", "unsupported_reason"]

#: What each template's programs need beyond what every supported kernel has (pyaya.features.requirement names).
NEEDS: dict[str, tuple[str, ...]] = {
    "kprobe": ("kprobes",),
    "kretprobe": ("kprobes",),
    "fentry": ("fentry",),
    "fexit": ("fexit", "helper:bpf_get_func_ret"),  # the return value whatever the arity (Linux 5.17)
    "lsm": ("lsm",),
    "tp_btf": ("tp_btf",),
}
KINDS = sorted(template.kind for template in list_templates())
#: The templates to run: each marked with what its programs need from the kernel.
TEMPLATES = [
    pytest.param(kind, marks=[pytest.mark.needs(*NEEDS[kind])] if kind in NEEDS else [], id=kind) for kind in KINDS
]

#: Program types (as `pyaya inspect` names them) whose support this kernel may lack, and the probe that says so
#: (the others are in every kernel pyaya supports: tracepoints, uprobes, XDP, TC, socket, cgroup, sockmap programs).
PROBES: dict[str, Callable[[], features.Probe]] = {
    "KProbe": features.kprobes_supported,
    "KRetProbe": features.kprobes_supported,
    "FEntry": features.fentry_supported,
    "FExit": features.fexit_supported,
    "BtfTracePoint": features.tp_btf_supported,
    "Lsm": features.lsm_supported,
    "LsmCgroup": features.lsm_supported,
}

#: Program types attached to a cgroup (v2): their templates attach to the root of the cgroup v2 mount.
CGROUP_TYPES = frozenset(
    {"CgroupSkb", "CgroupSock", "CgroupSockAddr", "CgroupSockopt", "CgroupSysctl", "CgroupDevice", "SockOps"}
)


#: The system Python, whose USDT probes the usdt template traces by default.
SYSTEM_PYTHON = Path("/usr/bin/python3")


def _usdt_template_reason() -> str | None:
    from pyaya import usdt  # noqa: PLC0415

    supported = features.usdt_supported()
    if not supported.ok:
        return f"USDT probes cannot be attached on this kernel: {supported.reason}"
    if not SYSTEM_PYTHON.exists() or not usdt.probes(SYSTEM_PYTHON):
        return f"the usdt template's default target {SYSTEM_PYTHON} has no USDT probes here (built without dtrace)"
    return None


def _helper_reason(program_type: str, helper: str) -> Callable[[], str | None]:
    def reason() -> str | None:
        probe = features.helper_supported(program_type, helper)
        return None if probe.ok else f"{program_type} programs cannot call {helper} on this kernel: {probe.reason}"

    return reason


#: Templates that need more than their program types: what this machine lacks for them, probed. (Not test marks:
#: every kernel but 5.10 has these, so they need no run in the feature guest.)
TEMPLATE_NEEDS: dict[str, Callable[[], str | None]] = {
    "usdt": _usdt_template_reason,
    # Both report the pid of the process whose call they see, which these program types may not ask on 5.10.
    "cgroup_sockopt": _helper_reason("CgroupSockopt", "bpf_get_current_pid_tgid"),
    "cgroup_sysctl": _helper_reason("CgroupSysctl", "bpf_get_current_pid_tgid"),
}


def unsupported_reason(program_types: frozenset[str], kind: str = "") -> str | None:
    """Why this machine cannot run the template ``kind`` with programs of these types (from a probe), or None
    when it can."""
    if kind in TEMPLATE_NEEDS and (reason := TEMPLATE_NEEDS[kind]()):
        return reason
    for need in NEEDS.get(kind, ()):
        probe = features.requirement(need)
        if not probe.ok:
            return f"the {kind} template needs {need}: {probe.reason}"
    if program_types & CGROUP_TYPES and not any(fs_type == "cgroup2" for _, _, fs_type in features.mounts()):
        return "no cgroup v2 hierarchy is mounted (/proc/self/mounts): mount -t cgroup2 none /sys/fs/cgroup"
    for program_type in sorted(program_types):
        probe = PROBES.get(program_type)
        if probe is None:
            continue
        ok, reason = probe()
        if not ok:
            return f"{program_type} programs cannot run on this kernel: {reason}"
    return None
