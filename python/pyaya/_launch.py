"""How ``pyaya run`` hands over to a project's ``main.py``, with nothing of the CLI (no Typer) in the way.

A plain run *replaces* the ``pyaya run`` process with ``main.py`` (:func:`exec_main`): one process holds the
programs, so whatever kills ``pyaya run`` (a supervisor, the OOM killer, ``systemd`` with ``KillMode=process``) kills
the holder, and its fds (links, programs) go with it. ``--watch`` needs a parent that outlives each run: that
parent supervises a child (:class:`Supervised`), forwards SIGINT and SIGTERM to it, and names itself in
:data:`PARENT_ENV` so that the child's runtime asks the kernel for a SIGTERM should the parent die
(:func:`pyaya.runtime.watch_parent`).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from pyaya.errors import PyayaError

if TYPE_CHECKING:
    import subprocess

__all__ = ["PARENT_ENV", "Supervised", "exec_main", "main_argv"]

#: Set in the environment of a ``--watch`` child: the pid of the ``pyaya run`` that supervises it.
PARENT_ENV = "PYAYA_PARENT_PID"
#: ``siginfo.si_code`` of a signal the kernel generated (a terminal's Ctrl-C), not a process (``SI_USER``).
SI_KERNEL = 0x80


def main_argv(main: Path, object_path: Path, options: list[str]) -> list[str]:
    """The command line of ``main.py`` for ``object_path``: this interpreter, the script, ``--object``, options."""
    return [sys.executable, str(main), "--object", str(object_path), *options]


def exec_main(argv: list[str], cwd: Path) -> None:
    """Become ``argv`` (``main.py`` under this interpreter) in ``cwd``: same pid, same terminal, same parent.

    Buffered output is flushed first (exec drops it). Signal handlers revert to their defaults, as for any exec;
    ignored signals stay ignored. Returns only by raising :class:`PyayaError`.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.chdir(cwd)
        os.execv(argv[0], argv)
    except OSError as error:
        raise PyayaError(f"cannot run {argv[1]} with {argv[0]}: {error.strerror}") from None


class Supervised:
    """The ``main.py`` a ``--watch`` runs, so that SIGINT and SIGTERM sent to ``pyaya run`` alone stop it the way
    Ctrl-C does (maps printed, links detached), and it is never orphaned.

    :meth:`on_signal` is the parent's handler for both signals. While a child runs or starts, it raises nothing
    (an exception thrown into ``subprocess.Popen``'s own code can lose the child, raised inside ``Popen()`` before
    its pid is known, or its wait lock): it forwards SIGTERM, once, and the wait in progress goes on until the
    child has printed its maps and exited. With no child (a build, or waiting for a change), the signal stops the
    parent as Ctrl-C does (:class:`KeyboardInterrupt`).

    A Ctrl-C on the terminal reaches both processes at once. The parent spends its time in :meth:`pause`, which
    takes the signals with their origin (``sigtimedwait``) and forwards only those a process sent; one that comes
    while the parent does something else is forwarded whatever its origin, and the child's
    :class:`pyaya.runtime.Session` ignores the repeat.
    """

    child: subprocess.Popen[bytes] | None = None
    starting = False
    stop_requested = False
    _signalled: subprocess.Popen[bytes] | None = None
    _handled: frozenset[int] = frozenset()

    @classmethod
    def start(cls, argv: list[str], cwd: Path) -> subprocess.Popen[bytes]:
        """Start ``argv`` in ``cwd`` as the supervised child, naming this process in :data:`PARENT_ENV`."""
        import subprocess  # noqa: PLC0415 - main.py imports this module for PARENT_ENV, and never starts a child

        environment = {**os.environ, PARENT_ENV: str(os.getpid())}
        cls.starting = True
        try:
            cls.child = child = subprocess.Popen(argv, cwd=cwd, env=environment)
        finally:
            cls.starting = False
        if cls.stop_requested:  # the signal came while Popen() ran, before the child's pid was known
            cls.terminate(child)
        return child

    @classmethod
    def terminate(cls, child: subprocess.Popen[bytes]) -> None:
        """SIGTERM ``child``, once: it stops as after Ctrl-C."""
        if cls._signalled is not child and child.returncode is None:
            cls._signalled = child
            # os.kill, not child.send_signal: that polls with waitpid, which a signal handler must not do while
            # the main thread may be inside the same Popen's wait. An exited child not reaped yet keeps its pid.
            os.kill(child.pid, signal.SIGTERM)

    @classmethod
    def on_signal(cls, signum: int, frame: FrameType | None) -> None:
        """Handler of SIGINT and SIGTERM in the supervising ``pyaya run``."""
        cls.stop_requested = True
        if cls.starting:
            return  # start() forwards it as soon as Popen() returns
        child = cls.child
        if child is None or child.returncode is not None:
            raise KeyboardInterrupt
        cls.terminate(child)

    @classmethod
    def install(cls) -> None:
        """Make :meth:`on_signal` the handler of SIGINT and SIGTERM (SIGINT only if it is not ignored: a shell
        starts background jobs with SIGINT ignored, and Ctrl-C is then not meant for them)."""
        handled = {signal.SIGTERM}
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            handled.add(signal.SIGINT)
        for signum in handled:
            signal.signal(signum, cls.on_signal)
        cls._handled = frozenset(handled)

    @classmethod
    def pause(cls, seconds: float) -> None:
        """Sleep ``seconds``, or until SIGINT or SIGTERM comes: from the terminal (the child got it too), it only
        marks the stop; sent by a process, it goes to :meth:`on_signal` (forwarded to a running child)."""
        if not cls._handled:
            time.sleep(seconds)
            return
        signal.pthread_sigmask(signal.SIG_BLOCK, cls._handled)
        try:
            info = signal.sigtimedwait(cls._handled, seconds)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, cls._handled)
        if info is None:
            return
        if info.si_code == SI_KERNEL:
            cls.stop_requested = True
            return
        cls.on_signal(info.si_signo, None)
