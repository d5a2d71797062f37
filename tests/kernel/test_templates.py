"""Every template in templates/, as a user gets it: scaffolded with its default options, built, and run for real.

Each template is built once per session (the ``built`` fixture of conftest.py; all builds share one cargo target
folder, so aya-ebpf and its dependencies compile once), then, where this kernel supports its program types, run
with ``pyaya run --json --duration`` while this test makes activity that any template reacts to (execs, files,
sysctls, socket options, UDP and TCP over lo, CPU time), and the generated project's own pytest suite is run. Where
the kernel cannot run a program type, the run skips with the reason probed from this kernel (``pyaya.features``);
the build is still checked."""

from __future__ import annotations

import json
import os
import pty
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _templates import KINDS, SYSTEM_PYTHON, TEMPLATES, Built, unsupported_reason
from pyaya.compat import compatibility_of_file
from pyaya.testing import Cgroup, PyayaProject

#: How long each template runs while the activity goes on; longer under emulation (a `pyaya test` guest), where one
#: round of activity (processes, a shell on a terminal, name lookups, packets) takes seconds.
RUN_SECONDS = 12 if os.environ.get("PYAYA_VM_KERNEL") else 4
BASH = Path("/bin/bash")


# -- activity every template reacts to ---------------------------------------------------------------------------


def type_into_bash() -> None:
    """A line typed into an interactive bash on a pseudo-terminal: what readline (uretprobe template) returns."""
    if not BASH.is_file():
        return
    controller, terminal = pty.openpty()
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TERM": "dumb", "HOME": "/"}
    with subprocess.Popen(
        [str(BASH), "--norc", "--noprofile", "-i"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
        env=environment,
    ) as bash:
        os.close(terminal)
        try:
            os.write(controller, b"true\nexit\n")
            bash.wait(timeout=10)
        finally:
            os.close(controller)


def make_activity(scratch: Path) -> None:
    """One round of everything the templates watch: processes, files, sysctls, name lookups, an interactive
    shell, socket options, packets, CPU time."""
    for _ in range(2):
        subprocess.run(["/bin/true"], check=True)
    subprocess.run(["/bin/sh", "-c", "echo activity > /dev/null"], check=True)
    socket.getaddrinfo("localhost", 80)  # libc getaddrinfo (uprobe template)
    if SYSTEM_PYTHON.exists():  # imports in the system Python: its import__find__load__start probe (usdt template)
        subprocess.run([str(SYSTEM_PYTHON), "-c", "import json"], check=False)
    type_into_bash()
    victim = scratch / "victim"
    victim.write_text("pyaya")
    victim.read_text()
    victim.unlink()
    Path("/proc/sys/kernel/ostype").read_text()
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(1)
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sender.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        for _ in range(3):
            sender.sendto(b"pyaya", receiver.getsockname())
            receiver.recv(16)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        with client, server:
            client.sendall(b"x" * 2000)
            server.recv(2000, socket.MSG_WAITALL)
            server.sendall(b"y" * 2000)
            client.recv(2000, socket.MSG_WAITALL)
    deadline = time.monotonic() + 0.05
    while time.monotonic() < deadline:  # CPU time for sampling (perf event) templates
        pass


@pytest.fixture
def activity() -> Iterator[Callable[[subprocess.Popen[str]], None]]:
    """Makes activity every 0.2 s until a runner exits, from a thread, so the test can wait on the runner."""
    threads: list[threading.Thread] = []
    scratch = Path(tempfile.mkdtemp(prefix="pyaya-activity-"))

    def start(runner: subprocess.Popen[str]) -> None:
        def loop() -> None:
            while runner.poll() is None:
                make_activity(scratch)
                time.sleep(0.2)

        thread = threading.Thread(target=loop, daemon=True)
        threads.append(thread)
        thread.start()

    yield start
    for thread in threads:
        thread.join(timeout=10)
    shutil.rmtree(scratch, ignore_errors=True)


# -- the tests ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_template_builds(kind: str, built: Callable[[str], Built]) -> None:
    result = built(kind)
    assert result.object_path.is_file()
    assert result.program_types, f"{kind}: the object has no program"
    for name in ("main.py", "pyaya.toml", "README.md"):
        assert (result.project / name).is_file()
    assert list((result.project / "tests").glob("test_*.py")), f"{kind}: the project has no tests"


@pytest.mark.smoke
@pytest.mark.parametrize("kind", TEMPLATES)
def test_template_runs_and_reports(
    kind: str,
    built: Callable[[str], Built],
    cargo_env: dict[str, str],
    activity: Callable[[subprocess.Popen[str]], None],
) -> None:
    result = built(kind)
    reason = unsupported_reason(result.program_types, kind)
    if reason:
        pytest.skip(reason)
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pyaya",
            "run",
            str(result.project),
            "--json",
            "--duration",
            str(RUN_SECONDS),
            "--no-build",
        ],
        env=cargo_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert runner.stderr is not None
    errors = []
    for line in runner.stderr:  # the runtime says it is running once everything is attached
        errors.append(line)
        if "is running" in line:
            break
    activity(runner)
    output, rest = runner.communicate(timeout=120)
    errors.append(rest)
    assert runner.returncode == 0, f"{kind}: pyaya run failed:\n{''.join(errors)}"
    records = [json.loads(line) for line in output.splitlines()]
    assert {record["kind"] for record in records} <= {"event", "log", "map", "lost"}
    events = [record for record in records if record["kind"] == "event"]
    # A map record lists "entries" (a table) or "buckets" (a histogram, with their counts).
    entries = [entry for record in records if record["kind"] == "map" for entry in record.get("entries", [])]
    buckets = [b for record in records if record["kind"] == "map" for b in record.get("buckets", []) if b["count"]]
    assert events or entries or buckets, f"{kind}: no event and no map entry in {RUN_SECONDS}s of activity:\n{output}"


@pytest.mark.parametrize("kind", TEMPLATES)
def test_generated_project_tests_pass(kind: str, built: Callable[[str], Built], cargo_env: dict[str, str]) -> None:
    result = built(kind)
    reason = unsupported_reason(result.program_types, kind)
    if reason:
        pytest.skip(reason)
    suite = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(result.project / "tests")],
        cwd=result.project,
        env=cargo_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert suite.returncode == 0, f"{kind}: the generated tests failed:\n{suite.stdout}\n{suite.stderr}"
    assert " passed" in suite.stdout


#: Run by `unshare --uts`, so in a UTS namespace of its own: joins the cgroup whose cgroup.procs is argv[1], sets the
#: hostname argv[2], says "ready", and once told runs the program argv[3] as its child, printing that child's pid.
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


def _comm(pid: int | str) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


@pytest.mark.smoke
def test_exec_context_reports_the_real_parents_cgroup_and_hostname(
    built: Callable[[str], Built], cargo_env: dict[str, str], cgroup: Cgroup, tmp_path: Path
) -> None:
    """The exec_context template's event for an exec this test makes: the program runs as the child of a process in
    a new cgroup (the `cgroup` fixture) and a new UTS namespace with a hostname set here, that process a child of
    this one. Its pid, parent, grandparent, their commands, uid, cgroup (name and id) and hostname must be the real
    ones; the count per cgroup has it too."""
    result = built("exec_context")
    reason = unsupported_reason(result.program_types, "exec_context")
    if reason:
        pytest.skip(reason)
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed: apt-get install util-linux")
    probe = tmp_path / f"exec-context-probe-{os.getpid()}"
    shutil.copy("/bin/true", probe)
    hostname = f"pyaya-uts-{os.getpid()}"
    assert hostname != socket.gethostname()
    argv = [unshare, "--uts", sys.executable, "-c", IN_CONTEXT, str(cgroup.path / "cgroup.procs"), hostname, str(probe)]
    project = PyayaProject(result.project, env=cargo_env)
    with project.run("--no-build", duration=RUN_SECONDS) as run:
        with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as parent:
            assert parent.stdout is not None
            assert parent.stdout.readline() == "ready\n"
            parent_comm = _comm(parent.pid)  # unshare has become Python by now
            output, _ = parent.communicate("go\n", timeout=60)
        assert parent.returncode == 0
        finished = run.result()
    [event] = finished.events_where(filename=str(probe))
    assert (event["pid"], event["ppid"], event["gppid"]) == (int(output), parent.pid, os.getpid())
    assert (event["comm"], event["pcomm"], event["gpcomm"]) == (probe.name[:15], parent_comm, _comm("self"))
    assert event["uid"] == os.getuid()
    assert (event["cgroup"], event["cgroup_id"]) == (cgroup.path.name, cgroup.path.stat().st_ino)
    assert event["nodename"] == hostname
    assert {"cgroup": cgroup.path.name, "execs": 1} in finished.entries("CGROUP_EXECS")


def test_run_refuses_pid_with_the_templates_reason(built: Callable[[str], Built], cargo_env: dict[str, str]) -> None:
    """An XDP program runs in no process: `pyaya run -p` and main.py's own -p refuse it with pyaya.toml's reason
    (`[run] unsupported.pid`), before anything is loaded."""
    from pyaya.loader import loaded_programs  # noqa: PLC0415
    from pyaya.project import load_project  # noqa: PLC0415

    result = built("xdp")
    reason = load_project(result.project / "pyaya.toml").unsupported_run_options["pid"]
    assert "softirq" in reason
    runs = {
        "pyaya run": [sys.executable, "-m", "pyaya", "run", str(result.project), "--no-build", "-p", str(os.getpid())],
        "main.py": [sys.executable, str(result.project / "main.py"), "--object", str(result.object_path), "-p", "1"],
    }
    for how, argv in runs.items():
        refused = subprocess.run(argv, env=cargo_env, capture_output=True, text=True, timeout=60, check=False)
        assert refused.returncode == 2, f"{how}: {refused.stderr}"
        assert reason in refused.stderr, how
        assert "is running" not in refused.stderr
    assert not set(result.programs) & {program for _, program, _ in loaded_programs()}


#: Templates libbpf cannot load yet, and the reason `pyaya inspect --compat` must give for each.
LIBBPF_REFUSES = {"tracepoint": "AYA_LOGS"}  # aya-log-ebpf 0.2 declares its map in the legacy `maps` section


@pytest.mark.parametrize("kind", KINDS)
def test_template_object_loads_with_libbpf_as_inspect_compat_says(kind: str, built: Callable[[str], Built]) -> None:
    """`bpftool prog loadall` (libbpf) on every template's object: what `pyaya inspect --compat` predicts happens.
    Every template but those in LIBBPF_REFUSES loads; those fail for the reason the report names."""
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        pytest.skip("bpftool is not installed (apt-get install bpftool; make setup installs it)")
    result = built(kind)
    verdict = {v.loader: v for v in compatibility_of_file(result.object_path)}["libbpf"]
    pins = Path("/sys/fs/bpf") / f"pyaya-compat-{kind}-{os.getpid()}"
    pins.mkdir()
    try:
        run = subprocess.run(
            [bpftool, "prog", "loadall", str(result.object_path), str(pins)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        shutil.rmtree(pins, ignore_errors=True)
    opened = "failed to open object file" not in run.stderr
    if kind in LIBBPF_REFUSES:
        assert not verdict.accepts
        assert any(LIBBPF_REFUSES[kind] in reason for reason in verdict.reasons), verdict.reasons
        assert run.returncode != 0, f"{kind}: libbpf loaded what the report says it refuses"
        return
    assert verdict.accepts, f"{kind}: {verdict.reasons}"
    assert opened, f"{kind}: libbpf could not open the object, though the report says it can:\n{run.stderr}"
    if run.returncode != 0:
        reason = unsupported_reason(result.program_types, kind)
        if reason is not None:
            pytest.skip(f"libbpf opened the object; this kernel cannot load it: {reason}")
        pytest.fail(f"{kind}: libbpf opened the object but could not load it:\n{run.stderr[-3000:]}")
