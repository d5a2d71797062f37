"""Rendering project templates safely: validated names, no path escapes, nothing half-written on failure.

Templates live in ``pyaya/templates/<kind>/`` (the repo's ``templates/``, shipped in the wheel). Each holds a
``template.toml`` with a one-line ``description`` and optional ``[options.NAME]`` tables (``default``, ``help``,
``check``, ``choices``); every other file is copied with ``{{name}}``, ``{{crate_name}}``, ``{{pyaya_version}}`` and
each option's ``{{NAME}}`` replaced in its contents and in its path, and a ``.tmpl`` suffix removed.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pyaya.errors import PyayaError, ScaffoldError

if TYPE_CHECKING:
    from importlib.abc import Traversable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "DEFAULT_TEMPLATE",
    "MAX_NAME_LENGTH",
    "RESERVED_NAMES",
    "RUST_KEYWORDS",
    "Template",
    "TemplateOption",
    "btf_tracepoints",
    "check_option",
    "create_project",
    "elf_function_symbols",
    "get_template",
    "interfaces",
    "kernel_functions",
    "list_templates",
    "lsm_hooks",
    "render",
    "resolve_library",
    "resolve_uprobe_target",
    "templates_root",
    "tracefs_events",
    "tracepoint_categories",
    "tracepoint_names",
    "validate_name",
]

DEFAULT_TEMPLATE = "tracepoint"
MAX_NAME_LENGTH = 64
TEMPLATE_CONFIG = "template.toml"
TMPL_SUFFIX = ".tmpl"
SKIPPED = frozenset({"target", "Cargo.lock", "__pycache__", ".pytest_cache", ".mypy_cache"})

RUST_KEYWORDS = frozenset(
    [
        "abstract",
        "as",
        "async",
        "await",
        "become",
        "box",
        "break",
        "const",
        "continue",
        "crate",
        "do",
        "dyn",
        "else",
        "enum",
        "extern",
        "false",
        "final",
        "fn",
        "for",
        "gen",
        "if",
        "impl",
        "in",
        "let",
        "loop",
        "macro",
        "match",
        "mod",
        "move",
        "mut",
        "override",
        "priv",
        "pub",
        "ref",
        "return",
        "self",
        "Self",
        "static",
        "struct",
        "super",
        "trait",
        "true",
        "try",
        "type",
        "typeof",
        "unsafe",
        "unsized",
        "use",
        "virtual",
        "where",
        "while",
        "yield",
    ]
)
RESERVED_NAMES = frozenset({"test", "core", "std", "alloc", "proc_macro"})

_NAME_CHARS = re.compile(r"[a-z0-9_-]+")
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def validate_name(name: str) -> str:
    """Check a project name the way cargo checks a package name; return the crate name (``-`` -> ``_``)."""
    hint = "use lowercase ASCII letters, digits, '-' and '_', starting with a letter (e.g. execwatch, exec-watch)"
    if not name:
        raise ScaffoldError(f"the project name is empty: {hint}")
    if "/" in name or "\\" in name or name in (".", "..") or (os.altsep and os.altsep in name):
        raise ScaffoldError(
            f"the project name {name!r} contains a path separator: give a plain name; {hint}; "
            "to create it elsewhere, pass --path DIR"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise ScaffoldError(f"the project name is {len(name)} characters long: at most {MAX_NAME_LENGTH} are allowed")
    if not _NAME_CHARS.fullmatch(name):
        bad = sorted({c for c in name if not (c.isascii() and (c.islower() or c.isdigit() or c in "-_"))})
        shown = ", ".join(repr(c) for c in bad)
        raise ScaffoldError(f"the project name {name!r} contains {shown}: {hint}")
    if not name[0].isalpha():
        raise ScaffoldError(f"the project name {name!r} must start with a letter: {hint}")
    crate = name.replace("-", "_")
    if name in RUST_KEYWORDS or crate in RUST_KEYWORDS:
        raise ScaffoldError(f"the project name {name!r} is a Rust keyword: pick another name, e.g. {name}-probe")
    if name in RESERVED_NAMES or crate in RESERVED_NAMES:
        raise ScaffoldError(
            f"the project name {name!r} is the name of a Rust built-in crate: pick another name, e.g. {name}-probe"
        )
    return crate


def _pyaya_version() -> str:
    # importlib.metadata costs ~15 ms to import, and only `pyaya new` needs it (the CLI imports this module).
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("pyaya")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0.0.0+unknown"


def templates_root() -> Traversable:
    """Where the templates are: ``pyaya/templates`` inside the installed package."""
    from importlib import resources  # noqa: PLC0415 - only for templates; the CLI imports this module at start

    return resources.files("pyaya") / "templates"


@dataclass(frozen=True)
class TemplateOption:
    """One ``[options.NAME]`` table of a template.toml: a value substituted for ``{{NAME}}``."""

    name: str
    default: str
    help: str
    #: How the value is validated (see :mod:`pyaya.cli.new`): ``"choice"``, ``"interface"``, ``"tracepoint"``,
    #: ``"kernel_function"``, ``"lsm_hook"``, ``"btf_tracepoint"``, ``"uprobe_target"``, ``"uprobe_function"``,
    #: ``"identifier"`` or ``""`` (free text).
    check: str = ""
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Template:
    kind: str
    description: str
    root: Traversable
    options: tuple[TemplateOption, ...] = ()


def _read_template(folder: Traversable) -> Template | None:
    config = folder / TEMPLATE_CONFIG
    if not folder.is_dir() or not config.is_file():
        return None
    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ScaffoldError(f"template {folder.name}: {TEMPLATE_CONFIG} is invalid: {error}") from None
    description = data.get("description", "")
    options: list[TemplateOption] = []
    for option_name, table in dict(data.get("options", {})).items():
        if not isinstance(table, dict) or "default" not in table:
            raise ScaffoldError(f"template {folder.name}: [options.{option_name}] needs a default")
        options.append(
            TemplateOption(
                name=option_name,
                default=str(table["default"]),
                help=str(table.get("help", "")),
                check=str(table.get("check", "")),
                choices=tuple(str(c) for c in table.get("choices", ())),
            )
        )
    return Template(folder.name, str(description).strip(), folder, tuple(options))


def list_templates() -> list[Template]:
    """Every template that ships with pyaya, sorted by kind."""
    root = templates_root()
    if not root.is_dir():
        return []
    found = (_read_template(entry) for entry in root.iterdir())
    return sorted((template for template in found if template is not None), key=lambda t: t.kind)


def get_template(kind: str) -> Template:
    templates = list_templates()
    for template in templates:
        if template.kind == kind:
            return template
    valid = ", ".join(t.kind for t in templates) or "none (the package ships no templates: reinstall pyaya)"
    raise ScaffoldError(f"unknown template {kind!r}: valid templates are {valid} (see `pyaya templates`)")


def _substitute(text: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _render_tree(source: Traversable, dest: Path, values: dict[str, str], top: bool) -> list[Path]:
    written: list[Path] = []
    for entry in sorted(source.iterdir(), key=lambda e: e.name):
        if entry.name in SKIPPED or entry.name.endswith(".pyc") or (top and entry.name == TEMPLATE_CONFIG):
            continue
        name = _substitute(entry.name, values)
        if name.endswith(TMPL_SUFFIX) and entry.is_file():
            name = name[: -len(TMPL_SUFFIX)]
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise ScaffoldError(f"template file {entry.name!r} renders to an unsafe path component {name!r}")
        target = dest / name
        if entry.is_dir():
            target.mkdir(exist_ok=True)
            written += _render_tree(entry, target, values, top=False)
            continue
        data = entry.read_bytes()
        with contextlib.suppress(UnicodeDecodeError):  # a binary file is copied as it is
            data = _substitute(data.decode("utf-8"), values).encode("utf-8")
        target.write_bytes(data)
        if isinstance(entry, Path) and os.access(entry, os.X_OK):
            target.chmod(0o755)
        written.append(target)
    return written


def render(
    kind: str,
    name: str,
    dest: str | os.PathLike[str],
    *,
    force: bool = False,
    options: dict[str, str] | None = None,
) -> list[Path]:
    """Render template ``kind`` for project ``name`` into the folder ``dest``; return the files written.

    ``dest`` must not exist or be empty unless ``force``, in which case the template's files overwrite the ones
    there (other files are kept). The template is rendered into a temporary sibling folder first and moved into
    place, so a failure leaves nothing behind.
    """
    crate = validate_name(name)
    template = get_template(kind)
    option_values = _option_values(template, options or {})
    dest = Path(dest).absolute()
    if dest.exists() and not dest.is_dir():
        raise ScaffoldError(f"{dest} exists and is not a folder: pick another name or --path")
    non_empty = dest.is_dir() and any(dest.iterdir())
    if non_empty and not force:
        raise ScaffoldError(
            f"{dest} already exists and is not empty: pick another name, or pass --force to render over it"
        )
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".pyaya-new", dir=dest.parent))
    except OSError as error:
        raise ScaffoldError(f"cannot create {dest}: {error.strerror or error}") from None
    values = {**option_values, "name": name, "crate_name": crate, "pyaya_version": _pyaya_version()}
    try:
        staged = _render_tree(template.root, staging, values, top=True)
        if not non_empty:
            if dest.is_dir():
                dest.rmdir()
            staging.rename(dest)
        else:
            _merge(staging, dest)
    except OSError as error:
        raise ScaffoldError(f"cannot create {dest}: {error.strerror or error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [dest / path.relative_to(staging) for path in staged]


def _option_values(template: Template, given: dict[str, str]) -> dict[str, str]:
    """The template's option defaults overridden by ``given``; unknown names and values outside ``choices`` fail."""
    known = {option.name: option for option in template.options}
    unknown = sorted(set(given) - set(known))
    if unknown:
        valid = ", ".join(sorted(known)) or "none"
        raise ScaffoldError(f"template {template.kind} has no option {', '.join(unknown)}: its options are {valid}")
    values = {option.name: option.default for option in template.options}
    for option_name, value in given.items():
        option = known[option_name]
        if option.choices and value not in option.choices:
            raise ScaffoldError(
                f"{option_name} must be one of {', '.join(option.choices)} for template {template.kind}, not {value!r}"
            )
        values[option_name] = value
    return values


def _merge(staging: Path, dest: Path) -> None:
    """Move every rendered file over ``dest``; checks for file/folder clashes first so it fails before writing."""
    files = [path for path in staging.rglob("*") if not path.is_dir()]
    for path in files:
        relative = path.relative_to(staging)
        for parent in [*reversed(relative.parents[:-1]), relative]:
            existing = dest / parent
            wants_dir = parent != relative
            if existing.exists() and existing.is_dir() != wants_dir:
                what = "a folder" if wants_dir else "a file"
                raise ScaffoldError(f"--force cannot render over {existing}: the template needs {what} there")
    for path in files:
        target = dest / path.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)


def create_project(
    name: str,
    *,
    template: str = DEFAULT_TEMPLATE,
    path: str | os.PathLike[str] | None = None,
    force: bool = False,
    options: dict[str, str] | None = None,
) -> tuple[Path, list[Path]]:
    """``pyaya new``: create project ``name`` in ``path`` (default ``./name``); return its folder and files."""
    validate_name(name)
    dest = Path(path) if path is not None else Path.cwd() / name
    files = render(template, name, dest, force=force, options=options)
    return dest.absolute(), files


# -- checking option values against this machine -----------------------------------------------------------------

#: Where the kernel lists network interfaces, and where tracefs is usually mounted.
SYS_CLASS_NET = Path("/sys/class/net")
TRACEFS_ROOTS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
LIBRARY_DIRS = (
    "/lib",
    "/usr/lib",
    "/lib64",
    "/usr/lib64",
    "/usr/local/lib",
    f"/lib/{os.uname().machine}-linux-gnu",
    f"/usr/lib/{os.uname().machine}-linux-gnu",
)
_C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _did_you_mean(value: str, candidates: Iterable[str], *, cutoff: float = 0.6) -> str:
    close = difflib.get_close_matches(value, list(candidates), n=3, cutoff=cutoff)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def interfaces() -> list[str]:
    """The network interfaces of this machine (``/sys/class/net``), sorted."""
    try:
        return sorted(entry.name for entry in SYS_CLASS_NET.iterdir())
    except OSError:
        return []


def tracefs_events() -> Path | None:
    """The ``events`` folder of a mounted tracefs, or None when tracefs is not mounted."""
    for root in TRACEFS_ROOTS:
        events = root / "events"
        if events.is_dir():
            return events
    return None


def _sorted_dirs(folder: Path) -> list[str]:
    try:
        return sorted(entry.name for entry in folder.iterdir() if entry.is_dir())
    except OSError:
        return []


def tracepoint_categories() -> list[str]:
    """Tracepoint categories in tracefs (``syscalls``, ``sched``, ...); empty when tracefs is not mounted."""
    events = tracefs_events()
    return [] if events is None else _sorted_dirs(events)


def tracepoint_names(category: str) -> list[str]:
    """The tracepoints of one category in tracefs."""
    events = tracefs_events()
    if events is None or "/" in category or category in ("", ".", ".."):
        return []
    return _sorted_dirs(events / category)


@functools.lru_cache(maxsize=1)
def _vmlinux_names() -> tuple[frozenset[str], frozenset[str]]:
    """(FUNC names, TYPEDEF names) of the running kernel's BTF."""
    from pyaya.btf import Btf, Kind  # noqa: PLC0415 - only checks of kernel names need the kernel's BTF

    try:
        btf = Btf.vmlinux()
    except PyayaError as error:
        raise ScaffoldError(
            f"cannot read the kernel's BTF ({error}): kernel names can only be checked on a kernel built with "
            "CONFIG_DEBUG_INFO_BTF; pass --no-check to skip the check"
        ) from None
    return frozenset(btf.names(Kind.FUNC)), frozenset(btf.names(Kind.TYPEDEF))


def kernel_functions() -> frozenset[str]:
    """Every function the kernel's BTF knows (what fentry, fexit and kprobe programs can hook)."""
    return _vmlinux_names()[0]


def lsm_hooks() -> list[str]:
    """LSM hooks BPF LSM programs can attach to: the kernel's ``bpf_lsm_<hook>`` functions."""
    return sorted(name.removeprefix("bpf_lsm_") for name in kernel_functions() if name.startswith("bpf_lsm_"))


def btf_tracepoints() -> list[str]:
    """Tracepoints BTF tracepoint programs can attach to: the kernel's ``btf_trace_<name>`` typedefs."""
    return sorted(name.removeprefix("btf_trace_") for name in _vmlinux_names()[1] if name.startswith("btf_trace_"))


@functools.lru_cache(maxsize=1)
def _ld_cache() -> dict[str, str]:
    """``ldconfig -p``: library file name -> path (first entry wins, as the dynamic linker's cache orders them)."""
    libraries: dict[str, str] = {}
    for ldconfig in ("ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"):
        try:
            output = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, check=False, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        for line in output.splitlines():
            name, arrow, path = line.strip().partition(" => ")
            if arrow:
                libraries.setdefault(name.split(" (", 1)[0], path.strip())
        if libraries:
            break
    return libraries


def _library_matches(name: str, file_name: str) -> bool:
    return any(file_name == stem or file_name.startswith(f"{stem}.so") for stem in (name, f"lib{name}"))


def _is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(4) == b"\x7fELF"
    except OSError:
        return False


def resolve_library(name: str) -> Path | None:
    """The file of a shared library given by name (``libc``, ``c``, ``libssl.so.3``), via ld.so's cache, then
    the usual library folders; None when there is none. (``libc.so`` linker scripts are not libraries.)"""
    for file_name, path in sorted(_ld_cache().items()):
        if _library_matches(name, file_name) and _is_elf(Path(path)):
            return Path(path)
    for folder in LIBRARY_DIRS:
        try:
            entries = sorted(Path(folder).iterdir())
        except OSError:
            continue
        for entry in entries:
            if _library_matches(name, entry.name) and _is_elf(entry):
                return entry
    return None


def elf_function_symbols(path: Path) -> set[str]:
    """Names of the functions defined in an ELF file (``.symtab`` and ``.dynsym``), without version suffixes."""
    from pyaya.elf import SHN_UNDEF, Elf, SymbolType  # noqa: PLC0415 - only the uprobe checks read ELF files

    elf = Elf.from_path(path)
    names = {
        symbol.name.split("@", 1)[0]
        for symbol in (*elf.symbols, *elf.dynamic_symbols)
        if symbol.type == SymbolType.FUNC and symbol.shndx != SHN_UNDEF
    }
    names.discard("")
    return names


def resolve_uprobe_target(value: str) -> Path:
    """The ELF file a uprobe target names: a path (absolute or relative) or a shared library name.

    Raises :class:`ScaffoldError` saying what exists instead.
    """
    if "/" in value:
        path = Path(value).expanduser()
        if not path.is_file():
            raise ScaffoldError(f"uprobe target {value}: no such file: give the path of an executable or library")
    else:
        found = resolve_library(value)
        if found is None:
            on_path = shutil.which(value)
            hint = (
                f"; {on_path} is a program of that name: pass --target {on_path}"
                if on_path
                else f": give a path, or a library name from `ldconfig -p`{_did_you_mean(value, _ld_cache())}"
            )
            raise ScaffoldError(f"uprobe target {value!r} is not a shared library this system knows{hint}")
        path = found
    if not _is_elf(path):
        raise ScaffoldError(f"uprobe target {path} is not an ELF file: give an executable or a shared library")
    return path


def check_option(template: Template, option: TemplateOption, value: str, values: Mapping[str, str]) -> str:
    """Check ``value`` for ``option`` against this machine (its ``check``); return the value to render.

    ``values`` holds the other options' values (a tracepoint name is checked within its category, a uprobe
    function within its target). Raises :class:`ScaffoldError` saying what was wrong and what would be right.
    """
    check = option.check
    if option.choices and value not in option.choices:
        raise ScaffoldError(
            f"{option.name} must be one of {', '.join(option.choices)} for template {template.kind}, not {value!r}"
            f"{_did_you_mean(value, option.choices, cutoff=0.8)}"
        )
    if check in ("", "choice"):
        return value
    if check == "identifier":
        if not _C_IDENTIFIER.fullmatch(value):
            raise ScaffoldError(
                f"{option.name} {value!r} is not an identifier: use letters, digits and '_', not starting with a digit"
            )
        return value
    if check == "interface":
        names = interfaces()
        if value not in names:
            raise ScaffoldError(
                f"no network interface {value!r} on this machine{_did_you_mean(value, names)}: "
                f"interfaces here are {', '.join(names) or 'none'}"
            )
        return value
    if check == "tracepoint":
        return _check_tracepoint(option, value, values)
    if check == "kernel_function":
        if value not in kernel_functions():
            raise ScaffoldError(
                f"the kernel has no function {value!r} in its BTF{_did_you_mean(value, kernel_functions(), cutoff=0.8)}"
                ": give a function of /sys/kernel/btf/vmlinux "
                '(`bpftool btf dump file /sys/kernel/btf/vmlinux | grep "FUNC \'"` lists them)'
            )
        return value
    if check == "lsm_hook":
        hooks = lsm_hooks()
        if value.removeprefix("bpf_lsm_") not in hooks:
            raise ScaffoldError(
                f"{value!r} is not an LSM hook of this kernel (no bpf_lsm_{value} in its BTF)"
                f"{_did_you_mean(value, hooks, cutoff=0.7)}: e.g. file_open, bprm_check_security, task_alloc"
            )
        return value.removeprefix("bpf_lsm_")
    if check == "btf_tracepoint":
        points = btf_tracepoints()
        if value.removeprefix("btf_trace_") not in points:
            raise ScaffoldError(
                f"{value!r} is not a BTF tracepoint of this kernel (no btf_trace_{value} in its BTF)"
                f"{_did_you_mean(value, points, cutoff=0.7)}: e.g. sched_switch, sched_process_exec"
            )
        return value.removeprefix("btf_trace_")
    if check == "uprobe_target":
        path = resolve_uprobe_target(value)
        # A relative path would break once `pyaya run` starts main.py from the project's folder.
        return str(path.absolute()) if "/" in value else value
    if check == "uprobe_function":
        target_value = _uprobe_target_value(template, values)
        if target_value is None:
            return value
        path = resolve_uprobe_target(target_value)
        symbols = elf_function_symbols(path)
        if value not in symbols:
            raise ScaffoldError(
                f"{path} has no function symbol {value!r}{_did_you_mean(value, symbols, cutoff=0.7)}: "
                f"list them with `nm -D --defined-only {path}` (or `nm` for a binary with a symbol table)"
            )
        return value
    raise ScaffoldError(
        f"template {template.kind}: option {option.name} has an unknown check {check!r}: use one of "
        "choice, interface, tracepoint, kernel_function, lsm_hook, btf_tracepoint, uprobe_target, uprobe_function, "
        "identifier"
    )


def _uprobe_target_value(template: Template, values: Mapping[str, str]) -> str | None:
    for option in template.options:
        if option.check == "uprobe_target":
            return values.get(option.name, option.default)
    return values.get("uprobe_target")


def _check_tracepoint(option: TemplateOption, value: str, values: Mapping[str, str]) -> str:
    events = tracefs_events()
    if events is None:
        raise ScaffoldError(
            "tracefs is not mounted, so tracepoints cannot be checked (nor attached): mount it with "
            "`mount -t tracefs nodev /sys/kernel/tracing`, or pass --no-check"
        )
    if "category" in option.name:
        categories = _sorted_dirs(events)
        if value not in categories:
            raise ScaffoldError(
                f"no tracepoint category {value!r} in {events}{_did_you_mean(value, categories)}: "
                f"list them with `ls {events}`"
            )
        return value
    category, slash, name = value.partition("/")
    if not slash:
        category, name = values.get("tracepoint_category", ""), value
    categories = _sorted_dirs(events)
    if not category:  # a name without a category option: any category will do
        if any((events / c / name).is_dir() for c in categories):
            return value
        raise ScaffoldError(f"no tracepoint named {name!r} in any category of {events}: list them with `ls {events}/*`")
    if category not in categories:
        raise ScaffoldError(
            f"no tracepoint category {category!r} in {events}{_did_you_mean(category, categories)}: "
            f"list them with `ls {events}`"
        )
    names = _sorted_dirs(events / category)
    if name not in names:
        raise ScaffoldError(
            f"no tracepoint {category}/{name} in {events}{_did_you_mean(name, names)}: "
            f"list them with `ls {events / category}`"
        )
    return value
