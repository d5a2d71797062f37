"""Shell completion of option values (``pyaya --install-completion`` sets it up): template kinds, interfaces,
tracepoints, kernel functions, LSM hooks, choices. Each callback returns nothing rather than fail: a completion
must never print an error into the user's command line."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import typer

from pyaya import scaffold
from pyaya.errors import PyayaError

__all__ = [
    "btf_tracepoints",
    "directions",
    "interfaces",
    "kernel_functions",
    "lsm_hooks",
    "settings",
    "sockopts",
    "template_kinds",
    "tracepoints",
    "uprobe_symbols",
]

#: Shells show completions in columns; past this many, a longer prefix is the useful answer.
MAX_COMPLETIONS = 200

Completion = list[str] | list[tuple[str, str]]


def _quiet(function: Callable[..., Completion]) -> Callable[..., Completion]:
    @functools.wraps(function)
    def wrapper(*args: object, **kwargs: object) -> Completion:
        try:
            return function(*args, **kwargs)
        except (PyayaError, OSError, ValueError):
            return []

    return wrapper


def _starting(names: Iterable[str], incomplete: str) -> list[str]:
    return sorted(name for name in names if name.startswith(incomplete))[:MAX_COMPLETIONS]


def _template(ctx: typer.Context) -> scaffold.Template | None:
    kind = ctx.params.get("template") or scaffold.DEFAULT_TEMPLATE
    try:
        return scaffold.get_template(str(kind))
    except PyayaError:
        return None


@_quiet
def template_kinds(incomplete: str) -> Completion:
    """Template kinds, each with its description."""
    return [(t.kind, t.description) for t in scaffold.list_templates() if t.kind.startswith(incomplete)]


@_quiet
def interfaces(incomplete: str) -> Completion:
    """This machine's network interfaces."""
    return _starting(scaffold.interfaces(), incomplete)


@_quiet
def kernel_functions(incomplete: str) -> Completion:
    """Functions of the kernel's BTF."""
    return _starting(scaffold.kernel_functions(), incomplete)


@_quiet
def lsm_hooks(incomplete: str) -> Completion:
    """LSM hooks (``bpf_lsm_<hook>`` in the kernel's BTF)."""
    return _starting(scaffold.lsm_hooks(), incomplete)


@_quiet
def btf_tracepoints(incomplete: str) -> Completion:
    """BTF tracepoints (``btf_trace_<name>`` in the kernel's BTF)."""
    return _starting(scaffold.btf_tracepoints(), incomplete)


@_quiet
def tracepoints(incomplete: str) -> Completion:
    """``CATEGORY/`` until a category is typed, then that category's tracepoints."""
    category, slash, _ = incomplete.partition("/")
    if not slash:
        return _starting((f"{c}/" for c in scaffold.tracepoint_categories()), incomplete)
    return _starting((f"{category}/{n}" for n in scaffold.tracepoint_names(category)), incomplete)


@_quiet
def uprobe_symbols(ctx: typer.Context, incomplete: str) -> Completion:
    """Functions of the ``--target`` given before (default: the template's)."""
    target = ctx.params.get("target")
    template = _template(ctx)
    if target is None and template is not None:
        target = next((o.default for o in template.options if o.check == "uprobe_target"), None)
    if not target:
        return []
    path = scaffold.resolve_uprobe_target(str(target))
    return _starting(scaffold.elf_function_symbols(path), incomplete)


def _choices(ctx: typer.Context, option_name: str, fallback: tuple[str, ...]) -> tuple[str, ...]:
    template = _template(ctx)
    option = None if template is None else next((o for o in template.options if o.name == option_name), None)
    return option.choices if option is not None and option.choices else fallback


@_quiet
def directions(ctx: typer.Context, incomplete: str) -> Completion:
    """The template's choices for ``direction`` (ingress, egress)."""
    return _starting(_choices(ctx, "direction", ("ingress", "egress")), incomplete)


@_quiet
def sockopts(ctx: typer.Context, incomplete: str) -> Completion:
    """The template's choices for ``sockopt_target`` (getsockopt, setsockopt)."""
    return _starting(_choices(ctx, "sockopt_target", ("getsockopt", "setsockopt")), incomplete)


_VALUES_BY_CHECK: dict[str, Callable[[], Iterable[str]]] = {
    "interface": scaffold.interfaces,
    "kernel_function": scaffold.kernel_functions,
    "lsm_hook": scaffold.lsm_hooks,
    "btf_tracepoint": scaffold.btf_tracepoints,
    "tracepoint": scaffold.tracepoint_categories,
}


@_quiet
def settings(ctx: typer.Context, incomplete: str) -> Completion:
    """``NAME=`` for the template's options, then the values that option accepts."""
    template = _template(ctx)
    if template is None:
        return []
    name, equals, _ = incomplete.partition("=")
    if not equals:
        return [(f"{o.name}=", o.help) for o in template.options if o.name.startswith(name)]
    option = next((o for o in template.options if o.name == name), None)
    if option is None:
        return []
    if option.choices:
        candidates: Iterable[str] = option.choices
    elif option.check == "tracepoint" and "category" not in option.name:
        category = ctx.params.get("tracepoint") or ""
        candidates = scaffold.tracepoint_names(str(category).partition("/")[0]) if category else []
    else:
        candidates = _VALUES_BY_CHECK.get(option.check, lambda: [option.default])()
    return _starting((f"{name}={c}" for c in candidates), incomplete)
