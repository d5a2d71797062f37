"""Proves {{name}} works on this machine: messages between two connected TCP sockets in
the sockmap are counted, reported and redirected (or, with no peer listed, left to TCP), and the data always arrives.

Run with `sudo python -m pytest tests` from the project folder (the Python that has pyaya installed: its
`pyaya_project` fixture builds and runs the project, `bpf_object` loads it).
"""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pyaya
import pytest
from pyaya.testing import PyayaProject

PROJECT = Path(__file__).resolve().parent.parent


def load_main() -> ModuleType:
    """The project's main.py as a module, for its record mirrors and helpers."""
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
    loaded = bpf_object(object_path)
    loaded.programs["{{crate_name}}"].attach(loaded.maps["SOCKETS"])
    return loaded


def messages(bpf: pyaya.Ebpf) -> list[dict[str, object]]:
    return [main.event_fields(r) for r in bpf.maps["MESSAGES"].typed(main.MessageEvent).drain(timeout=1)]


def port(sock: socket.socket) -> int:
    result: int = sock.getsockname()[1]
    return result


@pytest.mark.parametrize("redirect", [True, False], ids=["redirect", "count-only"])
def test_messages_are_counted_reported_and_delivered(bpf: pyaya.Ebpf, redirect: bool) -> None:
    with main.connected_pair() as (client, server):
        main.share(bpf, [client, server], redirect=redirect)
        client.sendall(b"hello {{name}}")
        assert server.recv(64) == b"hello {{name}}"
        server.sendall(b"hi")
        assert client.recv(64) == b"hi"
        seen = messages(bpf)
        assert seen == [
            {"local_port": port(client), "remote_port": port(server), "size": 6 + len("{{name}}"),
             "redirected": redirect, "head": "hello {{name}}"[:16]},
            {"local_port": port(server), "remote_port": port(client), "size": 2, "redirected": redirect, "head": "hi"},
        ]  # fmt: skip
        routes = dict(main.Routes(bpf.maps["ROUTES"]).items())
        assert routes[f"{port(client)} > {port(server)}"] == {
            "messages": 1,
            "bytes": 6 + len("{{name}}"),
            "redirected": int(redirect),
        }


def test_sockets_outside_the_map_are_not_seen(bpf: pyaya.Ebpf) -> None:
    with main.connected_pair() as (client, server):
        client.sendall(b"unseen")
        assert server.recv(64) == b"unseen"
    assert messages(bpf) == []


def test_pyaya_run_pings_through_the_sockmap(pyaya_project: PyayaProject) -> None:
    with pyaya_project.run(duration=2.5) as run:
        result = run.result()
    heads = [event["head"] for event in result.events]
    assert heads[:4] == ["ping 1", "pong 1", "ping 2", "pong 2"]
    assert all(event["redirected"] for event in result.events)
    assert sum(entry["traffic"]["messages"] for entry in result.entries("ROUTES")) == len(heads)
