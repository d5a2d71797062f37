"""Finding and reading a pyaya project: a folder with a ``pyaya.toml``, searched upward like cargo does.

```toml
[project]
name = "execwatch"
template = "tracepoint"
[build]
package = "execwatch-ebpf"      # cargo package that produces the objects
objects = ["execwatch"]         # cargo bin targets -> target/bpfel-unknown-none/<profile>/<name>
toolchain = "auto"              # optional: auto, nightly, prebuilt, bootstrap
c_sources = ["src/x.bpf.c"]     # optional: C programs (clang) -> target/bpf/x.bpf.o; default: every *.bpf.c
c_flags = ["-DMAX=64"]          # optional: more clang flags for them
[run]
main = "main.py"                # user-space script run by `pyaya run`
options = ["pid", "interval"]   # optional: which of pyaya run's -p PID and interval [count] main.py honours
unsupported.pid = "why"         # optional: why an option makes no sense here, said when pyaya run refuses it
```

and, for ``pyaya package`` and ``pyaya run --metrics`` (see :func:`fleet_settings`)::

    [attach.execwatch]              # where bpfman attaches the program `execwatch` (the manifests' links)
    tracepoint = "syscalls/sys_enter_execve"
    [globals]                       # read-only globals for bpfman's globalData, computed when packaging
    TASK_TGID_OFFSET = { member_offset = "task_struct.tgid" }
    [metrics.EXEC_COUNTS]           # a map served at /metrics
    type = "counter"
    labels = ["uid"]

``pyaya run`` reads the project on every start, so this module imports nothing heavy (no dataclasses, pathlib,
re or typing: ``tests/unit/test_import_cost.py``; :class:`Project` keeps its paths as text and gives them as Paths
on demand), and an unchanged ``pyaya.toml`` is not parsed again: its last parse is cached beside the build output
(:func:`_read_config`), which saves tomllib's import (~20 ms).
"""

from __future__ import annotations

import marshal
import os
import sys
import time

from pyaya._record import FrozenFields, frozen
from pyaya._toolchain_paths import KINDS, bpf_target
from pyaya.errors import ProjectError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from pathlib import Path
    from typing import Any

__all__ = [
    "ATTACH_KINDS",
    "CONFIG_NAME",
    "METRIC_TYPES",
    "SCHEMA",
    "AttachPoint",
    "FleetSettings",
    "GlobalValue",
    "Key",
    "MetricSpec",
    "Project",
    "find_project",
    "fleet_settings",
    "load_project",
]

CONFIG_NAME = "pyaya.toml"

# Folders never searched for sources when deciding whether the objects are stale.
_SKIP_DIRS = frozenset({"target", ".git", "__pycache__", ".venv", "venv", "node_modules", ".mypy_cache"})
# Files outside a `src/` folder whose change means a rebuild.
_BUILD_INPUTS = frozenset({"Cargo.toml", "Cargo.lock", CONFIG_NAME, "build.rs", "rust-toolchain.toml", "config.toml"})
# C sources and headers, wherever they are in the project.
_C_INPUTS = (".c", ".h")
C_SOURCE_SUFFIX = ".bpf.c"


def c_object_name(source: str | os.PathLike[str]) -> str:
    """``opensnoop.bpf.c`` -> ``opensnoop.bpf.o`` (libbpf's convention); ``x.c`` -> ``x.o``."""
    name = os.path.basename(os.fspath(source))
    return name[: -len(".c")] + ".o" if name.endswith(".c") else name + ".o"


def _find_c_sources(root: str) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        found += [os.path.join(folder, file) for file in sorted(files) if file.endswith(C_SOURCE_SUFFIX)]
    return found


def _path(text: str) -> Path:
    """``text`` as a :class:`pathlib.Path`, pathlib imported on first use: ``pyaya run``'s path never needs it."""
    from pathlib import Path  # noqa: PLC0415 - ~9 ms that pyaya run's start-up does without (issue 13)

    return Path(text)


# -- [attach.*], [globals], [metrics]: the fleet settings --------------------------------------------------------

#: ``[attach.NAME] kind``: how bpfman attaches a program; the default comes from the program's type.
ATTACH_KINDS = ("tracepoint", "kprobe", "kretprobe", "uprobe", "uretprobe", "fentry", "fexit", "xdp", "tc", "tcx")
#: ``[metrics.MAP] type``: how a map is shown to Prometheus.
METRIC_TYPES = ("counter", "gauge", "log2_histogram", "linear_histogram")
_DIRECTIONS = ("ingress", "egress")
_ATTACH_KEYS: dict[str, type | tuple[type, ...]] = {
    "kind": str,
    "tracepoint": str,
    "function": str,
    "offset": int,
    "target": str,
    "interfaces": list,
    "primary_interface": bool,
    "priority": int,
    "direction": str,
}
_METRIC_KEYS: dict[str, type | tuple[type, ...]] = {"type": str, "name": str, "help": str, "labels": list}


@frozen
class AttachPoint:
    """``[attach.NAME]``: where one program is attached when bpfman (or its operator) runs it."""

    program: str
    kind: str | None = None
    """One of :data:`ATTACH_KINDS`; None: from the program's type (a classifier becomes ``tcx``)."""
    tracepoint: str | None = None
    """``category/name`` for a tracepoint."""
    function: str | None = None
    """The kernel function (kprobe, fentry, fexit) or the symbol (uprobe)."""
    offset: int = 0
    target: str | None = None
    """The binary or library of a uprobe (``libc``, ``/usr/bin/bash``)."""
    interfaces: tuple[str, ...] = ()
    """Interfaces an XDP or TC program attaches to (by name)."""
    primary_interface: bool = False
    """Attach to each node's primary interface (the operator finds it) instead of named ``interfaces``."""
    priority: int = 50
    """Order among the programs bpfman runs on the same hook (0-1000, lower first)."""
    direction: str = "ingress"
    """``ingress`` or ``egress`` for a TC/TCX program."""


@frozen
class GlobalValue:
    """``[globals] NAME = ...``: a read-only global's value for bpfman's ``globalData``: a number, or the offset
    of a kernel struct member (``{ member_offset = "task_struct.tgid" }``) read from the packaging machine's BTF."""

    name: str
    value: int | None = None
    member_offset: tuple[str, str] | None = None


@frozen
class MetricSpec:
    """``[metrics.MAP]``: how one map is served to Prometheus."""

    map: str
    type: str
    """One of :data:`METRIC_TYPES`."""
    name: str | None = None
    """The metric's name after the project prefix (default: the map's name in lower case)."""
    help: str | None = None
    labels: tuple[str, ...] = ()
    """Label names for the key: a struct key's fields by default; one name (default ``key``) for a plain key."""


class FleetSettings(FrozenFields):
    """What ``pyaya package`` and ``pyaya run --metrics`` read from ``pyaya.toml``."""

    __slots__ = ("attach", "globals", "metrics", "program_stats")
    _record_fields = __slots__

    attach: dict[str, AttachPoint]
    globals: dict[str, GlobalValue]
    metrics: dict[str, MetricSpec]
    program_stats: bool
    """``[metrics] program_stats = true``: turn on the kernel's BPF run-time statistics while serving metrics."""

    def __init__(
        self,
        attach: dict[str, AttachPoint] | None = None,
        globals: dict[str, GlobalValue] | None = None,
        metrics: dict[str, MetricSpec] | None = None,
        program_stats: bool = False,
    ) -> None:
        put = object.__setattr__
        put(self, "attach", {} if attach is None else attach)
        put(self, "globals", {} if globals is None else globals)
        put(self, "metrics", {} if metrics is None else metrics)
        put(self, "program_stats", program_stats)


class Project(FrozenFields):
    """A pyaya project, as described by its ``pyaya.toml``.

    Its paths are kept as text (:attr:`root_str`, :attr:`main_str`, :meth:`object_files`: what ``pyaya run``
    reads, without :mod:`pathlib`); :attr:`root`, :attr:`main`, :attr:`c_sources` and the other path properties
    give them as :class:`pathlib.Path`, as the dataclass this was did."""

    _fields = (
        "root_str",
        "name",
        "template",
        "package",
        "objects",
        "main_str",
        "toolchain",
        "run_options",
        "unsupported_run_options",
        "tables",
        "fleet",
        "c_source_strs",
        "c_flags",
        "rust",
    )
    __slots__ = _fields
    # Shown and compared as the dataclass did: the raw tables are in neither.
    _record_fields = tuple(name for name in _fields if name != "tables")

    root_str: str
    """The folder holding ``pyaya.toml`` (absolute), as text; :attr:`root` as a Path."""
    name: str
    template: str | None
    package: str
    """The cargo package that produces the BPF objects (``cargo build -p``)."""
    objects: tuple[str, ...]
    """Cargo bin target names; each becomes ``target/<bpf target>/<profile>/<name>``."""
    main_str: str
    """The user-space script ``pyaya run`` runs (absolute), as text; :attr:`main` as a Path."""
    toolchain: str | None
    """``[build] toolchain``: one of ``auto``, ``nightly``, ``prebuilt``, ``bootstrap``, or None when not set."""
    run_options: frozenset[str] | None
    """``[run] options``: which of ``pyaya run``'s ``-p PID`` (``"pid"``) and ``interval [count]`` (``"interval"``,
    also ``--interval``/``--count``) ``main.py`` honours; ``pyaya run`` and :func:`pyaya.runtime.parse_options`
    refuse the others. None when the file does not say: every option is passed on, as main.py's argparse takes
    them all."""
    unsupported_run_options: Mapping[str, str]
    """``[run] unsupported``: option name (of :data:`RUN_OPTION_FLAGS`) -> why it makes no sense for this project
    (``pid = "xdp programs run in softirq context, not in a process: ..."``); ``pyaya run`` refuses the option
    with that reason, whatever ``[run] options`` says."""
    tables: Mapping[str, Any]
    """The whole file as read, checked against :data:`SCHEMA` (for tables without a field here); not compared."""
    fleet: FleetSettings
    """``[attach.*]``, ``[globals]`` and ``[metrics]``: what ``pyaya package`` and ``--metrics`` need."""
    c_source_strs: tuple[str, ...]
    """:attr:`c_sources` as text."""
    c_flags: tuple[str, ...]
    """``[build] c_flags``: clang flags added to pyaya's own for every C source."""
    rust: bool
    """Whether cargo builds objects: False for a C project (C sources, and neither a ``Cargo.toml`` beside
    ``pyaya.toml`` nor ``[build] package``)."""

    def __init__(  # noqa: PLR0917 - the dataclass's signature, positional fields included
        self,
        root: str | os.PathLike[str],
        name: str,
        template: str | None,
        package: str,
        objects: tuple[str, ...],
        main: str | os.PathLike[str],
        toolchain: str | None = None,
        run_options: frozenset[str] | None = None,
        unsupported_run_options: Mapping[str, str] | None = None,
        tables: Mapping[str, Any] | None = None,
        fleet: FleetSettings | None = None,
        c_sources: tuple[str | os.PathLike[str], ...] = (),
        c_flags: tuple[str, ...] = (),
        rust: bool = True,
    ) -> None:
        put = object.__setattr__
        put(self, "root_str", os.fspath(root))
        put(self, "name", name)
        put(self, "template", template)
        put(self, "package", package)
        put(self, "objects", objects)
        put(self, "main_str", os.fspath(main))
        put(self, "toolchain", toolchain)
        put(self, "run_options", run_options)
        put(self, "unsupported_run_options", {} if unsupported_run_options is None else unsupported_run_options)
        put(self, "tables", {} if tables is None else tables)
        put(self, "fleet", FleetSettings() if fleet is None else fleet)
        put(self, "c_source_strs", tuple(os.fspath(source) for source in c_sources))
        put(self, "c_flags", c_flags)
        put(self, "rust", rust)

    @property
    def root(self) -> Path:
        """The folder holding ``pyaya.toml`` (absolute)."""
        return _path(self.root_str)

    @property
    def main(self) -> Path:
        """The user-space script ``pyaya run`` runs (absolute)."""
        return _path(self.main_str)

    @property
    def c_sources(self) -> tuple[Path, ...]:
        """C programs (absolute paths, ``*.bpf.c``) that clang builds into ``target/bpf/<stem>.bpf.o``
        (:mod:`pyaya.cbuild`): ``[build] c_sources``, else every ``*.bpf.c`` file of the project."""
        return tuple(_path(source) for source in self.c_source_strs)

    @property
    def config_str(self) -> str:
        """:attr:`config_path` as text."""
        return os.path.join(self.root_str, CONFIG_NAME)

    @property
    def config_path(self) -> Path:
        return _path(self.config_str)

    def refused_run_options(self, wanted: Iterable[str]) -> str | None:
        """None when ``main.py`` honours each of ``wanted`` (names of :data:`RUN_OPTION_FLAGS`) or the project does
        not say (no ``[run] options``); else the one-line reason to refuse them: the project's own words for an
        option in ``[run] unsupported``, or else what the project lacks."""
        template = f" (template {self.template})" if self.template else ""
        explained = [name for name in wanted if name in self.unsupported_run_options]
        if explained:
            reasons = "; ".join(f"{RUN_OPTION_FLAGS[name]}: {self.unsupported_run_options[name]}" for name in explained)
            return f"{self.name}{template} does not support {reasons}"
        if self.run_options is None:
            return None
        lacking = [name for name in wanted if name not in self.run_options]
        if not lacking:
            return None
        flags = " or ".join(RUN_OPTION_FLAGS[name] for name in lacking)
        honoured = ", ".join(flag for name, flag in RUN_OPTION_FLAGS.items() if name in self.run_options) or "none"
        return (
            f"{self.name}{template} does not support {flags}: its main.py does not use it ([run] options in "
            f"{self.config_str} lists what it honours: {honoured}); drop the option, or make main.py use it and "
            "add it there"
        )

    @property
    def target_dir(self) -> Path:
        """Cargo's target folder: ``$CARGO_TARGET_DIR`` when set, else ``<root>/target``."""
        return _path(self.target_str())

    def target_str(self) -> str:
        """:attr:`target_dir` as text."""
        env = os.environ.get("CARGO_TARGET_DIR")
        return os.path.join(self.root_str, env or "target")  # an absolute $CARGO_TARGET_DIR stays as it is

    def object_paths(self, profile: str = "release") -> list[Path]:
        """Where the objects of ``profile`` (``release`` or ``debug``/``dev``) are after a build: the cargo
        package's, then the C programs' (which have no profiles: BPF code is always built optimised)."""
        return [_path(path) for path in self.object_files(profile)]

    def object_files(self, profile: str = "release") -> list[str]:
        """:meth:`object_paths` as text (``pyaya run --no-build`` reads them without :mod:`pathlib`)."""
        folder = "debug" if profile in ("dev", "debug") else profile
        target = self.target_str()
        rust = [os.path.join(target, bpf_target(), folder, name) for name in self.objects] if self.rust else []
        return rust + [os.path.join(target, "bpf", c_object_name(source)) for source in self.c_source_strs]

    def c_object_paths(self) -> list[Path]:
        """Where clang puts the object of each of :attr:`c_sources`: ``target/bpf/<stem>.bpf.o``."""
        return [self.target_dir / "bpf" / c_object_name(source) for source in self.c_source_strs]

    def source_files(self) -> Iterator[Path]:
        """Every file a build depends on: anything under a ``src/`` folder, manifests, lock files, pyaya.toml."""
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and (d == ".cargo" or not d.startswith("."))]
            here = _path(folder)
            in_src = "src" in here.relative_to(self.root).parts
            for file in files:
                if in_src or file in _BUILD_INPUTS or file.endswith(_C_INPUTS):
                    yield here / file

    def is_stale(self, profile: str = "release") -> bool:
        """True when an object is missing or any build input is newer than the oldest object."""
        try:
            oldest = min(path.stat().st_mtime for path in self.object_paths(profile))
        except (FileNotFoundError, ValueError):  # an object is missing, or there are none
            return True
        for source in self.source_files():
            try:
                if source.stat().st_mtime > oldest:
                    return True
            except FileNotFoundError:  # removed while we walked
                continue
        return False


def find_project(path: str | os.PathLike[str] | None = None) -> Project:
    """Find the project holding ``path`` (default: the current folder), searching parent folders, and read it."""
    start = (os.fspath(path) or ".") if path is not None else os.getcwd()
    if not os.path.exists(start):
        shown = _path(start)  # as pathlib spelled it: the message is the same as it always was
        raise ProjectError(f"{shown} does not exist: pass the path of a pyaya project (a folder with {CONFIG_NAME})")
    start = os.path.realpath(start)
    if os.path.isfile(start):
        if os.path.basename(start) == CONFIG_NAME:
            return load_project(start)
        start = os.path.dirname(start)
    folder = start
    while True:
        candidate = os.path.join(folder, CONFIG_NAME)
        if os.path.isfile(candidate):
            return load_project(candidate)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    raise ProjectError(
        f"no {CONFIG_NAME} in {start} or any parent folder: "
        "run `pyaya new NAME` to create a project, or pass the project's path"
    )


@frozen
class Key:
    """What one key of ``pyaya.toml`` may hold.

    ``kind`` is ``"string"`` (non-empty), ``"strings"`` (a non-empty list of strings), ``"names"`` (a list of
    strings, possibly empty), ``"integer"``,
    ``"number"``, ``"boolean"``, ``"table"`` or ``"tables"`` (an array of tables); ``keys`` are the keys a table
    (or each of the tables) may hold, None for any. ``path``: a path relative to the project folder, which must
    stay inside it once resolved (symlinks followed). ``pattern``: a string (or each string) must match it.
    """

    kind: str
    required: bool = False
    choices: tuple[str, ...] = ()
    path: bool = False
    pattern: str | None = None
    keys: Mapping[str, Key] | None = None
    example: str = ""


# Cargo package and bin target names: letters, digits, '-' and '_'.
_CARGO_NAME = r"[A-Za-z0-9_][A-Za-z0-9_-]*"

#: Every table of ``pyaya.toml`` and the keys each may hold. This is the one place the file's schema lives: a
#: new table or key is added here (with its kind) and ``load_project`` accepts and checks it; anything else in a
#: pyaya.toml is an error naming the table and the key, with the nearest valid key suggested.
SCHEMA: dict[str, Key] = {
    "project": Key(
        "table",
        required=True,
        keys={"name": Key("string", required=True, example='"execwatch"'), "template": Key("string")},
    ),
    "build": Key(
        "table",
        keys={
            "package": Key("string", pattern=_CARGO_NAME, example='"execwatch-ebpf"'),
            "objects": Key("strings", pattern=_CARGO_NAME, example='["execwatch"]'),
            "toolchain": Key("string", choices=KINDS),
            # C programs built with clang (pyaya.cbuild); default: every *.bpf.c file of the project.
            "c_sources": Key("names", path=True, example='["src/opensnoop.bpf.c"]'),
            "c_flags": Key("names", example='["-DMAX_ENTRIES=10240"]'),
        },
    ),
    "run": Key(
        "table",
        keys={
            "main": Key("string", path=True, example='"main.py"'),
            "options": Key("names", choices=("pid", "interval"), example='["pid", "interval"]'),  # RUN_OPTION_FLAGS
            # Why an option makes no sense for the project: said when `pyaya run` refuses it.
            "unsupported": Key(
                "table",
                keys={
                    name: Key("string", example='"xdp programs run in softirq context, not in a process"')
                    for name in ("pid", "interval")  # RUN_OPTION_FLAGS
                },
            ),
        },
    ),
    # Tables keyed by program, global or map name: `fleet_settings` checks what each entry holds.
    "attach": Key("table"),
    "globals": Key("table"),
    "metrics": Key("table"),
}

#: The names ``[run] options`` may list, and the options of ``pyaya run`` / ``main.py`` each stands for.
RUN_OPTION_FLAGS = {"pid": "-p/--pid", "interval": "interval [count] (pyaya run --interval/--count)"}

_KIND_WORDS = {
    "string": "a non-empty string",
    "strings": "a non-empty list of strings",
    "names": "a list of strings (empty for none)",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "table": "a table",
    "tables": "an array of tables ([[...]])",
}


def _type_word(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string" if value.strip() else "an empty string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _fits(kind: str, value: object) -> bool:
    if kind == "string":
        return isinstance(value, str) and bool(value.strip())
    if kind == "strings":
        return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)
    if kind == "names":
        return isinstance(value, list) and all(isinstance(v, str) and v for v in value)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "table":
        return isinstance(value, dict)
    if kind == "tables":
        return isinstance(value, list) and all(isinstance(v, dict) for v in value)
    raise ValueError(f"pyaya.project.SCHEMA names an unknown kind {kind!r}")  # a bug in the schema, not the file


def _suggestion(key: str, valid: Iterable[str]) -> str:
    import difflib  # noqa: PLC0415 - only for a key pyaya.toml should not have

    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _check_table(table: Mapping[str, Any], keys: Mapping[str, Key], where: str, config: str, root: str) -> None:
    """Checks ``table`` (the table ``where``, "" for the file's top level) against ``keys``."""
    for name, value in table.items():
        spec = keys.get(name)
        if spec is None:
            if where:
                valid = ", ".join(keys) or "none"
                raise ProjectError(
                    f'{config}: [{where}] has no key "{name}"{_suggestion(name, keys)}; its keys are {valid}'
                )
            valid = ", ".join(f"[{key}]" for key in keys)
            raise ProjectError(f"{config}: unknown table [{name}]{_suggestion(name, keys)}; pyaya.toml has {valid}")
        _check_value(value, spec, f"{where}.{name}" if where else name, config, root)
    for name, spec in keys.items():
        if spec.required and name not in table:
            if spec.kind == "table" and spec.keys is not None:  # say which of its keys is needed
                _check_table({}, spec.keys, f"{where}.{name}" if where else name, config, root)
                raise ProjectError(f"{config}: [{name}] is missing: add a [{name}] table")
            example = f" = {spec.example}" if spec.example else ' = "..."'
            raise ProjectError(f"{config}: [{where}] {name} is missing: add `{name}{example}` under [{where}]")


def _check_value(value: object, spec: Key, where: str, config: str, root: str) -> None:
    table, _, key = where.rpartition(".")
    shown = f"[{table}] {key}" if table else f"[{key}]" if spec.kind in ("table", "tables") else key
    if not _fits(spec.kind, value):
        example = f", e.g. {key} = {spec.example}" if spec.example else ""
        raise ProjectError(
            f"{config}: {shown} must be {_KIND_WORDS[spec.kind]}{example}, not {value!r} ({_type_word(value)})"
            if spec.kind not in ("table", "tables")
            else f"{config}: `{where}` must be {_KIND_WORDS[spec.kind]} ([{where}]), not {_type_word(value)}"
        )
    if spec.kind == "table" and spec.keys is not None:
        assert isinstance(value, dict)
        _check_table(value, spec.keys, where, config, root)
    if spec.kind == "tables" and spec.keys is not None:
        assert isinstance(value, list)
        for item in value:
            _check_table(item, spec.keys, where, config, root)
    strings = value if isinstance(value, list) else [value]
    for item in strings:
        if not isinstance(item, str):
            continue
        if spec.choices and item not in spec.choices:
            raise ProjectError(f"{config}: {shown} = {item!r} is not one of {', '.join(spec.choices)}")
        if spec.pattern is not None and not _matches(spec.pattern, item):
            raise ProjectError(
                f"{config}: {shown} = {item!r} is not a cargo name (letters, digits, '-' and '_'), e.g. "
                f"{key} = {spec.example}"
            )
        if spec.path:
            _inside(root, item, shown, config)


def _matches(pattern: str, text: str) -> bool:
    """``re.fullmatch(pattern, text)``; the cargo-name pattern without :mod:`re` (on every ``pyaya run``)."""
    if pattern == _CARGO_NAME:
        return bool(text) and text[0] != "-" and all(c.isascii() and (c.isalnum() or c in "_-") for c in text)
    import re  # noqa: PLC0415 - no other pattern is in SCHEMA today

    return re.fullmatch(pattern, text) is not None


def _inside(root: str, value: str, shown: str, config: str) -> str:
    """``root / value`` resolved, which must lie inside ``root``: pyaya never reads or runs a file outside the
    project on pyaya.toml's word."""
    resolved = os.path.realpath(os.path.join(root, value))
    top = os.path.realpath(root)
    if os.path.commonpath([top, resolved]) != top:
        raise ProjectError(
            f"{config}: {shown} = {value!r} points outside the project ({resolved}): give a path inside {root}"
        )
    return resolved


#: The cached parse of a project's pyaya.toml: ``<root>/target/<this>`` (see :func:`_read_config`).
CONFIG_CACHE_NAME = ".pyaya-toml.marshal"
#: Bumped when what the cache holds changes shape.
_CACHE_FORMAT = 1
#: A pyaya.toml modified less than this long ago (ns) is not cached: a second change within the file system's
#: timestamp granularity could leave the same mtime, size and inode (git's "racy" files).
_RACY_NS = 2_000_000_000


def _cache_key(config: str, status: os.stat_result) -> tuple[object, ...]:
    from pyaya._native import VERSION  # noqa: PLC0415 - main.py imports it next anyway

    return (
        _CACHE_FORMAT,
        config,
        status.st_mtime_ns,
        status.st_ctime_ns,
        status.st_size,
        status.st_ino,
        status.st_dev,
        VERSION,
        sys.version,
        marshal.version,
    )


def _cached_config(cache: str, key: tuple[object, ...]) -> dict[str, Any] | None:
    """The table cached at ``cache`` under ``key``; None when there is none, it is unreadable or the key differs."""
    try:
        with open(cache, "rb") as file:
            stored = marshal.loads(file.read())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if type(stored) is tuple and len(stored) == 2 and stored[0] == key and type(stored[1]) is dict:
        table: dict[str, Any] = stored[1]
        return table
    return None


def _cache_config(cache: str, key: tuple[object, ...], data: dict[str, Any], status: os.stat_result) -> None:
    """Write ``data`` (a pyaya.toml that loaded) to ``cache`` under ``key``, atomically, if its folder exists;
    nothing on any error (a date in the file, which marshal cannot hold, a read-only folder...)."""
    if time.time_ns() - status.st_mtime_ns < _RACY_NS or not os.path.isdir(os.path.dirname(cache)):
        return
    temporary = f"{cache}.{os.getpid()}.tmp"
    try:
        payload = marshal.dumps((key, data))  # type: ignore[arg-type]  # plain values; ValueError otherwise
        with open(temporary, "wb") as file:
            file.write(payload)
        os.replace(temporary, cache)
    except (OSError, ValueError):
        try:  # noqa: SIM105 - contextlib for one line
            os.unlink(temporary)
        except OSError:
            pass


def _read_config(config: str) -> tuple[dict[str, Any], Callable[[], None] | None]:
    """The table of ``config``, parsed by tomllib or taken from the cache of its last parse; and, when it was
    parsed, how to cache it (called once the project loaded: a bad file is never cached).

    The cache (``target/.pyaya-toml.marshal``, beside what ``pyaya build`` writes) is keyed by the file's path,
    mtime, ctime, size, inode and device, pyaya's and Python's versions: any change and the file is parsed again;
    a missing or unreadable cache is the same as none. It saves tomllib's ~20 ms import on each ``pyaya run``.
    """
    try:
        with open(config, "rb") as file:
            status = os.fstat(file.fileno())
            cache = os.path.join(os.path.dirname(config), "target", CONFIG_CACHE_NAME)
            key = _cache_key(config, status)
            cached = _cached_config(cache, key)
            if cached is not None:
                return cached, None
            if sys.version_info >= (3, 11):
                import tomllib  # noqa: PLC0415 - ~20 ms: only when the cache cannot answer
            else:  # pragma: no cover - exercised on 3.10 only
                import tomli as tomllib  # noqa: PLC0415
            try:
                data = tomllib.load(file)
            except tomllib.TOMLDecodeError as error:
                raise ProjectError(f"{config} is not valid TOML: {error}") from None
    except FileNotFoundError:
        raise ProjectError(f"{config} does not exist: run `pyaya new NAME` to create a project") from None
    except OSError as error:
        raise ProjectError(f"cannot read {config}: {error.strerror or error}") from None
    return data, lambda: _cache_config(cache, key, data, status)


def load_project(config: str | os.PathLike[str]) -> Project:
    """Read one ``pyaya.toml``; every problem is a :class:`ProjectError` naming the file and the fix.

    The file is checked against :data:`SCHEMA`: unknown tables and keys, values of the wrong type, and paths that
    lead outside the project are errors. An unchanged file's parse comes from a cache (:func:`_read_config`).
    """
    config = os.path.realpath(os.fspath(config))
    data, remember = _read_config(config)

    root = os.path.dirname(config)
    _check_table(data, SCHEMA, "", config, root)
    project = data["project"]
    build = data.get("build", {})
    run = data.get("run", {})
    name = project["name"]
    main = run.get("main", "main.py")
    unsupported = run.get("unsupported", {})
    both = sorted(set(unsupported) & set(run.get("options", [])))
    if both:
        raise ProjectError(
            f"{config}: [run] lists {', '.join(both)} both in options (main.py honours it) and in unsupported "
            "(it makes no sense here): keep it in one of them"
        )
    if "c_sources" in build:
        c_sources = tuple(_inside(root, source, "[build] c_sources", config) for source in build["c_sources"])
        for source in c_sources:
            if not os.path.isfile(source):
                raise ProjectError(f"{config}: [build] c_sources names {source}, which does not exist")
    else:
        c_sources = tuple(_find_c_sources(root))
    # A C project has no Cargo.toml of its own; C sources beside a cargo package say so with one, or [build] package.
    rust = not c_sources or os.path.isfile(os.path.join(root, "Cargo.toml")) or "package" in build
    names = [c_object_name(source) for source in c_sources]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ProjectError(
            f"{config}: several C sources would build {', '.join(twice)} (target/bpf/ holds one object per file "
            "name): rename one, or list the ones to build in [build] c_sources"
        )
    project = Project(
        root=root,
        name=name,
        template=project.get("template"),
        package=build.get("package", f"{name}-ebpf"),
        objects=tuple(build.get("objects", [name])) if rust else (),
        main=_inside(root, main, "[run] main", config),
        toolchain=build.get("toolchain"),
        run_options=frozenset(run["options"]) if "options" in run else None,
        unsupported_run_options=dict(unsupported),
        tables=data,
        fleet=fleet_settings(data, config),
        c_sources=c_sources,
        c_flags=tuple(build.get("c_flags", ())),
        rust=rust,
    )
    if remember is not None:
        remember()
    return project


# -- reading the fleet tables -------------------------------------------------------------------------------------


def _entries(
    table: dict[str, Any], section: str, keys: dict[str, type | tuple[type, ...]], config: str | os.PathLike[str]
) -> None:
    for key, value in table.items():
        expected = keys.get(key)
        if expected is None:
            raise ProjectError(f"{config}: unknown key `{key}` in [{section}]; known keys: {', '.join(keys)}")
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            name = expected.__name__ if isinstance(expected, type) else "/".join(t.__name__ for t in expected)
            raise ProjectError(f"{config}: [{section}] {key} must be a {name}, not {value!r}")


def _string_list(value: list[Any], section: str, key: str, config: str | os.PathLike[str]) -> tuple[str, ...]:
    if not all(isinstance(item, str) and item for item in value):
        raise ProjectError(f"{config}: [{section}] {key} must be a list of non-empty strings, not {value!r}")
    return tuple(value)


def _attach_point(program: str, table: dict[str, Any], config: str | os.PathLike[str]) -> AttachPoint:
    section = f"attach.{program}"
    _entries(table, section, _ATTACH_KEYS, config)
    kind = table.get("kind")
    if kind is not None and kind not in ATTACH_KINDS:
        raise ProjectError(f"{config}: [{section}] kind = {kind!r} is not one of {', '.join(ATTACH_KINDS)}")
    direction = table.get("direction", "ingress")
    if direction not in _DIRECTIONS:
        raise ProjectError(f"{config}: [{section}] direction must be ingress or egress, not {direction!r}")
    priority = table.get("priority", 50)
    if not 0 <= priority <= 1000:
        raise ProjectError(
            f"{config}: [{section}] priority must be between 0 and 1000 (bpfman's range), not {priority}"
        )
    tracepoint = table.get("tracepoint")
    if tracepoint is not None and tracepoint.count("/") != 1:
        raise ProjectError(f'{config}: [{section}] tracepoint must be "category/name", not {tracepoint!r}')
    interfaces = _string_list(table.get("interfaces", []), section, "interfaces", config)
    return AttachPoint(
        program=program,
        kind=kind,
        tracepoint=tracepoint,
        function=table.get("function"),
        offset=table.get("offset", 0),
        target=table.get("target"),
        interfaces=interfaces,
        primary_interface=table.get("primary_interface", False),
        priority=priority,
        direction=direction,
    )


def _global_value(name: str, value: Any, config: str | os.PathLike[str]) -> GlobalValue:
    if isinstance(value, int) and not isinstance(value, bool):
        return GlobalValue(name, value=value)
    if isinstance(value, dict) and set(value) == {"member_offset"} and isinstance(value["member_offset"], str):
        struct, _, member = value["member_offset"].partition(".")
        if struct and member:
            return GlobalValue(name, member_offset=(struct, member))
    raise ProjectError(
        f'{config}: [globals] {name} must be an integer or {{ member_offset = "struct.member" }}, not {value!r}'
    )


def _metric_spec(map_name: str, table: dict[str, Any], config: str | os.PathLike[str]) -> MetricSpec:
    section = f"metrics.{map_name}"
    _entries(table, section, _METRIC_KEYS, config)
    kind = table.get("type")
    if kind not in METRIC_TYPES:
        raise ProjectError(f"{config}: [{section}] type must be one of {', '.join(METRIC_TYPES)}, not {kind!r}")
    name = table.get("name")
    if name is not None and not name.replace("_", "a").isalnum():
        raise ProjectError(f"{config}: [{section}] name must be letters, digits and underscores, not {name!r}")
    labels = _string_list(table.get("labels", []), section, "labels", config)
    return MetricSpec(map=map_name, type=kind, name=name, help=table.get("help"), labels=labels)


def _table(data: dict[str, Any], key: str, config: str | os.PathLike[str]) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ProjectError(f"{config}: `{key}` must be a table ([{key}])")
    return value


def fleet_settings(data: dict[str, Any], config: str | os.PathLike[str]) -> FleetSettings:
    """``[attach.*]``, ``[globals]`` and ``[metrics]`` of a parsed ``pyaya.toml`` (``config`` names it in errors)."""
    attach_table = _table(data, "attach", config)
    attach = {}
    for program, table in attach_table.items():
        if not isinstance(table, dict):
            raise ProjectError(f"{config}: `attach.{program}` must be a table ([attach.{program}])")
        attach[program] = _attach_point(program, table, config)
    globals_ = {name: _global_value(name, value, config) for name, value in _table(data, "globals", config).items()}
    metrics: dict[str, MetricSpec] = {}
    program_stats = False
    for key, value in _table(data, "metrics", config).items():
        if key == "program_stats":
            if not isinstance(value, bool):
                raise ProjectError(f"{config}: [metrics] program_stats must be true or false, not {value!r}")
            program_stats = value
        elif isinstance(value, dict):
            metrics[key] = _metric_spec(key, value, config)
        else:
            raise ProjectError(f"{config}: [metrics] {key} must be a table ([metrics.{key}]) or program_stats")
    return FleetSettings(attach=attach, globals=globals_, metrics=metrics, program_stats=program_stats)
