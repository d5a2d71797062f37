"""Runs inside a ``pyaya test`` guest: the job the host wrote into the share, with the caller's environment.

The guest's ``/init`` (a busybox shell script) chroots into the host's root (read-only 9p under a tmpfs overlay)
and runs this file with the host's own interpreter as ``python -I -S``. It imports nothing but ``os`` and ``sys``
(frozen into the interpreter), because every module read over 9p costs time under emulation. The job is three
files: ``argv`` and ``env`` (NUL-separated, so no shell ever parses an argument) and ``cwd``. It marks the moment
the command starts (``started``: the host measures the boot by it), runs the command with its output on the
guest's second serial port and writes its exit status (``status``) for the host.
"""

import os
import sys


def _read(share: str, name: str) -> bytes:
    with open(os.path.join(share, name), "rb") as file:
        return file.read()


def main() -> int:
    share = sys.argv[1]
    argv = _read(share, "argv").split(b"\0")[:-1]
    env = dict(item.split(b"=", 1) for item in _read(share, "env").split(b"\0")[:-1] if b"=" in item)
    cwd = _read(share, "cwd")
    try:
        os.chdir(cwd)
    except OSError as error:
        print(
            f"pyaya-vm: cannot enter {cwd.decode(errors='replace')}: {error.strerror}; starting in /", file=sys.stderr
        )
        os.chdir("/")
    with open(os.path.join(share, "started"), "wb"):
        pass
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvpe(argv[0], argv, env)
        except OSError as error:
            os.write(2, f"pyaya-vm: cannot run {argv[0].decode(errors='replace')}: {error.strerror}\n".encode())
        os._exit(127)
    _, wait_status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(wait_status)
    code = 128 - code if code < 0 else code
    with open(os.path.join(share, "status"), "w") as status:
        status.write(f"{code}\n")
        status.flush()
        os.fsync(status.fileno())
    return code


if __name__ == "__main__":
    sys.exit(main())
