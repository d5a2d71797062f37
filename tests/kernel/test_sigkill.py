"""The SIGKILL matrix: whatever kills what, a run of a template leaves nothing attached.

Every template runs under ``pyaya run`` in a network namespace of the test's own (its interfaces are the only ones
the network templates touch), through each attach path of the network ones (the classifier as a tcx link and as a
netlink filter with a priority, XDP). Each run is killed with SIGKILL once it says it is running: the one process of
a plain run; with ``--watch``, the supervising ``pyaya run`` alone (its child then gets SIGTERM from the kernel and
stops the way Ctrl-C stops it), ``main.py`` alone, and both at once (the process group; the guard process of a
netlink attachment is in a group of its own). Then no program of the run is loaded (``pyaya.loaded_programs``, by
the template's program names), no bpf_link holds one (``pyaya.loaded_links``), and the namespace's interfaces have no
TC filter, clsact qdisc or XDP program (netlink queries in that namespace), and no record is left.

Templates whose programs cannot run here skip with the reason probed from this kernel.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _templates import KINDS, Built, unsupported_reason
from pyaya import _native, attachments
from pyaya.loader import loaded_links, loaded_programs


@dataclass(frozen=True)
class Variant:
    """A template, and the `pyaya run` arguments that pick its attach path."""

    kind: str
    args: tuple[str, ...] = ()


#: Every template with its defaults, and the classifier as a netlink filter too (tcx by default on this kernel).
VARIANTS = [pytest.param(Variant(kind), id=kind) for kind in KINDS] + [
    pytest.param(Variant("classifier", ("--args", "--priority 1")), id="classifier-netlink")
]
#: Who gets the SIGKILL.
KILLS = ("plain", "watch-parent", "watch-main", "watch-both")
START_TIMEOUT = 120.0
CLEAN_TIMEOUT = 30.0
_names = itertools.count()


@dataclass(frozen=True)
class Netns:
    name: str
    path: Path


@pytest.fixture
def netns(requires_root: None) -> Iterator[Netns]:
    """A network namespace of this test's own, its loopback up; deleted afterwards with everything in it."""
    name = f"pyaya-life-{os.getpid()}-{next(_names)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield Netns(name, Path("/run/netns") / name)
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


@dataclass(frozen=True)
class Scratch:
    """Where one run writes: its output files, its records (a state folder of its own), and its environment."""

    folder: Path
    state: Path
    env: dict[str, str]


@pytest.fixture
def scratch(tmp_path: Path, cargo_env: dict[str, str]) -> Scratch:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    return Scratch(tmp_path, state, {**cargo_env, attachments.STATE_DIR_ENV: str(state)})


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return "X"


def _gone(pid: int) -> bool:
    return _state(pid) in ("Z", "X")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


class Run:
    """``pyaya run`` of a built template inside ``netns``, output in files (a full pipe would stall a stop)."""

    def __init__(self, built: Built, netns: Netns, env: dict[str, str], folder: Path, *args: str) -> None:
        self.out = folder / "stdout"
        self.err = folder / "stderr"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(
                [
                    "nsenter",
                    f"--net={netns.path}",
                    "--",
                    sys.executable,
                    "-m",
                    "pyaya",
                    "run",
                    str(built.project),
                    "--no-build",
                    *args,
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own process group: "both" is a kill of the group
            )

    def errors(self) -> str:
        return self.err.read_text(errors="replace")

    def wait_running(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while "is running" not in self.errors():
            assert self.process.poll() is None, f"pyaya run exited with {self.process.returncode}:\n{self.errors()}"
            assert time.monotonic() < deadline, f"pyaya run did not start in {START_TIMEOUT:g}s:\n{self.errors()}"
            time.sleep(0.1)

    def main_pid(self, watch: bool) -> int:
        if not watch:
            return self.process.pid  # main.py replaced pyaya run
        children = _children(self.process.pid)
        assert len(children) == 1, children
        return children[0]


def _what_is_left(netns: Netns, names: set[str], first_id: int, state: Path) -> list[str]:
    """Everything of the run still in the kernel, described; empty when nothing is."""
    left = []
    programs = {pid: name for pid, name, _ in loaded_programs() if name in names and pid >= first_id}
    left += [f"program {name} (id {pid})" for pid, name in programs.items()]
    left += [f"{kind} link {lid} of program {prog}" for lid, prog, kind in loaded_links() if prog in programs]
    for ifindex in _interfaces(netns):
        for direction in ("ingress", "egress"):
            filters = _native.tc_filters(ifindex, direction, netns.path)
            left += [f"TC {direction} filter {p}:{h:#x} {kind} {name} on {ifindex}" for p, h, kind, name, _ in filters]
        if _native.clsact_present(ifindex, netns.path):
            left.append(f"clsact qdisc on {ifindex}")
        xdp = _native.xdp_programs(ifindex, netns.path)
        left += [f"XDP program {pid} (mode {mode}) on {ifindex}" for mode, pid in xdp]
    left += [f"record {path.name}" for path in state.glob("*.json")]
    return left


def _interfaces(netns: Netns) -> list[int]:
    listed = subprocess.run(
        ["ip", "-n", netns.name, "-o", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    return [int(line.split(":", 1)[0]) for line in listed.splitlines() if line.strip()]


def _until_clean(what_is_left: Callable[[], list[str]]) -> list[str]:
    deadline = time.monotonic() + CLEAN_TIMEOUT
    left = what_is_left()
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = what_is_left()
    return left


@pytest.mark.parametrize("kill", KILLS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_sigkill_leaves_nothing_attached(
    variant: Variant, kill: str, built: Callable[[str], Built], netns: Netns, scratch: Scratch
) -> None:
    result = built(variant.kind)
    reason = unsupported_reason(result.program_types, variant.kind)
    if reason:
        pytest.skip(reason)
    state = scratch.state
    names = {name[:15] for name in result.programs}  # the kernel keeps 15 bytes of a program's name
    first_id = max((pid for pid, _, _ in loaded_programs()), default=0) + 1
    watch = kill != "plain"
    run = Run(result, netns, scratch.env, scratch.folder, *(("--watch",) if watch else ()), *variant.args)
    others: list[int] = []
    try:
        run.wait_running()
        main = run.main_pid(watch)
        others = [main]
        before = _what_is_left(netns, names, first_id, state)
        assert any(item.startswith("program ") for item in before), f"{variant.kind}: the run loaded nothing: {before}"
        if kill in ("plain", "watch-parent"):
            os.kill(run.process.pid, signal.SIGKILL)
        elif kill == "watch-main":
            os.kill(main, signal.SIGKILL)
        else:
            os.killpg(run.process.pid, signal.SIGKILL)
        left = _until_clean(lambda: _what_is_left(netns, names, first_id, state))
        assert left == [], f"{variant}, SIGKILL of {kill}: left {left}\n{run.errors()}"
        deadline = time.monotonic() + CLEAN_TIMEOUT
        while not _gone(main) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(main), f"{variant}, SIGKILL of {kill}: main.py (pid {main}) still runs"
        if kill == "watch-main":  # the parent keeps watching, with nothing attached; stop it as a user would
            assert run.process.poll() is None, run.errors()
            run.process.send_signal(signal.SIGTERM)
            run.process.wait(timeout=CLEAN_TIMEOUT)
            assert "stopped watching" in run.errors()
        else:
            run.process.wait(timeout=CLEAN_TIMEOUT)
        if kill == "watch-parent":  # the kernel's SIGTERM stopped main.py as Ctrl-C would
            assert "Traceback" not in run.errors(), run.errors()
    finally:
        for pid in [run.process.pid, *others]:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
        run.process.wait(timeout=CLEAN_TIMEOUT)
