"""The guard of a process holding netlink attachments: waits for that process to end, then removes what its
records say it left attached (see :mod:`pyaya.attachments`).

Started by :func:`pyaya.attachments.recording` with the first netlink attachment of a process, as
``python -c ... PID START BOOT_ID STATE_DIR``, in a process group of its own, with a pipe as standard input whose
write end only the owner holds (close-on-exec, so programs the owner starts do not keep it). The owner never writes
to it: end-of-file comes when the owner is gone, however it ended. A normal exit has detached everything and
removed the records, so the guard finds nothing to do; after a SIGKILL it removes the filters and programs left.

It ignores SIGINT, SIGTERM and SIGHUP: a Ctrl-C, a ``kill`` of the process group or a closing terminal are for the
owner, which then detaches on its own; the guard's work starts when the owner has ended.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

__all__ = ["main"]

#: How often to look whether the owner has ended, once its pipe is closed (normally it already has).
POLL_SECONDS = 0.2


def main(argv: list[str] | None = None) -> None:
    """``PID START BOOT_ID STATE_DIR``: the owner (see :class:`pyaya.attachments.Owner`) and its records' folder."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    pid, start, boot, directory = argv if argv is not None else sys.argv[1:]
    while sys.stdin.buffer.read(65536):
        pass  # the owner never writes: this returns at end-of-file, when its end of the pipe is closed
    from pyaya.attachments import Owner, cleanup  # noqa: PLC0415 - only once there is work to do

    owner = Owner(int(pid), int(start), boot)
    while owner.alive():  # the pipe closes as the owner exits; a zombie counts as gone
        time.sleep(POLL_SECONDS)
    try:
        for leftover in cleanup(owner=owner, directory=Path(directory)):
            if leftover.action == "removed":
                print(f"pyaya: removed {leftover.describe()}, which exited without detaching", file=sys.stderr)
    except Exception as error:  # the guard's last word: never a traceback on someone's terminal
        print(f"pyaya: cleaning up after pid {pid} failed: {error}; run `sudo pyaya cleanup`", file=sys.stderr)


if __name__ == "__main__":
    main()
