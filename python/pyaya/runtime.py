"""What a project's ``main.py`` needs to be a good command: options, output and a clean stop.

``pyaya run`` runs ``main.py --object PATH [--json] [--duration SECONDS] [-p PID] [interval [count]]``; the same
script runs directly with ``sudo python main.py --object target/bpfel-unknown-none/release/NAME``. A
:class:`Session` parses those options (BCC's conventions: ``-p PID``, then ``interval`` and ``count``), loads the
object, prints events as aligned columns (bold headings and colored logs on a terminal, plain text when piped;
JSON lines with ``--json``, as design section 4 specifies: one object per line with a ``"kind"`` of ``event``,
``log``, ``map`` or ``lost``), forwards kernel-side logs, runs periodic callbacks (:meth:`Session.every`), stops after
``--duration``, after ``count`` intervals, or on Ctrl-C/SIGTERM, and prints the chosen maps and histograms at exit.
A verifier rejection is shown trimmed to what matters, with the Rust source line where the object's BTF says it.

:func:`print_log2_hist` and :func:`print_linear_hist` print histograms exactly as BCC's ``print_log2_hist`` and
``print_linear_hist`` do.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import time
from collections.abc import Mapping, MutableMapping

from pyaya import _handoff, _native, loader
from pyaya._color import color_enabled
from pyaya._launch import PARENT_ENV
from pyaya._record import FrozenFields, frozen
from pyaya._typing import cast
from pyaya.errors import MetricsError, PyayaError, RecordError, VerifierError
from pyaya.loader import Ebpf
from pyaya.maps import Map
from pyaya.types import Record

# Start-up (issue 13): argparse, json, logging, pathlib, re and dataclasses are imported where a path needs them,
# not here; tests/unit/test_import_cost.py holds a template's main.py to that.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    import re
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from pathlib import Path
    from types import FrameType, TracebackType
    from typing import Any, TextIO

    from pyaya.maps import HashMap, PerfEventArray, RingBuf
    from pyaya.project import FleetSettings, MetricSpec

__all__ = [
    "Column",
    "PinnedObject",
    "RunOptions",
    "Session",
    "linear_buckets",
    "log2_buckets",
    "parse_options",
    "print_linear_hist",
    "print_log2_hist",
    "verifier_summary",
    "watch_parent",
]


class _PathText(str):
    """A path as the command line gave it, which :class:`RunOptions` makes a :class:`~pathlib.Path` of on first
    use: parsing a plain run's options does not import pathlib."""

    __slots__ = ()


class _ParsedArgs(dict):  # type: ignore[type-arg]
    """What :func:`_parse_fast` read, by ``dest``: :attr:`RunOptions.args` makes the ``argparse.Namespace``
    argparse would have made of it on first use (paths as Paths), importing argparse only then."""

    __slots__ = ()


_NO_ARGS: Any = _ParsedArgs()  # ``args`` not given: an empty Namespace (made on first use)


def _as_path(value: Any) -> Any:
    if type(value) is _PathText:
        from pathlib import Path  # noqa: PLC0415 - a path the user sees, made when first seen

        return Path(value)
    return value


class RunOptions(FrozenFields):
    """The options every project's ``main.py`` takes: ``object_path``, ``json``, ``duration``, ``verbose``,
    ``extra`` (the arguments left over without ``parse_options(parser=...)``), and

    * ``pid``: ``-p/--pid``, the process to trace (the program decides how to use it, e.g. a read-only global);
    * ``interval``: positional ``interval``, seconds between periodic outputs (see :meth:`Session.every`);
    * ``count``: positional ``count``, stop after this many intervals;
    * ``args``: everything parsed, the project's own options (``parse_options(parser=...)``) included;
    * ``metrics``: ``--metrics HOST:PORT``, serve the ``[metrics]`` maps of ``pyaya.toml`` there (see
      :meth:`Session.metrics`);
    * ``pinned_maps``: ``--pinned-maps DIR``, read the maps another loader (bpfman) pinned in DIR instead of loading
      the object.

    Frozen, compared and shown as the dataclass it was (written out: importing dataclasses costs ~14 ms at start-up).
    """

    __slots__ = (
        "_args",
        "_object_path",
        "_pinned_maps",
        "count",
        "duration",
        "extra",
        "interval",
        "json",
        "metrics",
        "pid",
        "verbose",
    )
    __match_args__ = (
        "object_path",
        "json",
        "duration",
        "verbose",
        "extra",
        "pid",
        "interval",
        "count",
        "args",
        "metrics",
        "pinned_maps",
    )
    _record_fields = __match_args__

    if TYPE_CHECKING:
        # What was given, or what _parse_fast read (a _PathText, a _ParsedArgs) until first use.
        _object_path: Path | _PathText
        _pinned_maps: Path | _PathText | None
        _args: argparse.Namespace | _ParsedArgs
        json: bool
        duration: float | None
        verbose: bool
        extra: Sequence[str]
        pid: int | None
        interval: float | None
        count: int | None
        metrics: str | None

    def __init__(  # noqa: PLR0917 - positional or by name, as the dataclass it was took them
        self,
        object_path: Path,
        json: bool = False,
        duration: float | None = None,
        verbose: bool = False,
        extra: Sequence[str] = (),
        pid: int | None = None,
        interval: float | None = None,
        count: int | None = None,
        args: argparse.Namespace = _NO_ARGS,
        metrics: str | None = None,
        pinned_maps: Path | None = None,
    ) -> None:
        store = object.__setattr__
        store(self, "_object_path", object_path)
        store(self, "json", json)
        store(self, "duration", duration)
        store(self, "verbose", verbose)
        store(self, "extra", extra)
        store(self, "pid", pid)
        store(self, "interval", interval)
        store(self, "count", count)
        store(self, "_args", args)
        store(self, "metrics", metrics)
        store(self, "_pinned_maps", pinned_maps)

    def _path_in(self, slot: str) -> Any:
        """The value of ``slot``, a Path from then on where the fast parser left text."""
        path = getattr(self, slot)
        if isinstance(path, _PathText):
            path = _as_path(path)
            object.__setattr__(self, slot, path)
        return path

    @property
    def object_path(self) -> Path:
        path: Path = self._path_in("_object_path")
        return path

    @property
    def pinned_maps(self) -> Path | None:
        path: Path | None = self._path_in("_pinned_maps")
        return path

    @property
    def args(self) -> argparse.Namespace:
        args = self._args
        if isinstance(args, _ParsedArgs):
            import argparse  # noqa: PLC0415 - the Namespace of a plain run, made when first asked for

            args = argparse.Namespace(**{dest: _as_path(value) for dest, value in args.items()})
            object.__setattr__(self, "_args", args)
        return args

    def _object_fspath(self) -> str | os.PathLike[str]:
        """``object_path`` as given, for the load (which takes a str): no Path made for it."""
        path: str | os.PathLike[str] = self._object_path
        return path

    def __reduce__(self) -> tuple[type[RunOptions], tuple[Any, ...]]:
        return type(self), tuple(getattr(self, name) for name in self._record_fields)


def _default_object(script: Path) -> Path | None:
    """The first object of the project holding ``script``, per its pyaya.toml (release profile)."""
    try:
        from pyaya.project import find_project  # noqa: PLC0415 - only needed without --object

        project = find_project(script.parent)
    except PyayaError:
        return None
    paths = project.object_paths("release")
    return paths[0] if paths else None


def _refused_options(script: Path, wanted: list[str]) -> str | None:
    """Why the project holding ``script`` refuses ``wanted`` (its ``[run] options``), or None. Read only when one
    of those options is given: a plain start does not parse pyaya.toml for this."""
    try:
        from pyaya.project import find_project  # noqa: PLC0415

        project = find_project(script.parent)
    except PyayaError:
        return None  # a script outside any project: nothing says what it honours
    return project.refused_run_options(wanted)


def watch_parent() -> None:
    """When a ``pyaya run --watch`` started this process (its pid in :data:`PARENT_ENV`), have the kernel send
    SIGTERM here should that parent die (handled like Ctrl-C: maps printed, links detached), then check that it
    has not died already, before the request was made; if it has, exit at once. It also takes the handoff
    channel that parent passed (:mod:`pyaya._handoff`), which :meth:`Session.load` reports on. Runs once (the
    variables are removed, so processes this one starts do not check a parent that is not theirs);
    :func:`parse_options` and :class:`Session` call it.
    """
    _handoff.claim()
    expected = os.environ.pop(PARENT_ENV, None)
    if expected is None:
        return
    try:
        parent = int(expected)
    except ValueError:
        return
    _native.set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent:
        print(f"pyaya: the `pyaya run --watch` that started this (pid {parent}) is gone; exiting", file=sys.stderr)
        raise SystemExit(1)


def parse_options(
    argv: Sequence[str] | None = None,
    *,
    description: str | None = None,
    parser: argparse.ArgumentParser | None = None,
) -> RunOptions:
    """Parse ``--object``, ``--json``, ``--duration``, ``-v``, and BCC's ``-p PID``, ``interval`` and ``count``.

    Give the project's own options as ``parser``, an :class:`argparse.ArgumentParser` they were added to: the common
    options join them, ``--help`` lists both, an unknown option is a usage error, and the values come back in
    :attr:`RunOptions.args` (``options.args.top``). Without ``parser``, unknown arguments are kept in ``extra``::

        parser = argparse.ArgumentParser(description="Slow calls of vfs_read.")
        parser.add_argument("--min-ms", type=float, default=10.0, help="only calls at least this long")
        options = parse_options(parser=parser)   # main.py --min-ms 5 -p 1234 2 10
        options.args.min_ms, options.pid, options.interval, options.count   # 5.0, 1234, 2.0, 10
    """
    watch_parent()
    if parser is None:
        parsed = _parse_fast(sys.argv[1:] if argv is None else list(argv))
        if parsed is not None:
            return parsed
    return _parse_argparse(argv, description=description, parser=parser)


def _parse_argparse(
    argv: Sequence[str] | None, *, description: str | None, parser: argparse.ArgumentParser | None
) -> RunOptions:
    """:func:`parse_options` by argparse: its help, its usage errors, the project's own options."""
    import argparse  # noqa: PLC0415 - ~11 ms: only for a project's own parser, --help, or what _parse_fast refuses
    from pathlib import Path  # noqa: PLC0415

    strict = parser is not None
    if parser is None:
        parser = argparse.ArgumentParser(description=description)
    common = parser.add_argument_group("options of every pyaya project") if strict else parser
    common.add_argument("--object", type=Path, help="the BPF object to load (default: the project's first object)")
    common.add_argument("--json", action="store_true", help="write one JSON object per line instead of columns")
    common.add_argument("--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)")
    common.add_argument("-v", "--verbose", action="store_true", help="also show kernel-side debug log records")
    common.add_argument("-p", "--pid", type=int, help="trace this process only")
    common.add_argument(
        "--metrics", metavar="HOST:PORT", help="serve the maps of pyaya.toml's [metrics] to Prometheus at /metrics"
    )
    common.add_argument(
        "--pinned-maps",
        type=Path,
        metavar="DIR",
        help="read the maps pinned in DIR (by bpfman) instead of loading the object: bpfman attached the programs",
    )
    common.add_argument("interval", nargs="?", type=float, help="seconds between outputs")
    common.add_argument("count", nargs="?", type=int, help="number of outputs before stopping")
    extra: list[str] = []
    if strict:
        args = parser.parse_args(argv)
    else:
        args, extra = parser.parse_known_args(argv)
    object_path = args.object or _default_object(Path(sys.argv[0]).resolve())
    if object_path is None:
        parser.error("no --object given and no built object found: run `pyaya build` or pass --object PATH")
    if args.duration is not None and args.duration < 0:
        parser.error("--duration must be >= 0")
    if args.pid is not None and args.pid <= 0:
        parser.error(f"-p/--pid must be a process id (> 0), not {args.pid}")
    if args.interval is not None and args.interval <= 0:
        parser.error(f"interval must be a number of seconds > 0, not {args.interval:g}")
    if args.count is not None and args.count < 1:
        parser.error(f"count must be >= 1, not {args.count}")
    wanted = [name for name, value in (("pid", args.pid), ("interval", args.interval)) if value is not None]
    refused = _refused_options(Path(sys.argv[0]).resolve(), wanted) if wanted else None
    if refused is not None:
        parser.error(refused)
    return RunOptions(
        object_path=Path(object_path),
        json=args.json,
        duration=args.duration,
        verbose=args.verbose,
        extra=tuple(extra),
        pid=args.pid,
        interval=args.interval,
        count=args.count,
        args=args,
        metrics=args.metrics,
        pinned_maps=args.pinned_maps,
    )


#: The options :func:`_parse_fast` takes, by what argparse calls them, and the ``dest`` each sets.
_FAST_FLAGS = {"--json": "json", "--verbose": "verbose", "-v": "verbose"}
_FAST_VALUES = {
    "--object": "object",
    "--duration": "duration",
    "--pid": "pid",
    "-p": "pid",
    "--metrics": "metrics",
    "--pinned-maps": "pinned_maps",
}
_FAST_TYPES: dict[str, Callable[[str], object]] = {
    "object": _PathText,
    "duration": float,
    "pid": int,
    "metrics": str,
    "pinned_maps": _PathText,
}


def _parse_fast(argv: list[str]) -> RunOptions | None:
    """What :func:`_parse_argparse` makes of ``argv`` without a project parser, for the well-formed command lines
    of the common options (what ``pyaya run`` passes: ``--object PATH --json --duration 5 -p 42 2 10``); None for
    anything else (``--help``, an unknown or abbreviated option, a missing or bad value, ``--``, an argument
    left over), which argparse then parses as ever: its help and usage errors stay its own. Skips importing
    argparse (~11 ms). A test holds the two to the same result."""
    values: dict[str, object] = {
        "object": None,
        "json": False,
        "duration": None,
        "verbose": False,
        "pid": None,
        "metrics": None,
        "pinned_maps": None,
        "interval": None,
        "count": None,
    }
    positional: list[str] = []
    positional_end = -1  # argparse takes interval and count from the first run of positional arguments only
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if not arg.startswith("-"):
            if positional and positional_end != index - 1:
                return None  # a second run: argparse leaves it in extra
            positional.append(arg)
            positional_end = index
            continue
        name, equals, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in _FAST_FLAGS and not equals:
            values[_FAST_FLAGS[name]] = True
            continue
        dest = _FAST_VALUES.get(name)
        if dest is None:
            if not (arg.startswith("-p") and arg[2:3].isdigit()):
                return None  # -h, --help, unknown, abbreviated, grouped: argparse's
            dest, equals, value = "pid", "=", arg[2:]
        if not equals:
            if index >= len(argv):
                return None
            value = argv[index]
            index += 1
        if not value or value.startswith("-"):
            return None  # argparse reads "-1" as a value, "-x" as a missing one; "" as Path("."): its business
        try:
            values[dest] = _FAST_TYPES[dest](value)
        except ValueError:
            return None
    if len(positional) > 2:
        return None
    try:
        if positional:
            values["interval"] = float(positional[0])
        if len(positional) > 1:
            values["count"] = int(positional[1])
    except ValueError:
        return None
    duration, pid, interval, count = values["duration"], values["pid"], values["interval"], values["count"]
    if (
        (duration is not None and cast("float", duration) < 0)
        or (pid is not None and cast("int", pid) <= 0)
        or (interval is not None and cast("float", interval) <= 0)
        or (count is not None and cast("int", count) < 1)
    ):
        return None  # argparse says why
    object_path = values["object"]
    if object_path is None or pid is not None or interval is not None:
        from pathlib import Path  # noqa: PLC0415 - the project's pyaya.toml is read: pathlib is imported anyway

        script = Path(sys.argv[0]).resolve()
        if object_path is None:
            object_path = _default_object(script)
            if object_path is None:
                return None
            object_path = Path(object_path)
        wanted = [name for name, value in (("pid", pid), ("interval", interval)) if value is not None]
        if wanted and _refused_options(script, wanted) is not None:
            return None
    return RunOptions(
        object_path=cast("Path", object_path),
        json=cast("bool", values["json"]),
        duration=cast("float | None", duration),
        verbose=cast("bool", values["verbose"]),
        extra=(),
        pid=cast("int | None", pid),
        interval=cast("float | None", interval),
        count=cast("int | None", count),
        args=cast("argparse.Namespace", _ParsedArgs(values)),
        metrics=cast("str | None", values["metrics"]),
        pinned_maps=cast("Path | None", values["pinned_maps"]),
    )


# -- histograms, as BCC prints them ------------------------------------------------------------------------------

_STARS_MAX = 40


def _stars(value: int, value_max: int, width: int) -> str:
    # BCC's _stars, kept step for step so bars match to the character.
    text = ""
    i = 0
    while not (i > (width * value / value_max) - 1 or i > width - 1):
        text += "*"
        i += 1
    if value > value_max:
        text = text[:-1] + "+"
    return text


def _slots(counts: Mapping[int, int] | Sequence[int]) -> list[int]:
    items = counts.items() if isinstance(counts, Mapping) else enumerate(counts)
    values: dict[int, int] = {}
    for key, value in items:
        slot = int(key)
        if slot < 0:
            raise ValueError(f"histogram slot {slot} is negative: slots are 0, 1, 2, ...")
        values[slot] = values.get(slot, 0) + _count(value)
    size = max(values, default=-1) + 1
    return [values.get(slot, 0) for slot in range(size)]


def _count(value: object) -> int:
    """A map value as a count: per-CPU values (a list, or anything with ``sum()``) are summed."""
    total = getattr(value, "sum", None)
    if callable(total):
        return int(total())
    if isinstance(value, (list, tuple)):
        return sum(int(v) for v in value)
    return int(value)  # type: ignore[call-overload,no-any-return]


def _log2_range(slot: int) -> tuple[int, int]:
    low = (1 << slot) >> 1
    high = (1 << slot) - 1
    if low == high:
        low -= 1
    return low, high


def log2_buckets(counts: Mapping[int, int] | Sequence[int]) -> list[dict[str, int]]:
    """The buckets :func:`print_log2_hist` prints, as ``{"low", "high", "count"}`` dicts (for JSON output)."""
    slots = _slots(counts)
    last = max((i for i, v in enumerate(slots) if v > 0), default=-1)
    return [dict(zip(("low", "high"), _log2_range(i), strict=True), count=slots[i]) for i in range(1, last + 1)]


def linear_buckets(counts: Mapping[int, int] | Sequence[int]) -> list[dict[str, int]]:
    """The buckets :func:`print_linear_hist` prints, as ``{"value", "count"}`` dicts (for JSON output)."""
    slots = _slots(counts)
    last = max((i for i, v in enumerate(slots) if v > 0), default=-1)
    return [{"value": i, "count": slots[i]} for i in range(last + 1)]


def print_log2_hist(
    counts: Mapping[int, int] | Sequence[int],
    label: str,
    file: TextIO | None = None,
    *,
    strip_leading_zero: bool = False,
) -> None:
    """Print a power-of-two histogram exactly as BCC's ``print_log2_hist`` does.

    ``counts`` maps a slot to its count. Slot ``n`` holds values ``2**(n-1)`` to ``2**n - 1``, which is the value's
    bit length (``value.bit_length()``; in Rust ``64 - value.leading_zeros()``), as BCC's ``bpf_log2l`` computes it;
    slot 0 (the value 0) is not printed, as in BCC. Per-CPU values are summed. ``label`` names the unit
    (``"usecs"``).

    >>> print_log2_hist({1: 3, 3: 5}, "usecs")  # doctest: +NORMALIZE_WHITESPACE
         usecs               : count     distribution
             0 -> 1          : 3        |************************                |
             2 -> 3          : 0        |                                        |
             4 -> 7          : 5        |****************************************|
    """
    out = file if file is not None else sys.stdout
    slots = _slots(counts)
    idx_max = max((i for i, v in enumerate(slots) if v > 0), default=-1)
    val_max = max(slots, default=0)
    if idx_max <= 32:
        header = "     %-19s : count     distribution"
        body = "%10d -> %-10d : %-8d |%-*s|"
        stars = _STARS_MAX
    else:
        header = "               %-29s : count     distribution"
        body = "%20d -> %-20d : %-8d |%-*s|"
        stars = _STARS_MAX // 2
    if idx_max > 0:
        print(header % label, file=out)
    for i in range(1, idx_max + 1):
        low, high = _log2_range(i)
        value = slots[i]
        if strip_leading_zero and not value:
            continue
        strip_leading_zero = False
        print(body % (low, high, value, stars, _stars(value, val_max, stars)), file=out)


def print_linear_hist(
    counts: Mapping[int, int] | Sequence[int],
    label: str,
    file: TextIO | None = None,
    *,
    strip_leading_zero: bool = False,
) -> None:
    """Print a histogram of one slot per value exactly as BCC's ``print_linear_hist`` does.

    ``counts`` maps a value (the slot) to its count; per-CPU values are summed.

    >>> print_linear_hist({0: 1, 2: 2}, "cpu")  # doctest: +NORMALIZE_WHITESPACE
         cpu           : count     distribution
            0          : 1        |********************                    |
            1          : 0        |                                        |
            2          : 2        |****************************************|
    """
    out = file if file is not None else sys.stdout
    slots = _slots(counts)
    idx_max = max((i for i, v in enumerate(slots) if v > 0), default=-1)
    val_max = max(slots, default=0)
    header = "     %-13s : count     distribution"
    body = "        %-10d : %-8d |%-*s|"
    if idx_max >= 0:
        print(header % label, file=out)
    for i in range(idx_max + 1):
        value = slots[i]
        if strip_leading_zero and not value:
            continue
        strip_leading_zero = False
        print(body % (i, value, _STARS_MAX, _stars(value, val_max, _STARS_MAX)), file=out)


# -- verifier rejections -----------------------------------------------------------------------------------------

LAST_INSTRUCTIONS = 6


@functools.cache
def _verifier_patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """An instruction line, a statistics line and a program's name in a verifier log."""
    import re  # noqa: PLC0415 - only a rejection is read with these

    return (
        re.compile(r"^(\d+): \([0-9a-f]{2}\) "),
        re.compile(r"^(verification time|stack depth|processed \d+ insns|max_states_per_insn)"),
        re.compile(r'program "([^"]+)"'),
    )


def verifier_summary(error: VerifierError, object_path: str | os.PathLike[str] | None = None) -> str:
    """A verifier rejection trimmed to what matters: the error, the instruction it stopped at, the source line
    (from the object's ``.BTF.ext`` line info, when ``object_path`` is given) and the last instructions.

    The first line is the error's message; the full log stays in ``error.log``.
    """
    insn_line, stats_line, _ = _verifier_patterns()
    message = Exception.__str__(error)
    if error.hint:
        message = f"{message}\n  {error.hint}"
    lines = [line.rstrip() for line in error.log.splitlines()]
    body = [line for line in lines if line.strip() and not stats_line.match(line)]
    insn_rows = [i for i, line in enumerate(body) if insn_line.match(line)]
    if not insn_rows:
        reason = body[-1] if body else ""
        return "\n".join([message, *(f"  {reason}" for _ in [0] if reason), "  (run with -v for the full log)"])
    last_row = insn_rows[-1]
    reasons = [line for line in body[last_row + 1 :] if not line.startswith(";")] or [body[-1]]
    failing = body[last_row]
    parts = [message]
    parts += [f"  {reason}" for reason in reasons]
    parts.append(f"  at instruction {failing}")
    location = _source_of(error, message, failing, object_path)
    if location:
        parts.append(f"  source: {location}")
    shown = [body[i] for i in insn_rows[-LAST_INSTRUCTIONS:]]
    parts.append("  last instructions:")
    parts += [f"    {line}" for line in shown]
    parts.append("  (run with -v for the full verifier log)")
    return "\n".join(parts)


def _source_of(
    error: VerifierError, message: str, failing: str, object_path: str | os.PathLike[str] | None
) -> str | None:
    if object_path is None:
        return None
    insn_line, _, program_name = _verifier_patterns()
    program = getattr(error, "program", None) or next(iter(program_name.findall(message)), None)
    match = insn_line.match(failing)
    if program is None or match is None:
        return None
    try:
        from pyaya.inspect import source_location  # noqa: PLC0415 - only a rejection needs the ELF read again

        location = source_location(os.fspath(object_path), str(program), int(match.group(1)))
    except PyayaError:
        return None
    if location is None or location.exact is None:
        return None
    exact = _relative(str(location.exact))
    if location.own is None or location.own == location.exact:
        return exact
    return f"{exact} (inlined into {_relative(str(location.own))} in {location.program})"


def _relative(location: str) -> str:
    """``file:line:col`` with the file relative to the current folder when it is inside it (the project's)."""
    here = os.getcwd() + os.sep
    return location.removeprefix(here)


_LEVEL_COLORS = {"error": "31", "warn": "33", "warning": "33", "info": "32", "debug": "2", "trace": "2"}


def _paint(text: str, code: str, enabled: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if enabled and code else text


@frozen
class Column:
    """One column of the event table: a field name, a heading and a width (0: the rest of the line)."""

    field: str
    width: int = 0
    heading: str | None = None
    align: str = "<"

    @property
    def title(self) -> str:
        return self.heading if self.heading is not None else self.field.upper()


class _Stop(Exception):
    """Raised by the SIGTERM handler to end the event loop like Ctrl-C does."""


_LOST_WARNING_INTERVAL_S = 1.0  # table mode: at most one loss warning a second
_LOST_CHECK_S = 1.0  # a stream waiting for records still looks at its lost counters this often
_NO_GRACE_PERIOD_S = 0.01  # without membarrier: time enough for a program run that started before a detach
_LOG_DEBUG, _LOG_INFO = 10, 20  # logging.DEBUG and logging.INFO: the load's log_level, without logging


class _StreamTally:
    """What one stream of a session has read and reported lost."""

    __slots__ = ("lost", "map", "read")

    def __init__(self, map: str, read: int = 0, lost: int = 0) -> None:
        self.map = map
        self.read = read
        self.lost = lost


class _MapAtExit:
    __slots__ = ("key_heading", "map", "name", "sort_by_value", "value_heading")

    def __init__(
        self, name: str, key_heading: str, value_heading: str, map: HashMap, sort_by_value: bool = True
    ) -> None:
        self.name = name
        self.key_heading = key_heading
        self.value_heading = value_heading
        self.map = map
        self.sort_by_value = sort_by_value


class _HistogramAtExit:
    __slots__ = ("kind", "label", "map")

    def __init__(self, map: Map, label: str, kind: str) -> None:
        self.map = map
        self.label = label
        self.kind = kind


class _Periodic:
    __slots__ = ("callback", "due", "interval")

    def __init__(self, interval: float, callback: Callable[[], object], due: float) -> None:
        self.interval = interval
        self.callback = callback
        self.due = due


HISTOGRAM_KINDS = ("log2", "linear")


# What logging calls each level of a kernel-side record (logging.getLevelName, lower case), for the session's output.
_LEVEL_NAMES = {50: "critical", 40: "error", 30: "warning", 20: "info", 10: "debug", 0: "notset"}


def _map_counts(map: Map | Mapping[int, Any] | Sequence[Any]) -> dict[int, int]:
    """Slot -> count from a map whose keys are slot indexes (a hash map, or an array indexed by slot)."""
    items: Iterable[tuple[Any, Any]] = map.items() if hasattr(map, "items") else enumerate(map)  # type: ignore[arg-type]
    counts: dict[int, int] = {}
    for key, value in items:
        slot = int(key)
        counts[slot] = counts.get(slot, 0) + _count(value)
    return counts


_SESSION_FIELDS = (
    "name",
    "options",
    "out",
    "columns",
    "_ebpf",
    "_maps_at_exit",
    "_deadline",
    "_header_printed",
    "_log_sink",
    "_previous_handlers",
    "_stopping",
    "events_seen",
    "_announced",
    "_periodic",
    "intervals_done",
    "_metrics",
    "_stats",
    "lost_records",
    "_lost_unwarned",
    "_lost_warned_at",
    "_streams",
    "_undecodable_warned",
)


class Session:
    """A run of a project's user space. Use as a context manager around loading, attaching and streaming.

    ``options`` default to :func:`parse_options` of the command line, ``out`` to ``sys.stdout``. A session counts
    ``events_seen``, ``intervals_done`` (how many times the first :meth:`every` callback has run) and
    ``lost_records`` (records reported lost so far, :meth:`lost`, by map name).

    Written out rather than a dataclass (importing dataclasses costs ~14 ms at start-up); it keeps a dataclass's
    ``repr`` and ``==``, and, as a dataclass's instances did, takes attributes a script adds.
    """

    __hash__ = None  # type: ignore[assignment]  # as a dataclass with == is

    def __init__(
        self,
        name: str,
        options: RunOptions | None = None,
        out: TextIO | None = None,
        columns: Sequence[Column] = (),
    ) -> None:
        self.name = name
        self.options: RunOptions = parse_options() if options is None else options
        self.out: TextIO = sys.stdout if out is None else out
        self.columns = columns
        self._ebpf: Ebpf | PinnedObject | None = None
        self._maps_at_exit: list[_MapAtExit | _HistogramAtExit] = []
        self._deadline: float | None = None
        self._header_printed = False
        self._log_sink: Callable[[int, str, str], None] | None = None
        self._previous_handlers: dict[int, Any] = {}
        self._stopping = False
        self.events_seen = 0
        self._announced = False
        self._periodic: list[_Periodic] = []
        self.intervals_done = 0
        self._metrics: Any = None
        self._stats: Any = None
        self.lost_records: dict[str, int] = {}
        self._lost_unwarned: dict[str, int] = {}
        self._lost_warned_at: float | None = None
        self._streams: dict[str, _StreamTally] = {}
        self._undecodable_warned: set[str] = set()

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _SESSION_FIELDS)
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _SESSION_FIELDS)

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def __enter__(self) -> Session:
        watch_parent()
        if self.options.duration is not None:
            self._deadline = time.monotonic() + self.options.duration
        self._stopping = False

        # A function, not the bound method: signal.signal() returns the handler it replaces after trying it as a
        # signal.Handlers value, whose ValueError message holds its repr, and a session's repr is all its state.
        def on_stop_signal(signum: int, frame: FrameType | None) -> None:
            self._on_stop_signal(signum, frame)

        self._previous_handlers = {signal.SIGTERM: signal.signal(signal.SIGTERM, on_stop_signal)}
        # SIGINT only where Python's own handler is in place: a shell starts background jobs with SIGINT ignored
        # (Ctrl-C is not meant for them), and a script may have its own handler.
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous_handlers[signal.SIGINT] = signal.signal(signal.SIGINT, on_stop_signal)
        # Kernel-side log records come here from the loader (its sink), not through logging: logging would cost
        # ~12 ms of start-up to import, to hand them straight back. Debug records only with -v, in JSON as on a
        # terminal: the level is also what the kernel is told to send (the load's log_level), and a debug record
        # per event costs more than the event.
        threshold = _LOG_DEBUG if self.options.verbose else _LOG_INFO

        def show(level: int, target: str, message: str) -> None:
            if level >= threshold:
                self.log(_LEVEL_NAMES.get(level, f"level {level}"), target, message)

        self._log_sink = show
        loader._log_sinks.append(show)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        # From here on a stop signal is a repeat (Ctrl-C reaches both processes of a `pyaya run --watch`, whose
        # parent forwards it too) or an impatient user: detaching and printing the maps must not be cut short.
        self._stopping = True
        interrupted = exc_type is not None and issubclass(exc_type, (KeyboardInterrupt, _Stop))
        if exc_type is not None and issubclass(exc_type, BrokenPipeError):
            # The reader went away (`pyaya run --json | head`): stop quietly, writing nothing more to it.
            self.out = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the session
            self._maps_at_exit.clear()
            interrupted = True
        try:
            if self._ebpf is not None and not self._ebpf.closed:
                self._ebpf.flush_logs()
                if exc_type is None or interrupted:
                    self._print_maps()
        finally:
            # Metrics first: a scrape in progress must not read maps being closed.
            if self._metrics is not None:
                self._metrics.close()
                self._metrics = None
            if self._stats is not None:
                self._stats.close()
                self._stats = None
            if self._ebpf is not None:
                self._ebpf.close()
            if self._log_sink is not None:
                loader._log_sinks[:] = [sink for sink in loader._log_sinks if sink is not self._log_sink]
                self._log_sink = None
            for signum, handler in self._previous_handlers.items():
                signal.signal(signum, handler)
            self._previous_handlers.clear()
            self.out.flush()
        if isinstance(exc, VerifierError) and not self.options.verbose:
            print(f"error: {verifier_summary(exc, self.options._object_fspath())}", file=sys.stderr)
            raise SystemExit(1)
        if isinstance(exc, PyayaError):
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(1)
        return interrupted  # Ctrl-C and SIGTERM end the run normally, after the maps are printed

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        """SIGINT or SIGTERM: the first ends the run (as Ctrl-C does); repeats are ignored while it stops."""
        if self._stopping:
            return
        self._stopping = True
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise _Stop

    def load(
        self, *, globals: Mapping[str, object] | None = None, max_entries: Mapping[str, int] | None = None
    ) -> Ebpf | PinnedObject:
        """Load the object given by ``--object``; closed (links detached, maps freed) when the session ends.

        Kernel-side log records are sent down to info, and down to debug with ``-v`` only: a debug record per
        event would cost the kernel side more than the event itself.

        With ``--pinned-maps DIR`` nothing is loaded: the maps come from the pins another loader (bpfman) made in
        DIR, typed by the object's BTF, and ``programs[NAME].attach(...)`` does nothing, since that loader attached
        them (see :class:`PinnedObject`); ``globals`` and ``max_entries`` are then that loader's business too.
        With ``--metrics HOST:PORT``, the maps are served to Prometheus as soon as they exist (:meth:`metrics`).

        Started by ``pyaya run --watch`` to replace a running ``main.py``, the session also loads every program
        whose ``load()`` takes no argument (the verifier's verdict comes before anything is stopped), tells the
        parent so, and returns once the parent has stopped the run this one replaces: the attaches that follow
        take over from it (see :mod:`pyaya._handoff`). A failure here leaves that run tracing.
        """
        handoff = _handoff.claimed()
        try:
            if self.options.pinned_maps is not None:
                self._ebpf = PinnedObject(self.options.pinned_maps, self.options.object_path)
            else:
                level = _LOG_DEBUG if self.options.verbose else _LOG_INFO
                self._ebpf = Ebpf.load_file(
                    self.options._object_fspath(), globals=globals, max_entries=max_entries, log_level=level
                )
                if handoff is not None:
                    _load_ahead(self._ebpf)
        except BaseException as error:
            if handoff is not None:
                handoff.failed(BaseException.__str__(error).strip().partition("\n")[0] or type(error).__name__)
                handoff.close()
            raise
        if handoff is not None:
            try:
                handoff.loaded()  # the run this one replaces is stopped when this returns
            finally:
                handoff.close()
        if self.options.metrics is not None:
            self.metrics(self.options.metrics)
        assert self._ebpf is not None
        return self._ebpf

    def metrics(self, address: str, specs: Mapping[str, MetricSpec] | None = None) -> str:
        """Serve the loaded object's maps to Prometheus at ``http://ADDRESS/metrics`` until the session ends;
        returns that URL. ``specs`` (map name -> :class:`pyaya.project.MetricSpec`) default to the ``[metrics]``
        tables of the project's ``pyaya.toml`` (found from ``main.py``'s folder, then from the object's)."""
        from pathlib import Path  # noqa: PLC0415

        from pyaya import metrics  # noqa: PLC0415 - prometheus_client, only when serving

        if self._ebpf is None:
            raise MetricsError("load the object (session.load()) before serving its maps as metrics")
        if self._metrics is not None:
            raise MetricsError(f"metrics are already served at {self._metrics.url}")
        program_stats = False
        if specs is None:
            settings = _project_fleet(Path(sys.argv[0]).resolve().parent, self.options.object_path)
            if settings is None or not settings.metrics:
                raise MetricsError(
                    "--metrics: the project's pyaya.toml has no [metrics.MAP] table saying which maps to serve "
                    '(e.g. [metrics.COUNTS] type = "counter")'
                )
            specs, program_stats = settings.metrics, settings.program_stats
        ebpf = self._ebpf
        programs = None if isinstance(ebpf, PinnedObject) else (lambda: [ebpf.programs[n] for n in ebpf.programs])
        if program_stats and programs is not None and self._stats is None:
            from pyaya.programs import enable_stats  # noqa: PLC0415

            self._stats = contextlib.ExitStack()
            self._stats.enter_context(enable_stats())
        self._metrics = metrics.serve(
            ebpf, specs, address, prefix=self.name, programs=programs, program_stats=program_stats
        )
        url: str = self._metrics.url
        print(f"pyaya: serving metrics at {url}", file=sys.stderr, flush=True)
        return url

    # -- streaming ----------------------------------------------------------------------------------------------

    def remaining(self) -> float | None:
        """Seconds left before ``--duration`` ends the run (None: no limit)."""
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def announce(self) -> None:
        """Tell the user (on stderr) that everything is attached; ``stream`` and ``wait`` call it."""
        if not self._announced:
            self._announced = True
            limit = f" for {self.options.duration:g}s" if self.options.duration is not None else ""
            print(f"pyaya: {self.name} is running{limit} (Ctrl-C to stop)", file=sys.stderr, flush=True)

    def every(self, interval: float | None, callback: Callable[[], object]) -> None:
        """Call ``callback`` every ``interval`` seconds while :meth:`stream` or :meth:`wait` runs.

        ``interval`` None takes the command line's ``interval`` (default 1 s). The run stops after the first
        callback has run ``count`` times when the command line gives a ``count``, as BCC tools do::

            session.every(session.options.interval or 1, lambda: session.show_histogram(hist, label="usecs"))
        """
        seconds = interval if interval is not None else (self.options.interval or 1.0)
        if seconds <= 0:
            raise ValueError(f"interval must be > 0 seconds, not {seconds:g}")
        self._periodic.append(_Periodic(seconds, callback, time.monotonic() + seconds))

    def _next_wait(self, limit: float | None = None) -> float | None:
        """How long the next wait may last: until the deadline, the next periodic callback, or ``limit``."""
        waits = [w for w in (self.remaining(), limit) if w is not None]
        if self._periodic:
            waits.append(max(0.0, min(p.due for p in self._periodic) - time.monotonic()))
        return min(waits) if waits else None

    def _run_due(self) -> bool:
        """Run the periodic callbacks that are due; True when ``count`` intervals are done."""
        now = time.monotonic()
        for index, periodic in enumerate(self._periodic):
            if periodic.due > now:
                continue
            periodic.callback()
            # Skip the ticks missed while the callback (or a burst of events) kept us busy.
            periodic.due = max(periodic.due + periodic.interval, now)
            if index == 0:
                self.intervals_done += 1
        count = self.options.count
        return bool(self._periodic) and count is not None and self.intervals_done >= count

    def _over(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def stream(self, ring: RingBuf | PerfEventArray, *, batch: int | None = None) -> Iterator[Any]:
        """Yield records from ``ring`` (a ring buffer or a perf event array) until ``--duration`` runs out (or
        forever), draining many per wake-up (``batch``: at most that many per drain): decoded records where the
        stream is typed (a ``#[btf_map]`` ring buffer, or ``ring.typed("Name")``), else bytes. Runs :meth:`every`
        callbacks in between, and ends after ``count`` intervals. Output is flushed once per batch.

        Lost records are never silent: the stream's ``lost`` count (a perf array's dropped samples, a ring's
        ``NAME_LOST`` companion counter) is reported through :meth:`lost` as it grows. When the run ends
        (``--duration``, ``count``, Ctrl-C, SIGTERM) the session detaches its programs (links pinned in bpffs
        stay), yields what is left in the ring, and reads the counters once more, so the last report is exact and
        the maps printed at exit match what was shown plus what was lost; in table mode a footer line gives the
        stream's totals. Leaving the loop early (``break``, or an exception in its body, e.g. Ctrl-C while an
        event is printed) ends the run the same way, the records it will not see reported as lost."""
        self.announce()
        tally = self._streams.setdefault(ring.name, _StreamTally(ring.name))
        handed = 0  # records handed to the consumer
        left = 0  # records of the current batch not handed out yet
        try:
            stop: BaseException | None = None
            try:
                while True:
                    records = self._drain(ring, batch, self._next_wait(self._lost_wait()))
                    left = len(records)
                    for record in records:
                        left -= 1
                        handed += 1
                        yield record
                    self._check_lost(ring, tally)
                    self.out.flush()
                    if self._run_due() or self._over():
                        break
            except (KeyboardInterrupt, _Stop) as error:
                stop = error  # re-raised once what is left in the ring is shown: __exit__ ends the run
            self._stop_programs()
            records = self._drain_rest(ring)
            left = len(records)
            for record in records:
                left -= 1
                handed += 1
                yield record
            if stop is not None:
                raise stop
        except GeneratorExit:
            # The consumer left the loop (an exception in its body, such as Ctrl-C while it printed, or a break):
            # that ends the run too. What it will not see, the rest of the batch and of the ring, counts as lost.
            self._stop_programs()
            unshown = left + len(ring._backlog) + len(ring._native.drain(None, 0))  # counted, not decoded
            ring._backlog.clear()
            self.lost(tally.map, unshown)
            raise
        finally:
            tally.read += handed
            self._end_stream(ring, tally)

    def _drain(self, ring: RingBuf | PerfEventArray, batch: int | None, wait: float | None) -> list[Any]:
        """``ring.drain``, a record that does not decode as the stream's type counted as lost (it cannot be
        shown) and explained once per stream; the records around it come in this drain or the next."""
        try:
            return ring.drain(batch, wait)
        except RecordError as error:
            if ring.name not in self._undecodable_warned:
                self._undecodable_warned.add(ring.name)
                print(f"warning: {error}; such records are counted as lost", file=sys.stderr)
            self.lost(ring.name, 1)
            return []

    def _drain_rest(self, ring: RingBuf | PerfEventArray) -> list[Any]:
        """Everything left in ``ring`` once its programs are stopped, undecodable records counted as lost."""
        records: list[Any] = []
        while True:
            more = self._drain(ring, None, 0)
            records += more
            if not more and not ring._backlog:
                return records

    def flush(self, *streams: RingBuf | PerfEventArray) -> None:
        """Report what each of ``streams`` lost since the last look, then write out the buffered output: for a loop
        that drains streams itself instead of :meth:`stream` (call it once per batch, and once at the end)."""
        for ring in streams:
            self._check_lost(ring, self._streams.setdefault(ring.name, _StreamTally(ring.name)))
        self._warn_lost()
        self.out.flush()

    def _stop_programs(self) -> None:
        """The run is over: detach the session's programs (links pinned in bpffs stay) and wait until no run of
        them is still going, so every counter read from here on is final. Programs another loader attached
        (``--pinned-maps``) are that loader's: they keep running."""
        ebpf = self._ebpf
        if ebpf is None or ebpf.closed or isinstance(ebpf, PinnedObject):
            return
        for name in ebpf.programs:
            for link in ebpf.programs[name].links:
                if link.pinned_path is None:
                    link.detach()
        if not _native.wait_for_running_programs():
            time.sleep(_NO_GRACE_PERIOD_S)

    def _check_lost(self, ring: RingBuf | PerfEventArray, tally: _StreamTally) -> None:
        """Report what ``ring`` lost since the last look; show the table-mode warnings that are due."""
        lost = ring.lost
        if lost is not None and lost > tally.lost:
            self.lost(tally.map, lost - tally.lost)
            tally.lost = lost
        self._warn_lost()

    def _end_stream(self, ring: RingBuf | PerfEventArray, tally: _StreamTally) -> None:
        """The counters read once more, every loss reported, and in table mode the stream's footer."""
        with contextlib.suppress(PyayaError):  # a closed object keeps its last counts; nothing more to read
            self._check_lost(ring, tally)
        self._warn_lost(now=True)
        if not self.options.json:
            lost = self.lost_records.get(tally.map, 0)
            share = f" ({100 * lost / (lost + tally.read):.1f} %)" if lost else ""
            footer = f"{tally.map}: {tally.read} records read, {lost} lost{share}"
            self.out.write(_paint(footer, "2", self.color) + "\n")
        self.out.flush()

    def _lost_wait(self) -> float:
        """How long a wait may last before losses are looked at again (or a held-back warning is due)."""
        if self._lost_unwarned and self._lost_warned_at is not None:
            return max(0.0, self._lost_warned_at + _LOST_WARNING_INTERVAL_S - time.monotonic())
        return _LOST_CHECK_S

    def wait(self, *, poll: Callable[[], None] | None = None, interval: float = 1.0) -> None:
        """For projects without a stream: sleep until ``--duration`` ends (or ``count`` intervals of the
        :meth:`every` callbacks are done), calling ``poll`` every ``interval``."""
        self.announce()
        next_poll = time.monotonic() + interval
        while True:
            if self._over():
                return
            pause = self._next_wait(max(0.0, next_poll - time.monotonic()))
            time.sleep(interval if pause is None else pause)
            if self._ebpf is not None:
                self._ebpf.flush_logs()
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + interval
                if poll is not None:
                    poll()
            over = self._run_due()
            self.out.flush()
            if over:
                return

    # -- output -------------------------------------------------------------------------------------------------

    @property
    def color(self) -> bool:
        """Whether output to ``out`` is colored: on a terminal, not with ``--json``, not when NO_COLOR is set."""
        return not self.options.json and color_enabled(self.out)

    def _write(self, record: dict[str, Any]) -> None:
        # Not flushed here: stream() flushes once per batch, wait() once per tick, the session at its end.
        self.out.write(_json_line(record) + "\n")

    def event(self, map_name: str, data: Mapping[str, Any] | Record) -> None:
        """Show one event: a table row, or ``{"kind": "event", "map": ..., "data": {...}}`` with ``--json``.

        ``data`` is a mapping of field names to values, or a record decoded from the object's BTF. The output is
        buffered: :meth:`stream` and :meth:`wait` flush it once per batch or tick; a loop of your own calls
        :meth:`flush`."""
        if isinstance(data, Record):
            data = data.asdict()
        self.events_seen += 1
        if self.options.json:
            self._write({"kind": "event", "map": map_name, "data": dict(data)})
            return
        if not self.columns:
            self.out.write(" ".join(f"{key}={value}" for key, value in data.items()) + "\n")
        else:
            if not self._header_printed:
                self.out.write(
                    _paint(_row([(column, column.title) for column in self.columns]), "1", self.color) + "\n"
                )
                self._header_printed = True
            self.out.write(_row([(column, data.get(column.field, "")) for column in self.columns]) + "\n")

    def log(self, level: str, target: str, message: str) -> None:
        """Show a kernel-side log record (aya-log)."""
        if self.options.json:
            self._write({"kind": "log", "level": level, "target": target, "message": message})
        else:
            tag = _paint(f"[{level}]", _LEVEL_COLORS.get(level, ""), color_enabled(sys.stderr))
            print(f"{tag} {target}: {message}", file=sys.stderr)

    def lost(self, map_name: str, count: int) -> None:
        """Report ``count`` more records lost from ``map_name`` (the kernel side could not write them, or the
        kernel dropped them because user space fell behind). With ``--json``: ``{"kind": "lost", "map": ...,
        "count": ...}`` each time; on a terminal: a warning on stderr at most once a second, counts in between added
        up into the next one (:meth:`stream` shows a held-back warning when it is due, and at its end)."""
        if count <= 0:
            return
        self.lost_records[map_name] = self.lost_records.get(map_name, 0) + count
        if self.options.json:
            self._write({"kind": "lost", "map": map_name, "count": count})
            return
        self._lost_unwarned[map_name] = self._lost_unwarned.get(map_name, 0) + count
        self._warn_lost()

    def _warn_lost(self, *, now: bool = False) -> None:
        """Show the held-back loss warnings, if the last one was a second ago (or ``now``)."""
        if not self._lost_unwarned:
            return
        clock = time.monotonic()
        if not now and self._lost_warned_at is not None and clock - self._lost_warned_at < _LOST_WARNING_INTERVAL_S:
            return
        self._lost_warned_at = clock
        warning = _paint("warning:", "33", color_enabled(sys.stderr))
        for name, count in self._lost_unwarned.items():
            total = self.lost_records[name]
            print(f"{warning} lost {count} records from {name} ({total} in all so far)", file=sys.stderr)
        self._lost_unwarned.clear()

    def show_map_at_exit(
        self, map: HashMap, *, key: str = "key", value: str = "value", sort_by_value: bool = True
    ) -> None:
        """Print ``map`` when the run ends (a table, or ``{"kind": "map", ...}`` with ``--json``)."""
        self._maps_at_exit.append(_MapAtExit(map.name, key, value, map, sort_by_value))

    def show_histogram_at_exit(self, map: Map, *, label: str, kind: str = "log2") -> None:
        """Print ``map`` as a histogram when the run ends (see :meth:`show_histogram`)."""
        _check_histogram_kind(kind)
        self._maps_at_exit.append(_HistogramAtExit(map, label, kind))

    def show_histogram(self, map: Map, *, label: str, kind: str = "log2", clear: bool = False) -> None:
        """Print ``map`` as a histogram now: its keys are slot indexes and its values counts (per-CPU values are
        summed). ``kind`` ``"log2"`` prints like BCC's ``print_log2_hist`` (slot n: values 2**(n-1) to 2**n - 1),
        ``"linear"`` like ``print_linear_hist``. With ``--json``: ``{"kind": "map", "map": NAME, "histogram":
        KIND, "label": LABEL, "buckets": [...]}``. ``clear`` empties the map afterwards (per-interval histograms).
        """
        _check_histogram_kind(kind)
        counts = _map_counts(map)
        name = getattr(map, "name", "")
        if self.options.json:
            buckets = log2_buckets(counts) if kind == "log2" else linear_buckets(counts)
            self._write({"kind": "map", "map": name, "histogram": kind, "label": label, "buckets": buckets})
        else:
            printer = print_log2_hist if kind == "log2" else print_linear_hist
            if name:
                self.out.write(_paint(f"\n{name}:", "1", self.color) + "\n")
            printer(counts, label, self.out)
            self.out.flush()
        if clear:
            _clear(map)

    def _print_maps(self) -> None:
        for entry in self._maps_at_exit:
            if isinstance(entry, _HistogramAtExit):
                self.show_histogram(entry.map, label=entry.label, kind=entry.kind)
                continue
            items = entry.map.items()
            if entry.sort_by_value:
                items.sort(key=lambda item: item[1], reverse=True)
            if self.options.json:
                self._write(
                    {
                        "kind": "map",
                        "map": entry.name,
                        "entries": [{entry.key_heading: k, entry.value_heading: v} for k, v in items],
                    }
                )
                continue
            self.out.write(_paint(f"\n{entry.name}:", "1", self.color) + "\n")
            key_width = max([len(entry.key_heading)] + [len(str(k)) for k, _ in items])
            heading = f"  {entry.key_heading.upper():<{key_width}}  {entry.value_heading.upper()}"
            self.out.write(_paint(heading, "1", self.color) + "\n")
            for key, value in items:
                self.out.write(f"  {key!s:<{key_width}}  {value}\n")


def _load_ahead(ebpf: Ebpf) -> None:
    """Verify and load each program of ``ebpf`` whose ``load()`` takes no argument, before the handoff; programs
    whose load needs a target (fentry, lsm, ...) are loaded by main.py as usual. A later ``load()`` of one loaded
    here does nothing (see :attr:`pyaya.Program.loaded_ahead`)."""
    from pyaya.errors import UnsupportedError  # noqa: PLC0415
    from pyaya.programs import Program  # noqa: PLC0415

    for name in ebpf.programs:
        program = ebpf.programs[name]
        if type(program).load is not Program.load or program.loaded:
            continue
        try:
            program.load()
        except UnsupportedError:
            continue  # a type pyaya cannot load: main.py meets the same error where it uses the program
        program.loaded_ahead = True


def _check_histogram_kind(kind: str) -> None:
    if kind not in HISTOGRAM_KINDS:
        raise ValueError(f"histogram kind must be one of {', '.join(HISTOGRAM_KINDS)}, not {kind!r}")


def _clear(map: Map) -> None:
    """Empty a histogram map: delete every key of a hash map, zero every slot of an array."""
    if isinstance(map, MutableMapping):
        for key in list(map):
            with contextlib.suppress(KeyError):
                del map[key]
        return
    setter = getattr(map, "__setitem__", None)
    if setter is None:
        raise TypeError(f"cannot clear map {getattr(map, 'name', map)!r}: it is neither a hash map nor an array")
    for index in range(len(map)):  # type: ignore[arg-type]
        setter(index, 0)


def _row(cells: list[tuple[Column, object]]) -> str:
    parts = []
    for column, value in cells:
        text = str(value)
        if column.width:
            text = text[: column.width] if len(text) > column.width else f"{text:{column.align}{column.width}}"
        parts.append(text)
    return " ".join(parts).rstrip()


@functools.cache
def _c_encoder() -> tuple[Callable[..., Callable[[object, int], list[str]]], Callable[[str], str]] | None:
    """``_json.make_encoder`` and ``_json.encode_basestring_ascii``, the C encoder ``json.dumps`` runs; None on an
    interpreter without json's accelerator."""
    try:
        from _json import encode_basestring_ascii, make_encoder  # noqa: PLC0415 - --json only
    except ImportError:
        return None
    return make_encoder, encode_basestring_ascii


def _json_line(record: dict[str, Any]) -> str:
    """``json.dumps(record, default=_json_default)``, character for character, without importing json (~7 ms with
    re): by the C encoder json itself uses, or by json where that is missing."""
    c_encoder = _c_encoder()
    if c_encoder is None:
        import json  # noqa: PLC0415 - no _json: json's own encoder in Python

        return json.dumps(record, default=_json_default)
    make_encoder, encode_string = c_encoder
    # What json.JSONEncoder(default=_json_default).iterencode(record, _one_shot=True) makes with dumps' other
    # defaults: a fresh dict of markers (check_circular; an encode cut short by an error leaves its marks in it),
    # ASCII strings (ensure_ascii), no indent, ": " and ", ", keys in order, no skipkeys, NaN and Infinity allowed.
    encode = make_encoder({}, _json_default, encode_string, None, ": ", ", ", False, False, True)
    return "".join(encode(record, 0))


def _json_default(value: object) -> object:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="backslashreplace")
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _project_fleet(*folders: Path) -> FleetSettings | None:
    """The fleet settings of the first project found from ``folders`` (main.py's, then the object's)."""
    from pyaya.project import find_project  # noqa: PLC0415

    for folder in folders:
        try:
            return find_project(folder).fleet
        except PyayaError:
            continue
    return None


class _ManagedProgram:
    """A program another loader (bpfman) loaded and attached: attaching it here has nothing left to do."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.links: list[object] = []

    def load(self, *args: object, **kwargs: object) -> None:
        """Nothing to load: the loader that pinned the maps loaded the program."""

    def attach(self, *args: object, **kwargs: object) -> None:
        """Nothing to attach: the loader that pinned the maps attached the program where its configuration says
        (bpfman: the ClusterBpfApplication's links)."""
        import logging  # noqa: PLC0415 - --pinned-maps only

        logging.getLogger("pyaya.runtime").debug("%s: attached by the loader that pinned the maps", self.name)


class PinnedObject:
    """What :meth:`Session.load` returns with ``--pinned-maps DIR``: the maps another loader pinned in ``DIR`` (bpfman
    pins an application's maps under one folder; its CSI driver mounts them into a pod), typed by the BTF of the
    object at ``object_path`` when it exists, and the object's programs as handles whose ``attach`` does nothing.

    Only maps are shared through pins: aya-log records (``AYA_LOGS``) and ring buffers are read as any map is, but a
    map missing from ``DIR`` raises :class:`~pyaya.errors.NotFoundError` naming the folder.
    """

    def __init__(self, folder: str | os.PathLike[str], object_path: str | os.PathLike[str] | None = None) -> None:
        from pathlib import Path  # noqa: PLC0415 - --pinned-maps only

        from pyaya.errors import NotFoundError  # noqa: PLC0415

        self.path = Path(folder)
        if not self.path.is_dir():
            raise NotFoundError(f"--pinned-maps {self.path}: no such folder (where did bpfman pin the maps?)")
        self._object = Path(object_path) if object_path is not None else None
        self._maps: dict[str, Map] = {}
        self._closed = False
        names = sorted(entry.name for entry in self.path.iterdir())
        self._names = names
        programs: list[str] = []
        if self._object is not None and self._object.is_file():
            from pyaya.inspect import inspect_file  # noqa: PLC0415

            programs = [p.name for p in inspect_file(self._object).programs]
        self.programs: dict[str, _ManagedProgram] = {name: _ManagedProgram(name) for name in programs}

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def maps(self) -> _PinnedMaps:
        """The pinned maps by name (the pin's file name), opened on first use."""
        return _PinnedMaps(self)

    def _open(self, name: str) -> Map:
        from pyaya.errors import NotFoundError  # noqa: PLC0415

        if name not in self._maps:
            if name not in self._names:
                raise NotFoundError(f"no map {name!r} pinned in {self.path} (pinned: {', '.join(self._names)})")
            opened = Map.from_pin(self.path / name)
            self._maps[name] = _typed(opened, name, self._object)
        return self._maps[name]

    def flush_logs(self) -> int:
        """Kernel-side logs stay with the loader that owns the programs: nothing to deliver here."""
        return 0

    def close(self) -> None:
        """Close the maps opened here (the pins stay: they belong to the loader)."""
        for opened in self._maps.values():
            closer = getattr(opened, "close", None)
            if callable(closer):
                closer()
        self._maps.clear()
        self._closed = True


class _PinnedMaps(Mapping[str, Map]):
    def __init__(self, owner: PinnedObject) -> None:
        self._owner = owner

    def __getitem__(self, name: str) -> Map:
        return self._owner._open(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._owner._names)

    def __len__(self) -> int:
        return len(self._owner._names)

    def __contains__(self, name: object) -> bool:
        return name in self._owner._names


def _typed(opened: Map, name: str, object_path: Path | None) -> Map:
    """A map opened from a pin, with the key and value codecs the object's BTF gives it (as a load would)."""
    if object_path is None or not object_path.is_file():
        return opened
    from pyaya.btf import Btf  # noqa: PLC0415
    from pyaya.elf import Elf  # noqa: PLC0415
    from pyaya.types import Types, apply_btf_types, map_types  # noqa: PLC0415

    elf = Elf.from_path(object_path)
    section = elf.section(".BTF")
    if section is None:
        return opened
    types = map_types(Types(Btf.from_bytes(bytes(elf.section_data(section)))))
    return apply_btf_types(opened, types.get(name))
