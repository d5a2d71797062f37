"""The one exception hierarchy of pyaya.

Every error pyaya raises on purpose derives from :class:`PyayaError`. Where a built-in exception already names the
situation (a missing key, a missing permission), the pyaya error also derives from it, so ``except KeyError`` and
``except PermissionError`` keep working. The native loader raises these same classes.
"""

from __future__ import annotations

__all__ = [
    "BuildError",
    "ClosedError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "InvalidIndexError",
    "KernelFieldError",
    "LoadError",
    "MapError",
    "MetricsError",
    "NotFoundError",
    "ObjectError",
    "PackageError",
    "PermissionDeniedError",
    "ProgramError",
    "ProjectError",
    "PyayaError",
    "RecordError",
    "ScaffoldError",
    "ToolchainError",
    "UnsupportedError",
    "VerifierError",
    "VmError",
    "helper_refusal",
]


class PyayaError(Exception):
    """Base class of every error pyaya raises on purpose."""


class ClosedError(PyayaError, ValueError):
    """The object, program or map was used after it was closed."""


class InvalidArgumentError(PyayaError, ValueError):
    """An argument has a value the call cannot take (``mode="turbo"``, a negative size, a map that does not
    exist); the message lists the values it can. Also a ``ValueError``, so ``except ValueError`` keeps working."""


class InvalidArgumentTypeError(InvalidArgumentError, TypeError):
    """An argument has the wrong type (a path where a socket is wanted, a str where an int is); also a
    ``TypeError``."""


class InvalidIndexError(InvalidArgumentError, IndexError):
    """An index outside an array map (or a slot map); also an ``IndexError``, as sequences raise."""


class ObjectError(PyayaError, ValueError):
    """The file or bytes are not a BPF ELF object pyaya can parse."""


class RecordError(ObjectError):
    """One record of a stream does not decode as the stream's type (it is shorter than the type). Raised for that
    record alone: the stream's other records stay readable. ``data`` holds its bytes, ``stream`` the map's name."""

    data: bytes
    stream: str

    def __init__(self, message: str, *, data: bytes = b"", stream: str = "") -> None:
        super().__init__(message)
        self.data = data
        self.stream = stream


class LoadError(PyayaError):
    """Creating the object's maps or preparing its programs failed in the kernel."""

    errno: int | None

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class KernelFieldError(LoadError):
    """A kernel field the object declares (``pyaya_fields::kernel_field!``) cannot be filled from the kernel's BTF:
    a required field this kernel lacks, a bitfield, or a path that does not parse; the message names the global,
    the path and what was tried."""


class PermissionDeniedError(LoadError, PermissionError):
    """The kernel refused a bpf() operation for lack of privilege; the message names what is missing."""


class ProgramError(PyayaError):
    """Loading, attaching or detaching a program failed."""

    errno: int | None

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class VerifierError(ProgramError):
    """The kernel verifier rejected a program; ``log`` holds the verifier's own words."""

    log: str

    def __init__(self, message: str, log: str, errno: int | None = None) -> None:
        super().__init__(message, errno)
        self.log = log

    @property
    def hint(self) -> str | None:
        """What the log's refusal means when the verifier has a common, explainable reason (today: a helper
        this kernel lacks, or one this kind of program may not call here), else None."""
        return helper_refusal(self.log)

    def __str__(self) -> str:
        base = super().__str__()
        hint = self.hint
        if hint:
            base = f"{base}\n{hint}"
        return f"{base}\n--- verifier log ---\n{self.log}" if self.log else base


# The verifier's words for a helper call it refuses: the number is past its own enum ("invalid func"), or the
# program type's func_proto has no such helper ("unknown func" up to 5.x, "program of this type cannot use helper"
# since). Compiled by helper_refusal: re stays off the import path (tests/unit/test_import_cost.py).
_HELPER_UNKNOWN = r"invalid func (\S+)#(\d+)"
_HELPER_REFUSED = r"(?:unknown func|program of this type cannot use helper) (\S+)#(\d+)"


def helper_refusal(log: str) -> str | None:
    """Explains a verifier log that refused a helper call, naming the helper (the verifier says ``unknown`` for a
    helper newer than itself) and the kernel; None when the log shows no such refusal."""
    import os  # noqa: PLC0415
    import re  # noqa: PLC0415 - only a verifier log asks

    release = os.uname().release
    if match := re.search(_HELPER_UNKNOWN, log):
        name = _helper_name(match.group(1), int(match.group(2)))
        return (
            f"this kernel ({release}) has no helper {name} (#{match.group(2)}): a later kernel added it. Run on a "
            f"newer kernel or do without it; pyaya.features.helper_known({name!r}) probes it."
        )
    if match := re.search(_HELPER_REFUSED, log):
        name = _helper_name(match.group(1), int(match.group(2)))
        return (
            f"this kernel ({release}) does not let this type of program call {name} (#{match.group(2)}): it "
            f"allows it only in other program types, or a later kernel allows it here. "
            f"pyaya.features.helper_supported(<program type>, {name!r}) probes it."
        )
    return None


def _helper_name(written: str, number: int) -> str:
    if written != "unknown":
        return written
    from pyaya import _native  # noqa: PLC0415 - the verifier has no name for a helper newer than itself

    return f"bpf_{_native.HELPERS[number]}" if 0 < number < len(_native.HELPERS) else f"helper {number}"


class UnsupportedError(PyayaError, NotImplementedError):
    """This kernel (or pyaya) lacks a feature the operation needs; the message says which."""


class MapError(PyayaError):
    """A map operation failed (wrong key or value size, map full, bad map type)."""

    errno: int | None

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class NotFoundError(PyayaError, KeyError):
    """A program, map or other name does not exist; the message lists the names that do."""

    def __str__(self) -> str:
        # KeyError quotes its argument; a sentence reads better unquoted.
        return str(self.args[0]) if self.args else ""


class ToolchainError(PyayaError):
    """No toolchain able to build bpfel objects was found, or a part of it is broken."""


class BuildError(PyayaError):
    """Compiling or linking a project failed; the message carries the compiler's diagnostics."""


class ProjectError(PyayaError):
    """The folder is not a pyaya project or its pyaya.toml is invalid."""


class PackageError(PyayaError):
    """A bytecode image could not be written or pushed, or a project cannot be packaged for bpfman (a program type
    bpfman does not load, a missing attach point, a missing tool)."""


class MetricsError(PyayaError):
    """Maps cannot be served as Prometheus metrics: prometheus_client is missing, the address is unusable, or a
    ``[metrics]`` entry does not fit its map."""


class ScaffoldError(PyayaError):
    """A project could not be created: bad name, unknown template, or a non-empty target folder."""


class VmError(PyayaError):
    """A ``pyaya test`` guest could not run: QEMU or a kernel is missing, the kernel did not boot, the guest hung or
    stopped early; the message says which, and names the saved console log where there is one."""
