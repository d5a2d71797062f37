"""Rendering project templates safely: validated names, no path escapes, nothing half-written on failure.

Templates live in ``pyaya/templates/<kind>/`` (the repo's ``templates/``, shipped in the wheel). Each holds a
``template.toml`` with a one-line ``description`` and optional ``[options.NAME]`` tables (``default``, ``help``,
``check``, ``choices``); every other file is copied with ``{{name}}``, ``{{crate_name}}``, ``{{pyaya_version}}`` and
each option's ``{{NAME}}`` replaced in its contents and in its path, and a ``.tmpl`` suffix removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from pyaya.errors import ScaffoldError

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
    "create_project",
    "list_templates",
    "render",
    "templates_root",
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
    try:
        return version("pyaya")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0.0.0+unknown"


def templates_root() -> Traversable:
    """Where the templates are: ``pyaya/templates`` inside the installed package."""
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
