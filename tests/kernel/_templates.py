"""Every template in templates/, scaffolded with its default options and built once per test session, and what
this kernel can run of them. Shared by the template tests and the SIGKILL matrix (fixtures in conftest.py).

All builds share one cargo target folder kept in the checkout's ``target/`` (gitignored), so aya-ebpf and the other
dependencies compile once per checkout, not once per session; cargo locks that folder, so builds run one after
another (each is itself parallel).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyaya import features
from pyaya.scaffold import list_templates

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = sorted(template.kind for template in list_templates())
#: The cargo target folder of every template build (dependencies stay compiled between sessions).
TARGET_DIR = REPO / "target" / "kernel-test-templates"


@dataclass(frozen=True)
class Built:
    """A scaffolded and built project."""

    project: Path
    object_path: Path
    program_types: frozenset[str]
    programs: tuple[str, ...]
    """Its programs' names in the object."""


def pyaya(
    *args: str, cwd: Path | None = None, env: dict[str, str], timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyaya", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def build_template(kind: str, root: Path, env: dict[str, str]) -> Built:
    """``pyaya new tpl-KIND --template KIND`` in ``root``, then ``pyaya build`` and ``pyaya inspect``."""
    name = f"tpl-{kind.replace('_', '-')}"
    created = pyaya("new", name, "--template", kind, cwd=root, env=env)
    assert created.returncode == 0, created.stderr
    project = root / name
    build = pyaya("build", str(project), env=env)
    assert build.returncode == 0, f"{kind}: pyaya build failed:\n{build.stderr}"
    object_path = Path(build.stdout.strip().splitlines()[-1])
    assert object_path == Path(env["CARGO_TARGET_DIR"]) / "bpfel-unknown-none" / "release" / name
    inspected = pyaya("inspect", str(object_path), "--json", env=env)
    assert inspected.returncode == 0, inspected.stderr
    programs = json.loads(inspected.stdout)["programs"]
    types = frozenset(program["type"] for program in programs)
    return Built(project, object_path, types, tuple(program["name"] for program in programs))


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


def unsupported_reason(program_types: frozenset[str]) -> str | None:
    """Why this machine cannot run programs of these types (from a probe), or None when it can."""
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
