"""Rendering project templates safely: validated names, escaped values, no path escapes, nothing half-written.

Templates live in ``pyaya/templates/<kind>/`` (the repo's ``templates/``, shipped in the wheel). Each holds a
``template.toml`` with a one-line ``description`` and optional ``[options.NAME]`` tables (``default``, ``help``,
``check``, ``choices``); every other file is copied with its placeholders replaced, in its contents and in its path,
and a ``.tmpl`` suffix removed.

A placeholder is ``{{NAME|CONTEXT}}``: the value ``NAME`` written through the escaper of ``CONTEXT`` (see
:mod:`pyaya.escapes`: ``py``, ``rust_str``, ``rust_ident``, ``toml``, ``text``, ``sh``), which fits the file it is
in (``FILE_CONTEXTS``). Only the built-in values ``name``, ``crate_name`` and ``pyaya_version``, which are
validated to ``[a-z][a-z0-9_-]*`` or a version, may be written plain, as ``{{NAME}}``; they alone may appear in
paths. A placeholder that does not parse, names no value, lacks a context or names one that does not fit the file
stops the rendering; :func:`lint_template` also checks where in the file each context stands.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import functools
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pyaya import escapes
from pyaya.errors import PyayaError, ScaffoldError
from pyaya.escapes import RUST_KEYWORDS
from pyaya.libraries import is_elf, ld_cache, resolve_library

if TYPE_CHECKING:
    from importlib.abc import Traversable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "BUILTIN_VALUES",
    "DEFAULT_TEMPLATE",
    "FILE_CONTEXTS",
    "MAX_NAME_LENGTH",
    "RESERVED_NAMES",
    "RUST_KEYWORDS",
    "Placeholder",
    "Template",
    "TemplateOption",
    "btf_tracepoints",
    "check_option",
    "crates_root",
    "create_project",
    "elf_function_symbols",
    "get_template",
    "interfaces",
    "kernel_functions",
    "lint_template",
    "list_templates",
    "lsm_hooks",
    "placeholders",
    "plain_values",
    "render",
    "resolve_library",
    "resolve_uprobe_target",
    "templates_root",
    "tracefs_events",
    "tracepoint_categories",
    "tracepoint_names",
    "usdt_probe_names",
    "validate_name",
]

DEFAULT_TEMPLATE = "tracepoint"
MAX_NAME_LENGTH = 64
TEMPLATE_CONFIG = "template.toml"
TMPL_SUFFIX = ".tmpl"
SKIPPED = frozenset({"target", "Cargo.lock", "__pycache__", ".pytest_cache", ".mypy_cache"})

RESERVED_NAMES = frozenset({"test", "core", "std", "alloc", "proc_macro"})

_NAME_CHARS = re.compile(r"[a-z0-9_-]+")


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


def crates_root() -> Traversable:
    """Where the crates templates copy are: ``pyaya/crates`` inside the installed package."""
    from importlib import resources  # noqa: PLC0415

    return resources.files("pyaya") / "crates"


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
    #: ``"usdt_target"``, ``"usdt_probe"``, ``"identifier"`` or ``""`` (free text).
    check: str = ""
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Template:
    kind: str
    description: str
    root: Traversable
    options: tuple[TemplateOption, ...] = ()
    #: Crates shipped with pyaya that the project gets a copy of (``crates = ["pyaya-usdt"]``).
    crates: tuple[str, ...] = ()


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
    crates = tuple(str(crate) for crate in data.get("crates", ()))
    for crate in crates:
        if not _NAME_CHARS.fullmatch(crate):
            raise ScaffoldError(f"template {folder.name}: crate name {crate!r} is not a plain crate name")
    return Template(folder.name, str(description).strip(), folder, tuple(options), crates)


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


# -- placeholders ------------------------------------------------------------------------------------------------

#: The values every template has besides its options. ``validate_name`` restricts the names to
#: ``[a-z][a-z0-9_-]*`` (the crate name to a Rust identifier), so they may be written plain, without a context.
BUILTIN_VALUES = ("name", "crate_name", "pyaya_version")
#: The contexts each kind of file may use, by the rendered file's suffix; other files (``.gitignore``) take
#: ``text`` only, and paths take plain values only.
FILE_CONTEXTS: dict[str, tuple[str, ...]] = {
    ".py": ("py", "text"),
    ".rs": ("rust_str", "rust_ident", "text"),
    ".toml": ("toml", "text"),
    ".md": ("text", "sh"),
}
_OTHER_FILE_CONTEXTS = ("text",)
# Anything of the shape {{word...}} is a placeholder and must parse as {{NAME}} or {{NAME|CONTEXT}}: a typo never
# passes through unrendered.
_PLACEHOLDER_LIKE = re.compile(r"\{\{\s*[A-Za-z_][^{}\n]*?\}\}")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*(?:\|\s*([A-Za-z_]\w*)\s*)?\}\}")


@dataclass(frozen=True)
class Placeholder:
    """One ``{{NAME}}`` or ``{{NAME|CONTEXT}}`` of a template file, at ``start:end`` of its text."""

    start: int
    end: int
    name: str
    context: str | None
    text: str


def placeholders(text: str) -> list[Placeholder]:
    """Every placeholder of ``text``, in order; a malformed one (``{{name|}}``, ``{{a b}}``) has ``name`` ``""``."""
    found: list[Placeholder] = []
    for match in _PLACEHOLDER_LIKE.finditer(text):
        parsed = _PLACEHOLDER.fullmatch(match.group(0))
        name, context = (parsed.group(1), parsed.group(2)) if parsed else ("", None)
        found.append(Placeholder(match.start(), match.end(), name, context, match.group(0)))
    return found


def plain_values(template: Template) -> frozenset[str]:
    """The values of ``template`` that may be written without a context: the built-in ones only (every option,
    even one with ``choices``, names its context at each placeholder)."""
    del template  # the same for every template today; the signature leaves room for validated option grammars
    return frozenset(BUILTIN_VALUES)


def _allowed_contexts(rendered_name: str | None) -> tuple[str, ...]:
    if rendered_name is None:  # a path component
        return ()
    return FILE_CONTEXTS.get(Path(rendered_name).suffix, _OTHER_FILE_CONTEXTS)


def _shown(value: str) -> str:
    """A value for an error message: one line, escaped, at most 80 characters."""
    line = escapes.text_line(value)
    return f"'{line if len(line) <= 80 else line[:77] + '...'}'"


def _placeholder_problem(
    found: Placeholder, known: Mapping[str, object], plain: frozenset[str], allowed: tuple[str, ...]
) -> str | None:
    """What is wrong with a placeholder of a template (not with a value), or None."""
    if not found.name:
        return f"{found.text} is not a placeholder: write {{{{NAME}}}} or {{{{NAME|CONTEXT}}}}"
    if found.name not in known:
        return f"{found.text} names no value: the template has {', '.join(sorted(known))}"
    if found.context is None:
        if found.name in plain:
            return None
        if not allowed:
            return (
                f"{found.text} has no context, and {found.name} is free text: paths take only the plain values "
                f"{', '.join(sorted(plain))}"
            )
        contexts = ", ".join(f"{{{{{found.name}|{context}}}}}" for context in allowed)
        return (
            f"{found.text} has no context, and {found.name} is free text: write it through an escaper, "
            f"here one of {contexts}"
        )
    if found.context not in escapes.CONTEXTS:
        return f"{found.text}: unknown context {found.context!r}; contexts are {', '.join(escapes.CONTEXTS)}"
    if found.context not in allowed:
        return (
            f"{found.text}: context {found.context} ({escapes.CONTEXTS[found.context][0]}) does not belong in this "
            f"file; here use {', '.join(allowed) or 'plain values only'}"
        )
    return None


def _render_text(
    text: str,
    values: Mapping[str, str],
    plain: frozenset[str],
    *,
    rendered_name: str | None,
    where: str,
    rendered_where: str,
) -> str:
    """``text`` (of the template file ``where``, rendered to ``rendered_where``) with each placeholder replaced by
    its value through its context's escaper."""
    allowed = _allowed_contexts(rendered_name)
    parts: list[str] = []
    position = 0
    for found in placeholders(text):
        problem = _placeholder_problem(found, values, plain, allowed)
        if problem is not None:
            line = "" if rendered_name is None else f" line {text.count(chr(10), 0, found.start) + 1}"
            raise ScaffoldError(f"{where}{line}: {problem}")
        value = values[found.name]
        description, escaper = (
            ("plain text", escapes.plain) if found.context is None else escapes.CONTEXTS[found.context]
        )
        try:
            rendered = escaper(value)
        except escapes.Unrepresentable as error:
            raise ScaffoldError(
                f"{found.name} {_shown(value)} cannot be written as {description} into {rendered_where}: {error}; "
                f"give a value that can"
            ) from None
        parts += [text[position : found.start], rendered]
        position = found.end
    parts.append(text[position:])
    return "".join(parts)


def _render_tree(
    source: Traversable,
    dest: Path,
    values: dict[str, str],
    plain: frozenset[str],
    *,
    prefixes: tuple[str, str],
    top: bool,
) -> list[Path]:
    """Renders the folder ``source`` into ``dest``; ``prefixes`` are the folder's template and rendered paths (for
    messages)."""
    prefix, rendered_prefix = prefixes
    written: list[Path] = []
    for entry in sorted(source.iterdir(), key=lambda e: e.name):
        if entry.name in SKIPPED or entry.name.endswith(".pyc") or (top and entry.name == TEMPLATE_CONFIG):
            continue
        where = f"{prefix}{entry.name}"
        name = _render_text(
            entry.name, values, plain, rendered_name=None, where=f"the path {where}", rendered_where=where
        )
        if name.endswith(TMPL_SUFFIX) and entry.is_file():
            name = name[: -len(TMPL_SUFFIX)]
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise ScaffoldError(f"template file {entry.name!r} renders to an unsafe path component {name!r}")
        target = dest / name
        if entry.is_dir():
            target.mkdir(exist_ok=True)
            written += _render_tree(
                entry, target, values, plain, prefixes=(f"{where}/", f"{rendered_prefix}{name}/"), top=False
            )
            continue
        data = entry.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:  # a binary file is copied as it is
            pass
        else:
            rendered = _render_text(
                text, values, plain, rendered_name=name, where=where, rendered_where=f"{rendered_prefix}{name}"
            )
            data = rendered.encode("utf-8")
        target.write_bytes(data)
        if isinstance(entry, Path) and os.access(entry, os.X_OK):
            target.chmod(0o755)
        written.append(target)
    return written


# -- linting templates -------------------------------------------------------------------------------------------

#: Where in a file each context may stand: "string" (a string literal that decodes escapes: Python str, Rust
#: string, TOML basic string), "comment", "code"; None for anywhere.
_CONTEXT_PLACES: dict[str, str | None] = {
    "py": "string",
    "rust_str": "string",
    "toml": "string",
    "rust_ident": "code",
    "text": "comment",
    "sh": None,
}
_PLACE_WORDS = {
    "string": "a string literal that decodes escapes (not raw, not bytes)",
    "comment": "a line comment",
    "code": "code (outside strings and comments)",
}
# A region of a file's text: (start, end, place), place being one of "string", "comment", "other" (raw or bytes
# strings, block comments, char literals).
_Region = tuple[int, int, str]


def _python_regions(text: str) -> list[_Region]:
    import io  # noqa: PLC0415 - only linting tokenizes
    import tokenize  # noqa: PLC0415

    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def offset(row_col: tuple[int, int]) -> int:
        return starts[row_col[0] - 1] + row_col[1]

    regions: list[_Region] = []
    fstring_start: list[tuple[int, str]] = []
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        name = tokenize.tok_name[token.type]
        if name == "COMMENT":
            regions.append((offset(token.start), offset(token.end), "comment"))
        elif name == "STRING":
            prefix = token.string[: len(token.string) - len(token.string.lstrip("rRbBuUfF"))].lower()
            place = "other" if ("r" in prefix or "b" in prefix) else "string"
            regions.append((offset(token.start), offset(token.end), place))
        elif name == "FSTRING_START":  # Python 3.12+: f-strings are several tokens
            fstring_start.append((offset(token.start), token.string.lower()))
        elif name == "FSTRING_END" and fstring_start:
            begin, prefix = fstring_start.pop()
            regions.append((begin, offset(token.end), "other" if "r" in prefix else "string"))
    return regions


def _quoted_end(text: str, start: int, quote: str, escapes_allowed: bool) -> int:
    """The offset just past the string starting at ``start`` (its opening ``quote`` included)."""
    position = start + len(quote)
    while position < len(text):
        if escapes_allowed and text[position] == "\\":
            position += 2
        elif text.startswith(quote, position):
            return position + len(quote)
        else:
            position += 1
    return len(text)


_RUST_RAW_STRING = re.compile(r'b?r(#*)"')
_RUST_CHAR = re.compile(r"'(?:\\u\{[0-9A-Fa-f]+\}|\\x[0-9A-Fa-f]{2}|\\.|[^\\'\n])'")


def _rust_regions(text: str) -> list[_Region]:
    regions: list[_Region] = []
    position = 0
    while position < len(text):
        char = text[position]
        after_word = position > 0 and (text[position - 1].isalnum() or text[position - 1] == "_")
        raw = None if after_word else _RUST_RAW_STRING.match(text, position)
        if text.startswith("//", position):
            end = text.find("\n", position)
            end = len(text) if end < 0 else end
            regions.append((position, end, "comment"))
        elif text.startswith("/*", position):
            depth, end = 1, position + 2
            while end < len(text) and depth:
                if text.startswith("/*", end):
                    depth, end = depth + 1, end + 2
                elif text.startswith("*/", end):
                    depth, end = depth - 1, end + 2
                else:
                    end += 1
            regions.append((position, end, "other"))
        elif raw is not None:
            close = text.find('"' + raw.group(1), raw.end())
            end = len(text) if close < 0 else close + 1 + len(raw.group(1))
            regions.append((position, end, "other"))
        elif char == '"' or (char == "b" and not after_word and text.startswith('b"', position)):
            start = position + (char == "b")
            end = _quoted_end(text, start, '"', escapes_allowed=True)
            regions.append((position, end, "string" if char == '"' else "other"))
        elif char == "'" and (literal := _RUST_CHAR.match(text, position)) is not None:
            end = literal.end()
            regions.append((position, end, "other"))
        else:
            position += 1
            continue
        position = end
    return regions


_TOML_QUOTES = (('"""', "string", True), ("'''", "other", False), ('"', "string", True), ("'", "other", False))


def _toml_regions(text: str) -> list[_Region]:
    regions: list[_Region] = []
    position = 0
    while position < len(text):
        quoted = next((quote for quote in _TOML_QUOTES if text.startswith(quote[0], position)), None)
        if quoted is not None:
            quote, place, escaped = quoted
            end = _quoted_end(text, position, quote, escapes_allowed=escaped)
        elif text[position] == "#":
            end, place = text.find("\n", position), "comment"
            end = len(text) if end < 0 else end
        else:
            position += 1
            continue
        regions.append((position, end, place))
        position = end
    return regions


_REGIONS = {".py": _python_regions, ".rs": _rust_regions, ".toml": _toml_regions}


def _place_of(regions: list[_Region], start: int, end: int) -> str:
    for region_start, region_end, place in regions:
        if region_start <= start and end <= region_end:
            return place
    return "code"


def lint_template(template: Template) -> list[str]:
    """Every problem of ``template``'s placeholders, found without rendering it.

    Each placeholder must parse, name a value the template has, and either be plain (built-in names, options
    with plain ``choices``) or name a context that fits its file (``FILE_CONTEXTS``) and its place in the file: a
    ``py``/``rust_str``/``toml`` value inside a string literal that decodes escapes, ``text`` in a line comment of
    a Python, Rust or TOML file, ``rust_ident`` in code. Paths take plain values only. ``pyaya new`` refuses the
    same problems (all but the places) when it renders.
    """
    import tokenize  # noqa: PLC0415 - only linting tokenizes; the CLI imports this module at start

    known = dict.fromkeys((*BUILTIN_VALUES, *(option.name for option in template.options)), "")
    plain = plain_values(template)
    problems: list[str] = []

    def walk(folder: Traversable, prefix: str, top: bool) -> None:
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.name in SKIPPED or entry.name.endswith(".pyc") or (top and entry.name == TEMPLATE_CONFIG):
                continue
            where = f"{template.kind}/{prefix}{entry.name}"
            for found in placeholders(entry.name):
                problem = _placeholder_problem(found, known, plain, ())
                if problem is not None:
                    problems.append(f"{where} (its name): {problem}")
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/", top=False)
                continue
            try:
                text = entry.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                continue
            rendered_name = entry.name.removesuffix(TMPL_SUFFIX)
            suffix = Path(rendered_name).suffix
            found_all = placeholders(text)
            if not found_all:
                continue
            try:
                regions = _REGIONS[suffix](text) if suffix in _REGIONS else None
            except (SyntaxError, tokenize.TokenError) as error:
                problems.append(f"{where}: cannot be tokenized to check where its placeholders are: {error}")
                regions = None
            for found in found_all:
                line = text.count("\n", 0, found.start) + 1
                problem = _placeholder_problem(found, known, plain, _allowed_contexts(rendered_name))
                wanted = None if found.context is None else _CONTEXT_PLACES.get(found.context)
                if problem is None and regions is not None and wanted is not None:
                    place = _place_of(regions, found.start, found.end)
                    if place != wanted:
                        problem = f"{found.text} must stand in {_PLACE_WORDS[wanted]}, not in {place}"
                if problem is not None:
                    problems.append(f"{where} line {line}: {problem}")

    walk(template.root, "", top=True)
    return problems


def _copy_crate(crate: str, dest: Path) -> list[Path]:
    """Copy a crate shipped with pyaya into the project, unchanged (it holds no placeholders)."""
    source = crates_root() / crate
    if not source.is_dir():
        raise ScaffoldError(f"pyaya ships no crate {crate!r} ({source} is missing): reinstall pyaya")
    written: list[Path] = []

    def copy(folder: Traversable, target: Path) -> None:
        target.mkdir(exist_ok=True)
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.name in SKIPPED or entry.name.endswith(".pyc"):
                continue
            if entry.is_dir():
                copy(entry, target / entry.name)
            else:
                (target / entry.name).write_bytes(entry.read_bytes())
                written.append(target / entry.name)

    copy(source, dest)
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
    if dest.is_symlink():
        raise ScaffoldError(
            f"{dest} is a symbolic link (to {os.readlink(dest)}): pyaya new writes only into a real folder; "
            f"pass that folder with --path ({dest.resolve()})"
        )
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
        staged = _render_tree(
            template.root, staging, values, plain_values(template), prefixes=(f"{kind}/", ""), top=True
        )
        for crate in template.crates:
            staged += _copy_crate(crate, staging / crate)
        if not non_empty:
            if dest.is_dir():
                dest.rmdir()
            # mkdtemp made the staging folder 0700; the project folder gets the mode any new folder gets here.
            staging.chmod(0o777 & ~_umask())
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


# Folders are opened without following a symlink in their last component, so a link put in the project while
# it renders cannot send a write elsewhere.
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
#: ``provider:name`` of a USDT probe: two C identifiers, as ``<sys/sdt.h>`` requires.
_USDT_PROBE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*):([A-Za-z_][A-Za-z0-9_]*)")


def _check_probe_syntax(option: TemplateOption, value: str) -> None:
    """A USDT probe is named ``PROVIDER:NAME``, two C identifiers, as ``<sys/sdt.h>`` requires."""
    if not _USDT_PROBE.fullmatch(value):
        raise ScaffoldError(
            f"{option.name} {value!r} is not PROVIDER:NAME (two identifiers, e.g. python:function__entry): "
            "`pyaya inspect --usdt FILE` lists a file's probes"
        )


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _merge(staging: Path, dest: Path) -> None:
    """Move every rendered file over ``dest`` (``--force``), never through a symbolic link.

    File/folder clashes and symlinks on the way to a file (a symlinked subfolder, a symlinked file) are refused
    before anything is written; the writes then walk ``dest`` one folder at a time with ``O_NOFOLLOW``, so a link
    that appears meanwhile fails the write instead of being followed out of the project.
    """
    files = [path.relative_to(staging) for path in staging.rglob("*") if not path.is_dir()]
    for relative in files:
        for part in [*reversed(relative.parents[:-1]), relative]:
            existing = dest / part
            try:
                mode = existing.lstat().st_mode
            except FileNotFoundError:
                break
            if stat.S_ISLNK(mode):
                raise ScaffoldError(
                    f"--force will not write through the symbolic link {existing} (to {os.readlink(existing)}): "
                    f"the template writes {dest / relative}, and pyaya new writes only inside {dest}; "
                    "remove the link or render into another folder"
                )
            wants_dir = part != relative
            if stat.S_ISDIR(mode) != wants_dir:
                what = "a folder" if wants_dir else "a file"
                raise ScaffoldError(f"--force cannot render over {existing}: the template needs {what} there")
    root = os.open(dest, _DIR_FLAGS)
    try:
        for relative in files:
            _move_into(staging / relative, root, relative, dest)
    finally:
        os.close(root)


def _move_into(source: Path, root: int, relative: Path, dest: Path) -> None:
    """``os.replace(source, dest / relative)``, creating folders, with every folder opened ``O_NOFOLLOW``."""
    opened: list[int] = []
    folder = root
    try:
        for part in relative.parts[:-1]:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o777, dir_fd=folder)
            try:
                folder = os.open(part, _DIR_FLAGS, dir_fd=folder)
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise ScaffoldError(
                        f"--force will not write through {dest / relative}: a part of that path is no longer a "
                        "folder (a symbolic link appeared while rendering); nothing was written through it"
                    ) from None
                raise
            opened.append(folder)
        os.replace(source, relative.name, dst_dir_fd=folder)
    finally:
        for fd in opened:
            os.close(fd)


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
                else f": give a path, or a library name from `ldconfig -p`{_did_you_mean(value, ld_cache())}"
            )
            raise ScaffoldError(f"uprobe target {value!r} is not a shared library this system knows{hint}")
        path = found
    if not is_elf(path):
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
    if check == "usdt_target":
        return str(_usdt_target_file(value))
    if check == "usdt_probe":
        _check_probe_syntax(option, value)
        target_value = _option_value_of(template, values, "usdt_target")
        if target_value is None:
            return value
        path = _usdt_target_file(target_value)
        names = usdt_probe_names(path)
        if value not in names:
            raise ScaffoldError(
                f"{path} has no USDT probe {value!r}{_did_you_mean(value, names, cutoff=0.7)}: its probes are "
                f"{', '.join(names)} (`pyaya inspect --usdt {path}`)"
            )
        return value
    raise ScaffoldError(
        f"template {template.kind}: option {option.name} has an unknown check {check!r}: use one of "
        "choice, interface, tracepoint, kernel_function, lsm_hook, btf_tracepoint, uprobe_target, uprobe_function, "
        "usdt_target, usdt_probe, identifier"
    )


def usdt_probe_names(path: Path) -> list[str]:
    """``provider:name`` of every USDT probe of an ELF file, sorted and once each."""
    from pyaya import usdt  # noqa: PLC0415 - only the USDT checks read notes

    return sorted({probe.label for probe in usdt.probes(path)})


def _usdt_target_file(value: str) -> Path:
    """The absolute path of the file a USDT target names (a path, a library or a program), which must hold probes."""
    from pyaya import usdt  # noqa: PLC0415

    try:
        path = usdt.resolve_target(value).absolute()
    except PyayaError as error:
        raise ScaffoldError(f"USDT target: {error}") from None
    if not is_elf(path):
        raise ScaffoldError(f"USDT target {path} is not an ELF file: give an executable or a shared library")
    if not usdt_probe_names(path):
        raise ScaffoldError(
            f"{path} has no USDT probes (no .note.stapsdt section; `readelf -n {path}` shows its notes): give a "
            "binary built with <sys/sdt.h> probes, e.g. a Python built --with-dtrace"
        )
    return path


def _option_value_of(template: Template, values: Mapping[str, str], check: str) -> str | None:
    for option in template.options:
        if option.check == check:
            return values.get(option.name, option.default)
    return None


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
