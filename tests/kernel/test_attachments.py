"""Netlink attachments (TC filters with a priority, XDP through netlink) are recorded, removed by the normal detach
together with the clsact qdisc pyaya added, and removed after a SIGKILL by the owner's guard or `pyaya cleanup`,
which never touches what pyaya did not make or what a live process holds."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pyaya import _native, attachments
from pyaya.loader import Ebpf, loaded_programs
from pyaya.testing import NetnsPair

LoadObject = Callable[..., Ebpf]

PROGRAM = "net_tc_drop_icmp"


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state folder of this test's own (the records of other runs are not its business)."""
    folder = tmp_path / "state"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    monkeypatch.setenv(attachments.STATE_DIR_ENV, str(folder))
    return folder


def _tc(*args: str) -> str:
    return subprocess.run(["tc", *args], capture_output=True, text=True, check=True).stdout


def _records(folder: Path) -> list[dict[str, object]]:
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def _loaded(name: str) -> bool:
    return name in {program for _, program, _ in loaded_programs()}


def _until(condition: object, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_netlink_filters_are_recorded_and_detach_removes_them_and_the_qdisc(
    fixtures_dir: Path, netns_pair: NetnsPair, state_dir: Path
) -> None:
    interface = netns_pair.host_interface
    with Ebpf.load_file(fixtures_dir / "net_tc") as bpf:
        program = bpf.programs[PROGRAM]
        ingress = program.attach(interface, "ingress", priority=7)
        assert ingress._native.netlink == {
            "kind": "tc",
            "ifindex": netns_pair.host_ifindex,
            "direction": "ingress",
            "priority": 7,
            "handle": 1,
            "classid": 0,
            "created_clsact": True,
        }
        egress = program.attach(interface, "egress", priority=3)
        records = _records(state_dir)
        assert [r["kind"] for r in records] == ["tc", "tc", "clsact"]
        first = next(r for r in records if r.get("direction") == "ingress")
        assert first["owner"]["pid"] == os.getpid()  # type: ignore[index]
        assert first["program"] == PROGRAM
        assert first["program_id"] == program.info()["id"]
        assert (first["ifindex"], first["interface"], first["priority"], first["handle"]) == (
            netns_pair.host_ifindex,
            interface,
            7,
            1,
        )
        assert first["pending"] is False
        assert "clsact" in _tc("qdisc", "show", "dev", interface)

        ingress.detach()
        assert [r["kind"] for r in _records(state_dir)] == ["tc", "clsact"]
        assert "clsact" in _tc("qdisc", "show", "dev", interface)  # the egress filter still uses it
        egress.detach()
        assert _records(state_dir) == []
        assert "clsact" not in _tc("qdisc", "show", "dev", interface)  # pyaya added it: gone with its last filter

        program.attach(interface, "ingress", priority=7)  # detached by close(), records removed the same way
    assert _records(state_dir) == []
    assert "clsact" not in _tc("qdisc", "show", "dev", interface)


def test_a_clsact_qdisc_pyaya_did_not_add_stays(fixtures_dir: Path, netns_pair: NetnsPair, state_dir: Path) -> None:
    interface = netns_pair.host_interface
    _tc("qdisc", "add", "dev", interface, "clsact")
    with Ebpf.load_file(fixtures_dir / "net_tc") as bpf:
        link = bpf.programs[PROGRAM].attach(interface, "ingress", priority=7)
        assert link._native.netlink is not None
        assert link._native.netlink["created_clsact"] is False
        assert [r["kind"] for r in _records(state_dir)] == ["tc"]
        link.detach()
    assert _records(state_dir) == []
    assert "clsact" in _tc("qdisc", "show", "dev", interface)


def test_tcx_links_are_not_recorded(fixtures_dir: Path, netns_pair: NetnsPair, state_dir: Path) -> None:
    from pyaya import features  # noqa: PLC0415

    if not features.probe("tcx").supported:
        pytest.skip(f"no tcx here: {features.probe('tcx').reason}")
    with Ebpf.load_file(fixtures_dir / "net_tc") as bpf:
        link = bpf.programs[PROGRAM].attach(netns_pair.host_interface, "ingress")
        assert link._native.netlink is None  # a bpf_link: it dies with the process, nothing to record
        assert _records(state_dir) == []


OWNER = """\
import json, os, sys, time
from pyaya.loader import Ebpf
bpf = Ebpf.load_file(sys.argv[1])
program = bpf.programs["net_tc_drop_icmp"]
program.attach(sys.argv[2], "ingress", priority=7)
print(json.dumps({"pid": os.getpid(), "program_id": program.info()["id"]}), flush=True)
time.sleep(300)
"""


class Owner:
    """A process that attaches a netlink filter to ``interface`` and waits to be killed."""

    def __init__(self, fixtures_dir: Path, interface: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", OWNER, str(fixtures_dir / "net_tc"), interface],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 60)
        assert ready, "the owner did not attach in time"
        started = json.loads(self.process.stdout.readline())
        self.program_id = int(started["program_id"])
        self.guard = _child_of(self.process.pid)

    def kill(self) -> None:
        """SIGKILL: no detach runs."""
        self.process.kill()
        self.process.wait()

    def kill_with_guard(self) -> None:
        """SIGKILL of the owner and its guard at once (as systemd's `KillMode=control-group` would)."""
        assert self.guard is not None
        os.kill(self.guard, signal.SIGKILL)
        self.kill()


def _child_of(pid: int) -> int | None:
    """The guard the owner started (its only child)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                return int(entry.name)
    return None


@pytest.fixture
def owner(fixtures_dir: Path, netns_pair: NetnsPair, state_dir: Path) -> Iterator[Owner]:
    started = Owner(fixtures_dir, netns_pair.host_interface)
    yield started
    if started.process.poll() is None:
        started.kill()
    if started.guard is not None and _state(started.guard) not in ("Z", "X"):
        os.kill(started.guard, signal.SIGKILL)


def _filters(interface: str) -> list[tuple[int, int, str, str, int]]:
    return _native.tc_filters(socket.if_nametoindex(interface), "ingress")


def _program_ids() -> set[int]:
    return {program_id for program_id, _, _ in loaded_programs()}


def test_the_guard_removes_what_a_killed_owner_left(owner: Owner, netns_pair: NetnsPair, state_dir: Path) -> None:
    interface = netns_pair.host_interface
    assert owner.guard is not None
    assert any(program_id == owner.program_id for *_, program_id in _filters(interface))
    owner.kill()
    assert _until(lambda: not _filters(interface) and owner.program_id not in _program_ids()), _filters(interface)
    assert _until(lambda: "clsact" not in _tc("qdisc", "show", "dev", interface))
    assert _until(lambda: _records(state_dir) == [])
    assert _until(lambda: _state(owner.guard) in ("Z", "X"))  # its work done, the guard is gone too


def _state(pid: int | None) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return "X"


def _cleanup(*args: str) -> list[dict[str, object]]:
    result = subprocess.run(
        [sys.executable, "-m", "pyaya", "cleanup", "--json", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def test_cleanup_dry_run_lists_then_cleanup_removes(fixtures_dir: Path, netns_pair: NetnsPair, state_dir: Path) -> None:
    interface = netns_pair.host_interface
    killed = Owner(fixtures_dir, interface)
    killed.kill_with_guard()
    listed = _cleanup("--dry-run")
    assert [(r["kind"], r["action"]) for r in listed] == [("tc", "would remove"), ("clsact", "would remove")]
    assert listed[0]["program_id"] == killed.program_id
    assert listed[0]["owner_pid"] == killed.process.pid
    assert listed[0]["where"] == "ingress pref 7 handle 0x1"
    assert any(program_id == killed.program_id for *_, program_id in _filters(interface))  # a dry run removes nothing

    removed = _cleanup()
    assert [(r["kind"], r["action"]) for r in removed] == [("tc", "removed"), ("clsact", "removed")]
    assert _filters(interface) == []
    assert "clsact" not in _tc("qdisc", "show", "dev", interface)
    # The filter held the program's last reference: the kernel frees it after an RCU grace period.
    assert _until(lambda: killed.program_id not in _program_ids())
    assert _records(state_dir) == []
    assert _cleanup() == []


def test_cleanup_never_touches_filters_pyaya_did_not_make(
    fixtures_dir: Path, netns_pair: NetnsPair, state_dir: Path, bpf_object: LoadObject
) -> None:
    interface = netns_pair.host_interface
    killed = Owner(fixtures_dir, interface)
    killed.kill_with_guard()
    # Someone replaces pyaya's filter with one of their own at the same priority and handle (classic BPF), and adds
    # an eBPF filter of another program.
    _tc("filter", "del", "dev", interface, "ingress", "pref", "7", "handle", "1", "bpf")
    _tc("filter", "add", "dev", interface, "ingress", "pref", "7", "handle", "1", "bpf", "bytecode", "1,6 0 0 0,")
    foreign = bpf_object(fixtures_dir / "net_tc").programs["net_tc_rewrite"]
    foreign.load()
    pin = Path(f"/sys/fs/bpf/pyaya-life-foreign-{os.getpid()}")
    foreign.pin(pin)
    try:
        _tc("filter", "add", "dev", interface, "ingress", "pref", "9", "bpf", "object-pinned", str(pin), "da")
    finally:
        foreign.unpin()
    # Its filter was its last reference: the kernel frees it after an RCU grace period.
    assert _until(lambda: killed.program_id not in _program_ids())
    results = _cleanup()
    assert [(r["kind"], r["action"]) for r in results] == [("tc", "gone"), ("clsact", "kept")]
    assert "pyaya did not make" in str(results[1]["detail"])
    left = {(priority, handle, program_id) for priority, handle, _, _, program_id in _filters(interface) if handle}
    assert left == {(7, 1, 0), (9, 1, int(foreign.info()["id"]))}
    assert "clsact" in _tc("qdisc", "show", "dev", interface)
    assert _records(state_dir) == []


def test_cleanup_leaves_live_owners_alone(owner: Owner, netns_pair: NetnsPair, state_dir: Path) -> None:
    assert _cleanup() == []
    assert _cleanup("--dry-run") == []
    assert any(program_id == owner.program_id for *_, program_id in _filters(netns_pair.host_interface))
    assert len(_records(state_dir)) == 2


XDP_OWNER = """\
import os, subprocess, sys
from pyaya import attachments
from pyaya.loader import Ebpf
bpf = Ebpf.load_file(sys.argv[1])
program = bpf.programs["net_xdp_filter"]
program.load()
program.pin(sys.argv[3])
# An XDP program set through netlink, as aya does where the kernel has no XDP bpf_link (before 5.9): made here
# with iproute2, since this kernel has them. The record is the one pyaya writes for such an attach.
subprocess.run(["ip", "link", "set", "dev", sys.argv[2], "xdpgeneric", "pinned", sys.argv[3]], check=True)
owner = attachments.Owner.this_process()
ifindex = __import__("socket").if_nametoindex(sys.argv[2])
record = attachments.Record(
    path=attachments.state_dir() / f"{owner.pid}-{owner.start}-xdp-{ifindex}-0.json", kind="xdp", owner=owner,
    netns=attachments._this_netns(), ifindex=ifindex, interface=sys.argv[2], program=program.name,
    program_id=int(program.info()["id"]), mode=2,
)
attachments._write(record.path, record)
program.unpin()
print(program.info()["id"], flush=True)
"""


def test_cleanup_removes_a_netlink_xdp_program_left_by_a_dead_owner(
    fixtures_dir: Path, netns_pair: NetnsPair, state_dir: Path
) -> None:
    interface = netns_pair.host_interface
    pin = Path(f"/sys/fs/bpf/pyaya-life-xdp-{os.getpid()}")
    made = subprocess.run(
        [sys.executable, "-c", XDP_OWNER, str(fixtures_dir / "net_xdp"), interface, str(pin)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    program_id = int(made.stdout)
    assert (2, program_id) in _native.xdp_programs(netns_pair.host_ifindex)  # outlived its owner
    listed = _cleanup("--dry-run")
    assert [(r["kind"], r["where"], r["action"]) for r in listed] == [("xdp", "skb", "would remove")]
    assert [(r["kind"], r["action"]) for r in _cleanup()] == [("xdp", "removed")]
    assert _native.xdp_programs(netns_pair.host_ifindex) == []
    assert _until(lambda: program_id not in _program_ids())
    assert _records(state_dir) == []


MID_ATTACH = """\
import json, os, sys, time
from pyaya import attachments
from pyaya.loader import Ebpf
bpf = Ebpf.load_file(sys.argv[1])
program = bpf.programs["net_tc_drop_icmp"]
program.load()
with attachments.recording(program, "tc", sys.argv[2], direction="ingress", priority=7) as attached:
    native = program._native.attach_sched_classifier(sys.argv[2], "ingress", 7)
    # Killed here: attached, with the record still pending (priority and handle unknown to it) and no guard yet.
    print(json.dumps({"program_id": program.info()["id"]}), flush=True)
    time.sleep(300)
"""


def test_a_kill_in_the_middle_of_an_attach_leaves_a_pending_record_cleanup_acts_on(
    fixtures_dir: Path, netns_pair: NetnsPair, state_dir: Path
) -> None:
    interface = netns_pair.host_interface
    owner = subprocess.Popen(
        [sys.executable, "-c", MID_ATTACH, str(fixtures_dir / "net_tc"), interface],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    ready, _, _ = select.select([owner.stdout], [], [], 60)
    assert ready, "the owner did not attach in time"
    program_id = int(json.loads(owner.stdout.readline())["program_id"])
    assert [(r["kind"], r.get("pending")) for r in _records(state_dir)] == [("tc", True), ("clsact", None)]
    owner.kill()
    owner.wait()
    listed = _cleanup("--dry-run")
    assert [(r["kind"], r["where"], r["action"]) for r in listed] == [
        ("tc", "ingress (being attached)", "would remove"),
        ("clsact", "clsact qdisc", "would remove"),
    ]
    assert [(r["kind"], r["action"]) for r in _cleanup()] == [("tc", "removed"), ("clsact", "removed")]
    assert _filters(interface) == []
    assert "clsact" not in _tc("qdisc", "show", "dev", interface)
    assert _until(lambda: program_id not in _program_ids())
    assert _records(state_dir) == []
