"""What a project's ``main.py`` needs to be a good command: options, output and a clean stop.

``pyaya run`` runs ``main.py --object PATH [--json] [--duration SECONDS]``; the same script runs directly with
``sudo python main.py --object target/bpfel-unknown-none/release/NAME``. A :class:`Session` parses those options,
loads the object, prints events as aligned columns on a terminal (JSON lines with ``--json``, as design section 4
specifies: one object per line with a ``"kind"`` of ``event``, ``log``, ``map`` or ``lost``), forwards kernel-side
logs, stops after ``--duration`` or on Ctrl-C/SIGTERM, and prints the chosen maps at exit.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, TextIO

from pyaya.errors import PyayaError
from pyaya.loader import Ebpf
from pyaya.maps import HashMap, RingBuf
from pyaya.types import Record

__all__ = ["Column", "RunOptions", "Session", "parse_options"]


@dataclass(frozen=True)
class RunOptions:
    """The options every project's ``main.py`` takes."""

    object_path: Path
    json: bool = False
    duration: float | None = None
    verbose: bool = False
    extra: Sequence[str] = ()


def _default_object(script: Path) -> Path | None:
    """The first object of the project holding ``script``, per its pyaya.toml (release profile)."""
    try:
        from pyaya.project import find_project  # noqa: PLC0415 - only needed without --object

        project = find_project(script.parent)
    except PyayaError:
        return None
    paths = project.object_paths("release")
    return paths[0] if paths else None


def parse_options(argv: Sequence[str] | None = None, *, description: str | None = None) -> RunOptions:
    """Parse ``--object``, ``--json`` and ``--duration``; unknown arguments are kept in ``extra``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--object", type=Path, help="the BPF object to load (default: the project's first object)")
    parser.add_argument("--json", action="store_true", help="write one JSON object per line instead of columns")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)")
    parser.add_argument("-v", "--verbose", action="store_true", help="also show kernel-side debug log records")
    args, extra = parser.parse_known_args(argv)
    object_path = args.object or _default_object(Path(sys.argv[0]).resolve())
    if object_path is None:
        parser.error("no --object given and no built object found: run `pyaya build` or pass --object PATH")
    if args.duration is not None and args.duration < 0:
        parser.error("--duration must be >= 0")
    return RunOptions(
        object_path=Path(object_path),
        json=args.json,
        duration=args.duration,
        verbose=args.verbose,
        extra=tuple(extra),
    )


@dataclass(frozen=True)
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


@dataclass
class _MapAtExit:
    name: str
    key_heading: str
    value_heading: str
    map: HashMap
    sort_by_value: bool = True


class _LogToOutput(logging.Handler):
    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session

    def emit(self, record: logging.LogRecord) -> None:
        target = record.name.removeprefix("pyaya.ebpf").lstrip(".")
        self.session.log(record.levelname.lower(), target, record.getMessage())


@dataclass
class Session:
    """A run of a project's user space. Use as a context manager around loading, attaching and streaming."""

    name: str
    options: RunOptions = field(default_factory=parse_options)
    out: TextIO = field(default_factory=lambda: sys.stdout)
    columns: Sequence[Column] = ()
    _ebpf: Ebpf | None = None
    _maps_at_exit: list[_MapAtExit] = field(default_factory=list)
    _deadline: float | None = None
    _header_printed: bool = False
    _log_handler: logging.Handler | None = None
    _previous_sigterm: Any = None
    events_seen: int = 0
    _announced: bool = False

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def __enter__(self) -> Session:
        if self.options.duration is not None:
            self._deadline = time.monotonic() + self.options.duration
        self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        self._log_handler = _LogToOutput(self)
        ebpf_logger = logging.getLogger("pyaya.ebpf")
        ebpf_logger.addHandler(self._log_handler)
        # JSON consumers filter for themselves; on a terminal, debug records only with -v.
        ebpf_logger.setLevel(logging.DEBUG if self.options.json or self.options.verbose else logging.INFO)
        ebpf_logger.propagate = False
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
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
            if self._ebpf is not None:
                self._ebpf.close()
            if self._log_handler is not None:
                logging.getLogger("pyaya.ebpf").removeHandler(self._log_handler)
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self.out.flush()
        if isinstance(exc, PyayaError):
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(1)
        return interrupted  # Ctrl-C and SIGTERM end the run normally, after the maps are printed

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        raise _Stop

    def load(
        self, *, globals: Mapping[str, object] | None = None, max_entries: Mapping[str, int] | None = None
    ) -> Ebpf:
        """Load the object given by ``--object``; closed (links detached, maps freed) when the session ends."""
        self._ebpf = Ebpf.load_file(self.options.object_path, globals=globals, max_entries=max_entries)
        return self._ebpf

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

    def stream(self, ring: RingBuf, *, batch: int | None = None) -> Iterator[Any]:
        """Yield records from ``ring`` until ``--duration`` runs out (or forever), draining many per wake-up: decoded
        records where the ring buffer is typed (a ``#[btf_map]`` ring buffer, or ``ring.typed("Name")``), else
        bytes."""
        self.announce()
        while True:
            left = self.remaining()
            records = ring.drain(batch, None if left is None else left)
            yield from records
            if self._deadline is not None and time.monotonic() >= self._deadline:
                return

    def wait(self, *, poll: Callable[[], None] | None = None, interval: float = 1.0) -> None:
        """For projects without a stream: sleep until ``--duration`` ends, calling ``poll`` every ``interval``."""
        self.announce()
        while True:
            left = self.remaining()
            if left is not None and left <= 0:
                return
            time.sleep(interval if left is None else min(interval, left))
            if self._ebpf is not None:
                self._ebpf.flush_logs()
            if poll is not None:
                poll()

    # -- output -------------------------------------------------------------------------------------------------

    def _write(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record, default=_json_default) + "\n")
        self.out.flush()

    def event(self, map_name: str, data: Mapping[str, Any] | Record) -> None:
        """Show one event: a table row, or ``{"kind": "event", "map": ..., "data": {...}}`` with ``--json``.

        ``data`` is a mapping of field names to values, or a record decoded from the object's BTF."""
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
                self.out.write(_row([(column, column.title) for column in self.columns]) + "\n")
                self._header_printed = True
            self.out.write(_row([(column, data.get(column.field, "")) for column in self.columns]) + "\n")
        self.out.flush()

    def log(self, level: str, target: str, message: str) -> None:
        """Show a kernel-side log record (aya-log)."""
        if self.options.json:
            self._write({"kind": "log", "level": level, "target": target, "message": message})
        else:
            print(f"[{level}] {target}: {message}", file=sys.stderr)

    def lost(self, map_name: str, count: int) -> None:
        """Report records the kernel dropped because user space fell behind."""
        if self.options.json:
            self._write({"kind": "lost", "map": map_name, "count": count})
        else:
            print(f"warning: lost {count} records from {map_name}", file=sys.stderr)

    def show_map_at_exit(
        self, map: HashMap, *, key: str = "key", value: str = "value", sort_by_value: bool = True
    ) -> None:
        """Print ``map`` when the run ends (a table, or ``{"kind": "map", ...}`` with ``--json``)."""
        self._maps_at_exit.append(_MapAtExit(map.name, key, value, map, sort_by_value))

    def _print_maps(self) -> None:
        for entry in self._maps_at_exit:
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
            self.out.write(f"\n{entry.name}:\n")
            key_width = max([len(entry.key_heading)] + [len(str(k)) for k, _ in items])
            self.out.write(f"  {entry.key_heading.upper():<{key_width}}  {entry.value_heading.upper()}\n")
            for key, value in items:
                self.out.write(f"  {key!s:<{key_width}}  {value}\n")


def _row(cells: list[tuple[Column, object]]) -> str:
    parts = []
    for column, value in cells:
        text = str(value)
        if column.width:
            text = text[: column.width] if len(text) > column.width else f"{text:{column.align}{column.width}}"
        parts.append(text)
    return " ".join(parts).rstrip()


def _json_default(value: object) -> object:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="backslashreplace")
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
