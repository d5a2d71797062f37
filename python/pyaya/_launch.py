"""How ``pyaya run`` hands over to a project's ``main.py``, with nothing of the CLI (no Typer) in the way.

A plain run becomes ``main.py`` in the same process: one process holds the programs, so whatever kills ``pyaya run``
(a supervisor, the OOM killer, ``systemd`` with ``KillMode=process``) kills the holder, and its fds (links,
programs) go with it. The console script's fast path (:mod:`pyaya.cli._runfast`) runs ``main.py`` in its own
interpreter (:class:`MainScript`): a second interpreter's start-up and re-imports cost ~15 ms of the run's
start-up (issue 13), and ``main.py`` sees what ``python main.py --object OBJ ...`` would show it (see
:meth:`MainScript.run`). The Typer command (help, completion, tests through Click) still *replaces* the process
with ``main.py`` (:func:`exec_main`), so that no Click handler stands between main.py and the interpreter.

``--watch`` needs a parent that outlives each run: that parent supervises a child (:class:`Supervised`; two during a
restart's handoff, see :mod:`pyaya._handoff`), forwards SIGINT and SIGTERM to them, and names itself in
:data:`PARENT_ENV` so that each child's runtime asks the kernel for a SIGTERM should the parent die
(:func:`pyaya.runtime.watch_parent`).
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

from pyaya.errors import PyayaError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable, Mapping
    from types import CodeType, FrameType, TracebackType
    from typing import ClassVar, NoReturn

    from pyaya._handoff import Handoff

    Handler = Callable[[int, FrameType | None], object] | int | None

__all__ = ["PARENT_ENV", "MainScript", "Supervised", "exec_main", "main_argv"]

#: Set in the environment of a ``--watch`` child: the pid of the ``pyaya run`` that supervises it.
PARENT_ENV = "PYAYA_PARENT_PID"
#: How often :meth:`Supervised.pause` looks for signals while it waits for an fd.
_SIGNAL_SLICE = 0.05
#: ``siginfo.si_code`` of a signal the kernel generated (a terminal's Ctrl-C), not a process (``SI_USER``).
SI_KERNEL = 0x80


def main_argv(main: str | os.PathLike[str], object_path: str | os.PathLike[str], options: list[str]) -> list[str]:
    """The command line of ``main.py`` for ``object_path``: this interpreter, the script, ``--object``, options."""
    return [sys.executable, str(main), "--object", str(object_path), *options]


def exec_main(argv: list[str], cwd: str | os.PathLike[str]) -> None:
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


def _from_main(traceback: TracebackType | None, code: CodeType | None) -> TracebackType | None:
    """``traceback`` from main.py's module frame on (the frames ``python main.py`` would have); None if main.py
    never ran (its compilation failed, or a signal came before)."""
    while traceback is not None and traceback.tb_frame.f_code is not code:
        traceback = traceback.tb_next
    return traceback


class MainScript:
    """A project's ``main.py``, read, to run in this interpreter as ``python main.py ARGS...`` would run it.

    Made by the CLI while its errors are still its own (:func:`pyaya.cli._runcore.launch`: main.py unreadable is a
    ``pyaya run`` error), then :meth:`run` outside the CLI's error handling, so that whatever main.py raises reaches
    the interpreter as it would from ``python main.py``.
    """

    __slots__ = ("argv", "handlers", "mask", "path", "source")

    def __init__(
        self,
        argv: list[str],
        cwd: str | os.PathLike[str],
        handlers: Mapping[int, Handler],
        mask: set[int] | frozenset[int] = frozenset(),
    ) -> None:
        """``argv`` as from :func:`main_argv` (this interpreter, main.py, its arguments), run in ``cwd``; the CLI's
        own signal ``handlers`` are given back as ``{signum: what it replaced}``, and ``mask`` is the signal mask
        to restore (the CLI blocks its stop signals between its last step and :meth:`run`)."""
        self.argv = argv
        self.path = argv[1]
        self.handlers = dict(handlers)
        self.mask = mask
        try:
            with open(self.path, "rb") as file:
                self.source = file.read()
            os.chdir(cwd)
        except OSError as error:
            raise PyayaError(f"cannot run {self.path}: {error.strerror}") from None

    def run(self) -> NoReturn:
        """Run main.py as ``__main__``, never returning: its end, its ``SystemExit`` and anything it lets escape go
        to the interpreter as they would from ``python main.py``.

        Before main.py's first line: ``sys.argv`` is main.py and its arguments (``sys.orig_argv`` the command line
        ``python main.py ...`` would have had), ``sys.path[0]`` main.py's folder (unless ``-P``/``PYTHONSAFEPATH``),
        the cwd the project's root (:meth:`__init__`), ``__main__`` a fresh module with ``__file__``,
        ``__builtins__``, ``__loader__``, and the signals the CLI handled have their dispositions back (SIGINT:
        :func:`signal.default_int_handler`, SIGTERM: ``SIG_DFL``, as in a fresh interpreter), with the mask as it
        was. An exception main.py lets escape is printed by ``sys.excepthook`` (main.py's own, if it set one) from
        main.py's frame on, not the CLI's; the interpreter then exits with 1, or, for KeyboardInterrupt, the way a
        process SIGINT killed does, as ``python main.py`` would.
        """
        import builtins  # noqa: PLC0415 - built in, nothing to load

        code: CodeType | None = None
        try:
            for signum, handler in self.handlers.items():
                signal.signal(signum, signal.SIG_DFL if handler is None else handler)
            if signal.getsignal(signal.SIGINT) not in (signal.SIG_IGN, signal.default_int_handler):
                signal.signal(signal.SIGINT, signal.default_int_handler)
            module = type(sys)("__main__")
            module.__dict__.update(
                __file__=self.path,
                __cached__=None,
                __builtins__=builtins,
                # importlib.machinery's class, from the frozen module the interpreter already loaded (not ~1 ms
                # of importlib's package): the loader ``python main.py`` gives its __main__.
                __loader__=sys.modules["_frozen_importlib_external"].SourceFileLoader("__main__", self.path),
                __annotations__={},
            )
            sys.modules["__main__"] = module
            sys.argv = self.argv[1:]
            sys.orig_argv = list(self.argv)
            if not sys.flags.safe_path:
                sys.path[0] = os.path.dirname(self.path)
            signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)
            code = compile(self.source, self.path, "exec", dont_inherit=True)
            del self.source
            exec(code, module.__dict__)
        except SystemExit:
            raise
        except BaseException:
            hook = sys.excepthook

            def from_main(kind: type[BaseException], error: BaseException, traceback: TracebackType | None) -> None:
                trimmed = _from_main(traceback, code)
                hook(kind, error.with_traceback(trimmed), trimmed)

            sys.excepthook = from_main
            raise
        raise SystemExit(0)


class Supervised:
    """The ``main.py`` runs a ``--watch`` starts, so that SIGINT and SIGTERM sent to ``pyaya run`` alone stop them
    the way Ctrl-C does (maps printed, links detached), and they are never orphaned.

    Usually one child runs; during a handoff (:mod:`pyaya._handoff`) two do: the one tracing, and the new one
    that has loaded its object and waits to attach. :attr:`children` holds them, oldest first.

    :meth:`on_signal` is the parent's handler for both signals. While a child runs or starts, it raises nothing
    (an exception thrown into ``subprocess.Popen``'s own code can lose the child, raised inside ``Popen()`` before
    its pid is known, or its wait lock): it forwards SIGTERM, once, to each child, and the wait in progress goes
    on until they have printed their maps and exited. With no child, or during a build (:attr:`building`: cargo,
    not a supervised child, is what runs), the signal stops the parent as Ctrl-C does
    (:class:`KeyboardInterrupt`), once it has been forwarded.

    A Ctrl-C on the terminal reaches every process at once. The parent spends its time in :meth:`pause`, which
    takes the signals with their origin (``sigtimedwait``) and forwards only those a process sent; one that comes
    while the parent does something else is forwarded whatever its origin, and the child's
    :class:`pyaya.runtime.Session` ignores the repeat.
    """

    children: ClassVar[list[subprocess.Popen[bytes]]] = []
    starting = False
    building = False
    stop_requested = False
    _signalled: ClassVar[list[subprocess.Popen[bytes]]] = []
    _handled: frozenset[int] = frozenset()

    @classmethod
    def start(
        cls, argv: list[str], cwd: str | os.PathLike[str], *, handoff: Handoff | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in ``cwd`` as a supervised child, naming this process in :data:`PARENT_ENV` and, with
        ``handoff``, passing the child its end of that channel."""
        import subprocess  # noqa: PLC0415 - main.py imports this module for PARENT_ENV, and never starts a child

        environment = {**os.environ, PARENT_ENV: str(os.getpid())}
        fds: tuple[int, ...] = ()
        if handoff is not None:
            environment.update(handoff.environment())
            fds = (handoff.child_fd,)
        cls.starting = True
        try:
            child = subprocess.Popen(argv, cwd=cwd, env=environment, pass_fds=fds)
            cls.children = [*cls.children, child]
        finally:
            cls.starting = False
        if cls.stop_requested:  # the signal came while Popen() ran, before the child's pid was known
            cls.terminate(child)
        return child

    @classmethod
    def forget(cls, child: subprocess.Popen[bytes]) -> None:
        """``child`` has exited and been waited for: signals no longer go to it."""
        cls.children = [c for c in cls.children if c is not child]
        cls._signalled = [c for c in cls._signalled if c is not child]

    @classmethod
    def terminate(cls, child: subprocess.Popen[bytes]) -> None:
        """SIGTERM ``child``, once: it stops as after Ctrl-C."""
        if all(c is not child for c in cls._signalled) and child.returncode is None:
            cls._signalled = [*cls._signalled, child]
            # os.kill, not child.send_signal: that polls with waitpid, which a signal handler must not do while
            # the main thread may be inside the same Popen's wait. An exited child not reaped yet keeps its pid.
            os.kill(child.pid, signal.SIGTERM)

    @classmethod
    def on_signal(cls, signum: int, frame: FrameType | None) -> None:
        """Handler of SIGINT and SIGTERM in the supervising ``pyaya run``."""
        cls.stop_requested = True
        if cls.starting:
            return  # start() forwards it as soon as Popen() returns
        living = [child for child in cls.children if child.returncode is None]
        for child in living:
            cls.terminate(child)
        if not living or cls.building:
            raise KeyboardInterrupt

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
    def pause(cls, seconds: float, readable: int | None = None) -> bool:
        """Sleep ``seconds``, until SIGINT or SIGTERM comes, or (given ``readable``, an fd) until that fd is
        readable; True in that last case. A signal from the terminal (the children got it too) only marks the
        stop; one sent by a process goes to :meth:`on_signal` (forwarded to the running children)."""
        if not cls._handled:
            if readable is None:
                time.sleep(seconds)
                return False
            return bool(select.select([readable], [], [], seconds)[0])
        deadline = time.monotonic() + seconds
        ready = False
        while True:
            signal.pthread_sigmask(signal.SIG_BLOCK, cls._handled)
            try:
                left = max(0.0, deadline - time.monotonic())
                if readable is None:
                    info = signal.sigtimedwait(cls._handled, left)
                else:
                    # Signals stay blocked while select waits (they do not interrupt it): wait in short slices and
                    # take them between, so that a stop is seen within a slice while the fd is seen at once.
                    ready = bool(select.select([readable], [], [], min(left, _SIGNAL_SLICE))[0])
                    info = signal.sigtimedwait(cls._handled, 0)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, cls._handled)
            if info is not None:
                if info.si_code == SI_KERNEL:
                    cls.stop_requested = True
                else:
                    cls.on_signal(info.si_signo, None)
                return ready
            if ready or readable is None or time.monotonic() >= deadline:
                return ready
