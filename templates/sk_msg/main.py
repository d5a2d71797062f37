"""User space of {{name}}: demonstrates an sk_msg program on a sockmap with a pair of
connected TCP sockets on lo. Both go into the SOCKETS map; every second the client sends "ping N" and the server answers
"pong N". The program reports each message and hands it straight to the other socket's receive queue (no TCP/IP stack in
between); at exit the messages and bytes per route are printed.

    sudo pyaya run                                   # until Ctrl-C
    sudo pyaya run --json --duration 5
    sudo python main.py --no-redirect --ping-interval 0.2 # count only: messages then go through TCP as usual

It also runs on its own:

    sudo python main.py --object target/bpfel-unknown-none/release/{{name}}
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import socket
import time
from collections.abc import Iterator, Sequence
from typing import Any

from pyaya.runtime import Column, RunOptions, Session, parse_options


class MessageEvent(ctypes.Structure):
    """Mirrors `{{crate_name}}_common::MessageEvent` (keep the two in step)."""

    _fields_ = [
        ("local_port", ctypes.c_uint16),
        ("remote_port", ctypes.c_uint16),
        ("size", ctypes.c_uint32),
        ("redirected", ctypes.c_uint32),
        ("head_len", ctypes.c_uint32),
        ("head", ctypes.c_uint8 * 16),
    ]


class RouteStats(ctypes.Structure):
    """Mirrors `{{crate_name}}_common::RouteStats`."""

    _fields_ = [("messages", ctypes.c_uint64), ("bytes", ctypes.c_uint64), ("redirected", ctypes.c_uint64)]


def event_fields(event: MessageEvent) -> dict[str, Any]:
    return {
        "local_port": event.local_port,
        "remote_port": event.remote_port,
        "size": event.size,
        "redirected": bool(event.redirected),
        "head": bytes(event.head[: event.head_len]).decode(errors="backslashreplace"),
    }


class Routes:
    """ROUTES as `("40000 > 8080", {"messages", "bytes", "redirected"})` pairs, for `show_map_at_exit`."""

    def __init__(self, routes: Any) -> None:
        self.routes = routes.typed(int, RouteStats)
        self.name = routes.name

    def items(self) -> list[tuple[str, dict[str, int]]]:
        return [
            (f"{key >> 16} > {key & 0xFFFF}", {"messages": s.messages, "bytes": s.bytes, "redirected": s.redirected})
            for key, s in sorted(self.routes.items())
        ]


@contextlib.contextmanager
def connected_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A client and a server TCP socket connected to each other over lo."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    with client, server:
        yield client, server


def share(bpf: Any, sockets: Sequence[socket.socket], redirect: bool) -> None:
    """Puts `sockets` in SOCKETS (slot = position) and, to short-cut their messages, their ports in PEERS."""
    sock_map = bpf.maps["SOCKETS"]
    peers = bpf.maps["PEERS"]
    for slot, sock in enumerate(sockets):
        sock_map[slot] = sock
        if redirect:
            peers[sock.getsockname()[1]] = slot


def ping_pong(client: socket.socket, server: socket.socket, number: int) -> None:
    """One round trip; the answers are read, so the sockets' queues never fill."""
    ping = f"ping {number}".encode()
    client.sendall(ping)
    server.recv(len(ping), socket.MSG_WAITALL)
    pong = f"pong {number}".encode()
    server.sendall(pong)
    client.recv(len(pong), socket.MSG_WAITALL)


#: What --help says first: the opening of this file's docstring.
DESCRIPTION = (__doc__ or "").partition("\n\n")[0].replace("\n", " ")


def parse_arguments() -> tuple[argparse.Namespace, RunOptions]:
    """This project's options and the ones every pyaya project has (--object, --json, -p PID, interval, ...), in
    one parser: --help lists them all."""
    parser = argparse.ArgumentParser(prog="main.py", description=DESCRIPTION, allow_abbrev=False)
    parser.add_argument("--ping-interval", type=float, default=1.0, help="seconds between pings (default: %(default)s)")
    parser.add_argument("--no-redirect", action="store_true", help="count messages but let them go through TCP")
    options = parse_options(parser=parser)
    return options.args, options


def main() -> None:
    columns = [
        Column("local_port", 6, "FROM", ">"),
        Column("remote_port", 6, "TO", ">"),
        Column("size", 6, align=">"),
        Column("redirected", 11),
        Column("head"),
    ]
    arguments, options = parse_arguments()
    with Session("{{name}}", options=options, columns=columns) as session:
        bpf = session.load()
        messages = bpf.maps["MESSAGES"].typed(MessageEvent)
        # The program goes on the map first: sockets added to a sockmap take the programs attached to it then.
        bpf.programs["{{crate_name}}"].attach(bpf.maps["SOCKETS"])
        session.show_map_at_exit(Routes(bpf.maps["ROUTES"]), key="route", value="traffic", sort_by_value=False)  # type: ignore[arg-type]
        with connected_pair() as (client, server):
            share(bpf, [client, server], redirect=not arguments.no_redirect)
            session.announce()
            number = 0
            next_ping = time.monotonic()
            while True:
                left = session.remaining()
                if left is not None and left <= 0:
                    break
                if time.monotonic() >= next_ping:
                    number += 1
                    ping_pong(client, server, number)
                    next_ping = time.monotonic() + arguments.ping_interval
                wait = max(0.0, next_ping - time.monotonic())
                for record in messages.drain(None, wait if left is None else min(wait, left)):
                    session.event("MESSAGES", event_fields(record))
                session.flush(messages)  # reports what MESSAGES lost (MESSAGES_LOST), writes the batch out
            for record in messages.drain():
                session.event("MESSAGES", event_fields(record))
            session.flush(messages)


if __name__ == "__main__":
    main()
