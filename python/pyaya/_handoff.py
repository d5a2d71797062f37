"""The handoff between two runs of ``main.py`` under ``pyaya run --watch``: both ends of its channel.

On a change, ``--watch`` rebuilds while the running ``main.py`` keeps tracing, then starts the new one with a
channel: a Unix socket pair whose child end is passed as the fd named in :data:`HANDOFF_ENV`. The new run's
:class:`pyaya.runtime.Session` loads its object (everything before attaching that can fail: the object's maps and
BTF, the verifier on each program) and says ``loaded``, or ``failed MESSAGE``; then it waits for ``go``. The
parent answers ``loaded`` by stopping the old run (its links detached as the process exits) and saying ``go``;
only then does the new run attach. A failure, or an exit before ``loaded``, leaves the old run tracing.

The protocol is one message per line, UTF-8: ``loaded``, ``failed MESSAGE`` (child to parent), ``go`` (parent to
child). A parent with nothing to stop says ``go`` at once, before the child asks.
"""

from __future__ import annotations

import contextlib
import os
import stat

from pyaya.errors import PyayaError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

__all__ = ["GO_TIMEOUT", "HANDOFF_ENV", "ChildEnd", "Handoff", "claim", "claimed"]

#: Set in the environment of a ``--watch`` child: the fd of its end of the handoff channel.
HANDOFF_ENV = "PYAYA_HANDOFF_FD"
#: How long a loaded child waits for ``go``: the parent stops the old run first, killing it after 10 s.
GO_TIMEOUT = 60.0

LOADED = "loaded"
FAILED = "failed"
GO = "go"
_MAX_LINE = 4096
_MAX_DETAIL = 300  # a failure's first line is what the parent shows; the child prints the whole error itself


def _one_line(text: str) -> str:
    return " ".join(text.split())[:_MAX_DETAIL]


class Handoff:
    """The parent's end: made before the child starts; :attr:`child_fd` goes to the child (``pass_fds``) and
    :meth:`started` closes the parent's copy of it once the child has it."""

    def __init__(self) -> None:
        import socket  # noqa: PLC0415 - ~7 ms: only a `pyaya run --watch` makes a channel

        self._socket, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._child: socket.socket | None = child
        self._buffer = b""
        self._socket.setblocking(False)

    @property
    def child_fd(self) -> int:
        """The fd to pass to the child, named in its :data:`HANDOFF_ENV`."""
        if self._child is None:
            raise PyayaError("the handoff channel's child end was already handed over")
        return self._child.fileno()

    def environment(self) -> dict[str, str]:
        """What to add to the child's environment."""
        return {HANDOFF_ENV: str(self.child_fd)}

    def started(self) -> None:
        """The child has its end: close ours, so that its exit reads as the end of the channel."""
        if self._child is not None:
            self._child.close()
            self._child = None

    def fileno(self) -> int:
        """The parent's end, readable when the child said something or is gone."""
        return self._socket.fileno()

    def receive(self) -> tuple[str, str] | None:
        """The child's next message as ``(word, detail)``: ``("loaded", "")``, ``("failed", MESSAGE)``, or
        ``("gone", "")`` once the child's end is closed (it exited) with nothing more said. None: nothing yet."""
        while b"\n" not in self._buffer:
            try:
                data = self._socket.recv(_MAX_LINE)
            except BlockingIOError:
                return None
            except OSError:
                data = b""
            if not data:
                self._buffer = b""
                return ("gone", "")
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        word, _, detail = line.decode("utf-8", errors="replace").partition(" ")
        return (word, detail)

    def go(self) -> None:
        """Tell the child to attach; a child already gone is not an error (its exit is seen as such)."""
        with contextlib.suppress(OSError):
            self._socket.send(f"{GO}\n".encode())

    def close(self) -> None:
        """Close both ends held here."""
        self.started()
        self._socket.close()


class ChildEnd:
    """The child's end, from :data:`HANDOFF_ENV` (see :func:`claim`)."""

    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock

    def _send(self, line: str) -> None:
        try:
            self._socket.sendall(f"{line}\n".encode())
        except OSError:
            raise PyayaError("the `pyaya run --watch` that started this is gone (its handoff channel closed)") from None

    def loaded(self, *, timeout: float = GO_TIMEOUT) -> None:
        """Say ``loaded`` and wait until the parent says ``go`` (it has stopped the run this one replaces).
        Raises :class:`PyayaError` when the parent goes away or stays silent for ``timeout`` seconds."""
        self._send(LOADED)
        self._socket.settimeout(timeout)
        received = b""
        while b"\n" not in received:
            try:
                data = self._socket.recv(64)
            except TimeoutError:
                raise PyayaError(
                    f"the `pyaya run --watch` that started this did not say go within {timeout:g}s; "
                    "stopping (run main.py again, or restart `pyaya run --watch`)"
                ) from None
            if not data:
                raise PyayaError("the `pyaya run --watch` that started this is gone (its handoff channel closed)")
            received += data
        word = received.partition(b"\n")[0].decode("utf-8", errors="replace")
        if word != GO:
            raise PyayaError(f"unexpected handoff message {word!r} from `pyaya run --watch` (expected {GO!r})")

    def failed(self, message: str) -> None:
        """Say ``failed MESSAGE`` (the load failed: the parent keeps the old run); a parent gone is ignored."""
        with contextlib.suppress(PyayaError):
            self._send(f"{FAILED} {_one_line(message) or 'no message'}")

    def close(self) -> None:
        """Close the channel."""
        self._socket.close()


class _Claimed:
    """The channel :func:`claim` took, until :func:`claimed` hands it out."""

    end: ChildEnd | None = None


def claim() -> None:
    """Take the channel named in :data:`HANDOFF_ENV`, once: the variable is removed and the fd made
    non-inheritable, so that processes this one starts neither see it nor keep the channel open after this one
    exits. An fd that is not a socket is ignored (a stale variable, not a ``--watch`` child)."""
    value = os.environ.pop(HANDOFF_ENV, None)
    if value is None or _Claimed.end is not None:
        return
    try:
        fd = int(value)
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            return
        os.set_inheritable(fd, False)
        import socket  # noqa: PLC0415 - ~7 ms: only a `pyaya run --watch` child has a channel to take

        sock = socket.socket(fileno=fd)
    except (ValueError, OSError):
        return
    sock.setblocking(True)
    _Claimed.end = ChildEnd(sock)


def claimed() -> ChildEnd | None:
    """The channel :func:`claim` took, handed out once (the first load of the run reports on it)."""
    end, _Claimed.end = _Claimed.end, None
    return end
