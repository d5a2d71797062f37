"""Proves {{name}} works on this machine: a process this test puts in a cgroup of its
own opens a TCP connection to itself over lo, exchanges data and closes it; the program reports both ends as established
and closed.

Run with `sudo python -m pytest tests` from the project folder (the Python that has pyaya installed: its
`pyaya_project` fixture builds and runs the project, `bpf_object` loads it).
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pyaya
import pytest
from pyaya.kernel import cgroup2_mount
from pyaya.testing import Cgroup, PyayaProject

PROJECT = Path(__file__).resolve().parent.parent


def load_main() -> ModuleType:
    """The project's main.py as a module, for its record mirror and helpers."""
    spec = importlib.util.spec_from_file_location("{{crate_name}}_main", PROJECT / "main.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


main = load_main()


@pytest.fixture(scope="module")
def object_path(pyaya_project: PyayaProject) -> Path:
    return pyaya_project.build()


@pytest.fixture
def bpf(bpf_object: Callable[..., pyaya.Ebpf], object_path: Path) -> pyaya.Ebpf:
    return bpf_object(object_path)


# Run by a process in the test's cgroup: a TCP connection to itself over lo (to the address in argv[1]), 3000 bytes
# each way, then closed.
TCP_CONVERSATION = """
import json, socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
listener = socket.create_server((sys.argv[1], 0), family=family)
client = socket.create_connection(listener.getsockname()[:2])
server, _ = listener.accept()
for _ in range(3):
    client.sendall(b"x" * 1000)
    server.recv(1000, socket.MSG_WAITALL)
    server.sendall(b"y" * 1000)
    client.recv(1000, socket.MSG_WAITALL)
ports = {"client": client.getsockname()[1], "server": listener.getsockname()[1]}
client.close()
server.close()
print(json.dumps(ports))
"""


def conversation_in(path: Path, host: str = "127.0.0.1") -> dict[str, int]:
    """Runs TCP_CONVERSATION with `host` in a child process moved into the cgroup at `path` before it starts."""

    def enter_cgroup() -> None:
        (path / "cgroup.procs").write_text("0")  # "0": the writing process itself

    child = subprocess.run(
        [sys.executable, "-c", TCP_CONVERSATION, host],
        capture_output=True,
        text=True,
        preexec_fn=enter_cgroup,
        check=True,
    )
    time.sleep(0.5)  # the last FIN/ACK exchange (and so the CLOSE state) may follow the process's exit
    ports: dict[str, int] = json.loads(child.stdout)
    return ports


def ipv6_loopback() -> bool:
    try:
        with socket.create_server(("::1", 0), family=socket.AF_INET6):
            return True
    except OSError:
        return False


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        pytest.param("::1", marks=pytest.mark.skipif(not ipv6_loopback(), reason="lo has no IPv6 address (::1)")),
    ],
)
def test_reports_both_ends_established_and_closed(bpf: pyaya.Ebpf, cgroup: Cgroup, host: str) -> None:
    with bpf.programs["{{crate_name}}"].attach(str(cgroup.path)):
        ports = conversation_in(cgroup.path, host)
    events = [main.event_fields(r) for r in bpf.maps["EVENTS"].typed(main.TcpEvent).drain(timeout=1)]
    client = [e for e in events if e["local_port"] == ports["client"]]
    server = [e for e in events if e["remote_port"] == ports["client"]]
    assert [e["event"] for e in client] == ["connect", "close"]
    assert [e["event"] for e in server] == ["accept", "close"]
    assert {e["remote_port"] for e in client} == {ports["server"]}
    assert {(e["local"], e["remote"]) for e in client + server} == {(host, host)}
    client_closed, server_closed = client[1], server[1]
    assert client_closed["bytes_acked"] >= 3000
    assert client_closed["bytes_received"] >= 3000
    assert server_closed["bytes_received"] >= 3000
    assert client_closed["srtt_us"] > 0
    histogram = dict(bpf.maps["RTT_HISTOGRAM"])
    assert sum(histogram.values()) >= 3
    # Slot n holds RTTs from 2^(n-1) to 2^n - 1 microseconds; over lo they are well under a second.
    assert 0 < min(histogram) <= max(histogram) < 20


def test_pyaya_run_reports_connections_in_the_root_cgroup(pyaya_project: PyayaProject) -> None:
    with pyaya_project.run(duration=3) as run:
        ports = conversation_in(cgroup2_mount())
        result = run.result()
    assert [event["event"] for event in result.events_where(local_port=ports["client"])] == ["connect", "close"]
    histogram = result.maps["RTT_HISTOGRAM"]
    assert histogram["histogram"] == "log2"
    assert sum(bucket["count"] for bucket in histogram["buckets"]) >= 3
