"""``pyaya new NAME``: create a project from a template, with the template's options as flags.

Templates declare options in their ``template.toml`` (``[options.NAME]``); the common ones have flags named like
aya-template's (``--interface``, ``--function``, ``--tracepoint CATEGORY/NAME``, ...), any option can be set with
``--set NAME=VALUE``. Values are checked against this machine (the interface exists, the kernel function is in its
BTF, ...) unless ``--no-check``; a missing option is asked for on a terminal, and takes its default otherwise.
Whatever the checks, every value is escaped for the file it lands in (:mod:`pyaya.escapes`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from pyaya.cli import _complete
from pyaya.cli._common import echo, handle_errors
from pyaya.errors import ScaffoldError
from pyaya.escapes import text_line
from pyaya.scaffold import (
    DEFAULT_TEMPLATE,
    Template,
    TemplateOption,
    check_option,
    create_project,
    get_template,
    validate_name,
)

__all__ = ["FLAG_OPTIONS", "flag_for", "new"]

#: Each dedicated flag and the template options it sets (``--tracepoint CATEGORY/NAME`` sets two).
FLAG_OPTIONS: dict[str, tuple[str, ...]] = {
    "--interface": ("interface",),
    "--function": ("function",),
    "--tracepoint": ("tracepoint_category", "tracepoint_name"),
    "--btf-tracepoint": ("btf_tracepoint",),
    "--target": ("uprobe_target",),
    "--symbol": ("uprobe_function",),
    "--probe": ("usdt_probe",),
    "--direction": ("direction",),
    "--hook": ("lsm_hook",),
    "--sockopt": ("sockopt_target",),
}


def flag_for(option_name: str, template: Template | None = None) -> str:
    """How an option is set on the command line: its dedicated flag, else ``--set NAME=VALUE``."""
    for flag, names in FLAG_OPTIONS.items():
        if option_name in names:
            if flag != "--tracepoint":
                return flag
            alone = template is not None and all(o.name != "tracepoint_category" for o in template.options)
            return f"{flag} NAME" if alone else f"{flag} CATEGORY/NAME"
    return f"--set {option_name}=VALUE"


@dataclass(frozen=True)
class _Given:
    """One option value from the command line, with the flag it came from (for error messages)."""

    value: str
    flag: str


def _options_summary(template: Template) -> str:
    if not template.options:
        return f"template {template.kind} has no options"
    listed = ", ".join(f"{o.name} ({flag_for(o.name, template)})" for o in template.options)
    return f"its options are {listed}"


def _given_options(template: Template, flags: Mapping[str, str | None], settings: list[str]) -> dict[str, _Given]:
    known = {option.name for option in template.options}
    given: dict[str, _Given] = {}
    for flag, value in flags.items():
        if value is None:
            continue
        names = FLAG_OPTIONS[flag]
        if flag == "--tracepoint":
            category, slash, name = value.partition("/")
            if not slash and "tracepoint_category" not in known:
                values: tuple[str, ...] = ("", value)  # a raw tracepoint: a name alone
            elif not slash or not category or not name or "/" in name:
                raise typer.BadParameter(f"{value!r} is not CATEGORY/NAME (e.g. syscalls/sys_enter_openat)")
            else:
                values = (category, name)
        else:
            values = (value,)
        present = [n for n in names if n in known]
        if not present:
            raise ScaffoldError(f"template {template.kind} has no option for {flag}: {_options_summary(template)}")
        for option_name, option_value in zip(names, values, strict=True):
            if option_name in known:
                given[option_name] = _Given(option_value, flag)
    for setting in settings:
        option_name, equals, value = setting.partition("=")
        if not equals or not option_name:
            raise typer.BadParameter(f"{setting!r} is not NAME=VALUE", param_hint="--set")
        if option_name not in known:
            raise ScaffoldError(
                f"template {template.kind} has no option {option_name!r} (from --set): {_options_summary(template)}"
            )
        given[option_name] = _Given(value, "--set")
    return given


def _interactive() -> bool:
    """Whether missing options may be asked for: only when stdin is a terminal (the questions go to stderr)."""
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _ask(template: Template, option: TemplateOption, values: dict[str, str], check: bool) -> str:
    """Prompt for one option (default pre-filled) until the answer passes its check."""
    hint = f" [{'|'.join(option.choices)}]" if option.choices else ""
    text = f"{option.name}{hint}" + (f" ({option.help})" if option.help else "")
    while True:
        answer: str = typer.prompt(text, default=option.default, err=True)
        answer = answer.strip()
        if not check:
            return answer
        try:
            return check_option(template, option, answer, values)
        except ScaffoldError as error:
            echo(f"  {error}", err=True, fg=typer.colors.RED)


def _resolve_options(template: Template, given: dict[str, _Given], *, check: bool, interactive: bool) -> dict[str, str]:
    """Every option's value: given, asked for, or the default; each checked against this machine."""
    values: dict[str, str] = {name: g.value for name, g in given.items()}
    asked: set[str] = set()
    for option in template.options:
        if option.name in given:
            continue
        if interactive:
            values[option.name] = _ask(template, option, values, check)
            asked.add(option.name)
        else:
            values[option.name] = option.default
    if not check:
        return values
    for option in template.options:
        if option.name in asked:
            continue
        value = values[option.name]
        try:
            values[option.name] = check_option(template, option, value, values)
        except ScaffoldError as error:
            if option.name in given:
                raise ScaffoldError(f"{given[option.name].flag}: {error}") from None
            # A default that does not fit this machine is the template's choice, not the user's: say so, go on.
            echo(
                f"warning: {error} (the default {option.name} of template {template.kind}; "
                f"set another with {flag_for(option.name, template)})",
                err=True,
                fg=typer.colors.YELLOW,
            )
    return values


#: Templates whose programs attach through kprobes, which a kernel built without CONFIG_KPROBES cannot do.
_KPROBE_KINDS = frozenset({"kprobe", "kretprobe"})


def _warn_without_kprobes(kind: str) -> None:
    """Say at once, before anything is asked or written, that this kernel cannot run a kprobe template's project,
    and which templates trace the kernel without kprobes (the probes read tracefs and sysfs: cheap)."""
    from pyaya import features  # noqa: PLC0415 - only for the kprobe templates

    kprobes = features.kprobes_supported()
    if kprobes.ok:
        return
    instead = ["tracepoint", "raw_tracepoint"]
    instead += [
        name
        for name, probe in (("tp_btf", features.tp_btf_supported), ("fentry", features.fentry_supported))
        if probe().ok
    ]
    echo(
        f"warning: this kernel has no kprobes ({kprobes.reason}): a {kind} project builds here but cannot run; "
        f"templates that work here instead: {', '.join(instead)}",
        err=True,
        fg=typer.colors.YELLOW,
    )


@handle_errors
def new(
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME", help="Project name: lowercase letters, digits, '-' and '_'.", show_default=False
        ),
    ],
    *,
    template: Annotated[
        str,
        typer.Option(
            "--template",
            "-t",
            help="Template kind (see `pyaya templates`).",
            metavar="KIND",
            autocompletion=_complete.template_kinds,
        ),
    ] = DEFAULT_TEMPLATE,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Render into the folder even if it is not empty.")
    ] = False,
    path: Annotated[
        Path | None,
        typer.Option("--path", help="Folder to create the project in (default: ./NAME).", metavar="DIR"),
    ] = None,
    interface: Annotated[
        str | None,
        typer.Option(
            "--interface",
            help="Network interface to attach to (xdp, classifier, ...).",
            metavar="IFACE",
            show_default=False,
            autocompletion=_complete.interfaces,
        ),
    ] = None,
    function: Annotated[
        str | None,
        typer.Option(
            "--function",
            help="Kernel function to probe (kprobe, fentry, fexit).",
            metavar="FUNC",
            show_default=False,
            autocompletion=_complete.kernel_functions,
        ),
    ] = None,
    tracepoint: Annotated[
        str | None,
        typer.Option(
            "--tracepoint",
            help="Tracepoint to attach to (CATEGORY/NAME; a raw tracepoint's NAME alone).",
            metavar="CATEGORY/NAME",
            show_default=False,
            autocompletion=_complete.tracepoints,
        ),
    ] = None,
    btf_tracepoint: Annotated[
        str | None,
        typer.Option(
            "--btf-tracepoint",
            help="BTF tracepoint to attach to (btf_tracepoint template).",
            metavar="NAME",
            show_default=False,
            autocompletion=_complete.btf_tracepoints,
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            help="Binary or library to uprobe (or whose USDT probe to trace): a path or a name such as libc.",
            metavar="PATH|LIB",
            show_default=False,
        ),
    ] = None,
    symbol: Annotated[
        str | None,
        typer.Option(
            "--symbol",
            help="Function of the uprobe target to probe.",
            metavar="SYMBOL",
            show_default=False,
            autocompletion=_complete.uprobe_symbols,
        ),
    ] = None,
    probe: Annotated[
        str | None,
        typer.Option(
            "--probe",
            help="USDT probe of the target to trace, as PROVIDER:NAME (usdt template).",
            metavar="PROVIDER:NAME",
            show_default=False,
        ),
    ] = None,
    direction: Annotated[
        str | None,
        typer.Option(
            "--direction",
            help="Traffic direction: ingress or egress.",
            metavar="ingress|egress",
            show_default=False,
            autocompletion=_complete.directions,
        ),
    ] = None,
    hook: Annotated[
        str | None,
        typer.Option(
            "--hook",
            help="LSM hook to attach to (lsm template).",
            metavar="HOOK",
            show_default=False,
            autocompletion=_complete.lsm_hooks,
        ),
    ] = None,
    sockopt: Annotated[
        str | None,
        typer.Option(
            "--sockopt",
            help="Which socket option call to hook: getsockopt or setsockopt.",
            metavar="getsockopt|setsockopt",
            show_default=False,
            autocompletion=_complete.sockopts,
        ),
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Set any template option (repeatable; see `pyaya templates`).",
            metavar="NAME=VALUE",
            show_default=False,
            autocompletion=_complete.settings,
        ),
    ] = None,
    no_check: Annotated[
        bool,
        typer.Option("--no-check", help="Do not check option values against this machine (scaffold for another)."),
    ] = False,
) -> None:
    """Create a project from a template: ./NAME with the eBPF crate, shared types and a main.py.

    Options the template declares and the command line leaves out are asked for on a terminal, else defaulted.
    """
    validate_name(name)
    chosen = get_template(template)
    if chosen.kind in _KPROBE_KINDS:
        _warn_without_kprobes(chosen.kind)
    flags = {
        "--interface": interface,
        "--function": function,
        "--tracepoint": tracepoint,
        "--btf-tracepoint": btf_tracepoint,
        "--target": target,
        "--symbol": symbol,
        "--probe": probe,
        "--direction": direction,
        "--hook": hook,
        "--sockopt": sockopt,
    }
    given = _given_options(chosen, flags, settings or [])
    dest = path if path is not None else Path.cwd() / name
    if not force and dest.is_dir() and any(dest.iterdir()):
        raise ScaffoldError(f"{dest.absolute()} already exists and is not empty: pick another name, or pass --force")
    options = _resolve_options(chosen, given, check=not no_check, interactive=_interactive())

    root, files = create_project(name, template=template, path=path, force=force, options=options)
    typer.echo(f"Created {name} from template {template} in {root} ({len(files)} files)")
    if chosen.options:
        # Values are shown escaped: one line whatever they hold (newlines, bytes that are not UTF-8).
        typer.echo("  with " + ", ".join(f"{o.name}={text_line(options[o.name])}" for o in chosen.options))
    for file in files:
        typer.echo(f"  {file.relative_to(root)}")
    shown = os.path.relpath(root)
    steps = ["", "Next steps:"]
    if shown != ".":
        steps.append(f"  cd {shown if not shown.startswith('..' + os.sep) else root}")
    steps += ["  pyaya build        # compile the eBPF object", "  sudo pyaya run     # load, attach and stream events"]
    typer.echo("\n".join(steps))
