"""Proves {{name}} works on this machine: it builds, loads, and reports
the execs this test makes itself with their real context (a parent and grandparent, a cgroup and a UTS hostname the
test made); -p PID and --cgroup keep only what they name.

Run with `sudo python -m pytest tests` from the project folder (the Python that has pyaya installed: its
`pyaya_project` and `cgroup` fixtures build and run the project, and make a cgroup v2 folder for the test).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pyaya.testing import Cgroup, PyayaProject

#: Run by `unshare --uts`, so in a UTS namespace of its own: joins the cgroup whose cgroup.procs is argv[1], sets
#: the hostname argv[2], says "ready", and once told runs the program argv[3] (its child), printing that child's pid.
IN_CONTEXT = """\
import os, socket, subprocess, sys
procs, hostname, program = sys.argv[1:]
with open(procs, "w") as joined:
    joined.write(str(os.getpid()) + "\\n")
socket.sethostname(hostname)
print("ready", flush=True)
sys.stdin.readline()
with subprocess.Popen([program]) as child:
    pass
print(child.pid, flush=True)
"""


def probe_program(folder: Path) -> Path:
    """A uniquely named executable, so its events can't be confused with anything else running."""
    probe = folder / f"{{crate_name}}-probe-{os.getpid()}"
    shutil.copy("/bin/true", probe)
    return probe


def comm_of(pid: int | str) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def run_in_context(cgroup: Cgroup, hostname: str, program: Path) -> tuple[int, int, str]:
    """Runs ``program`` as the child of a process in ``cgroup`` and in a new UTS namespace named ``hostname``, itself
    a child of this process; returns the program's pid, its parent's pid and its parent's command name."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed: apt-get install util-linux")
    argv = [unshare, "--uts", sys.executable, "-c", IN_CONTEXT, str(cgroup.path / "cgroup.procs"), hostname]
    with subprocess.Popen([*argv, str(program)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as parent:
        assert parent.stdout is not None
        assert parent.stdout.readline() == "ready\n"
        parent_comm = comm_of(parent.pid)  # unshare has become Python by now
        output, _ = parent.communicate("go\n", timeout=30)
    assert parent.returncode == 0
    return int(output), parent.pid, parent_comm


def test_builds(pyaya_project: PyayaProject) -> None:
    assert pyaya_project.build().is_file()


def test_each_exec_is_reported_with_its_context(pyaya_project: PyayaProject, cgroup: Cgroup, tmp_path: Path) -> None:
    probe = probe_program(tmp_path)
    hostname = f"{{crate_name}}-{os.getpid()}"[:64]
    assert hostname != socket.gethostname()
    with pyaya_project.run(duration=4) as run:
        pid, parent, parent_comm = run_in_context(cgroup, hostname, probe)
        result = run.result()
    [event] = result.events_where(filename=str(probe))
    assert (event["pid"], event["ppid"], event["gppid"]) == (pid, parent, os.getpid())
    assert (event["comm"], event["pcomm"], event["gpcomm"]) == (probe.name[:15], parent_comm, comm_of("self"))
    assert event["uid"] == os.getuid()
    assert (event["cgroup"], event["cgroup_id"]) == (cgroup.path.name, cgroup.path.stat().st_ino)
    assert event["nodename"] == hostname
    # Counted in the kernel per cgroup name: the test's cgroup saw that one exec.
    assert {"cgroup": cgroup.path.name, "execs": 1} in result.entries("CGROUP_EXECS")


def test_cgroup_filter_drops_other_cgroups_in_the_kernel(
    pyaya_project: PyayaProject, cgroup: Cgroup, tmp_path: Path
) -> None:
    probe = probe_program(tmp_path)
    with pyaya_project.run("--", "--cgroup", str(cgroup.path), duration=4) as run:
        subprocess.run([str(probe)], check=True)  # in this process's cgroup: dropped
        cgroup.run(str(probe))  # joins the cgroup, then execs
        result = run.result()
    assert [event["cgroup"] for event in result.events_where(filename=str(probe))] == [cgroup.path.name]
    assert {event["cgroup_id"] for event in result.events} == {cgroup.path.stat().st_ino}
    assert result.entries("CGROUP_EXECS") == [{"cgroup": cgroup.path.name, "execs": 1}]


def test_pid_filter_keeps_the_process_and_its_children(pyaya_project: PyayaProject, tmp_path: Path) -> None:
    probe = probe_program(tmp_path)
    with pyaya_project.run("-p", str(os.getpid()), duration=4) as run:
        with subprocess.Popen([str(probe)]) as child:  # a child of this process: kept
            pass
        # A grandchild (the shell runs it, then `true`, so it does not exec the probe itself): dropped.
        subprocess.run(["/bin/sh", "-c", '"$0"; true', str(probe)], check=True)
        result = run.result()
    assert [(event["pid"], event["ppid"]) for event in result.events_where(filename=str(probe))] == [
        (child.pid, os.getpid())
    ]
    assert all(os.getpid() in (event["pid"], event["ppid"]) for event in result.events)
