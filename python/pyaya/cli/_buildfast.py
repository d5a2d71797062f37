"""``pyaya build`` without Typer, for the command lines it can take as they are.

A no-op build is what ``pyaya run`` and editors run again and again, and importing Typer and every command's module
costs more than cargo's own up-to-date check. :func:`parse` takes ``[PATH] [--debug] [--toolchain KIND]`` the way
Click reads them for :func:`pyaya.cli.build.build` and returns None for anything else (``--help``, an unknown
option, a bad kind, a second PATH), which the Typer command then reads, so help and usage errors are Click's own.
A test holds both parsers to the same result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["BuildArgs", "main", "parse"]

#: ``--toolchain``'s choices (:class:`pyaya.cli.build.ToolchainKind`), matched case-insensitively as Click does.
_KINDS = ("auto", "nightly", "prebuilt", "bootstrap")


@dataclass
class BuildArgs:
    """The options of one ``pyaya build``."""

    path: Path | None = None
    debug: bool = False
    toolchain: str | None = None


def parse(arguments: list[str]) -> BuildArgs | None:
    """The options in ``arguments`` (what follows ``build``), or None when Click should read them."""
    parsed = BuildArgs()
    positional: list[str] = []
    index = 0
    only_positional = False
    while index < len(arguments):
        arg = arguments[index]
        index += 1
        if only_positional or not arg.startswith("-") or arg == "-":
            positional.append(arg)
        elif arg == "--":
            only_positional = True
        elif arg == "--debug":
            parsed.debug = True
        elif arg == "--toolchain" or arg.startswith("--toolchain="):
            _name, equals, value = arg.partition("=")
            if not equals:
                if index >= len(arguments):
                    return None
                value = arguments[index]
                index += 1
            if value.lower() not in _KINDS:
                return None
            parsed.toolchain = value.lower()
        else:
            return None  # --help, -h, unknown: Click's
    if len(positional) > 1 or (positional and not positional[0]):
        return None
    if positional:
        parsed.path = Path(positional[0])
    return parsed


def main(arguments: list[str]) -> bool:
    """Run ``pyaya build ARGUMENTS`` here when :func:`parse` takes them; False when Typer should."""
    parsed = parse(arguments)
    if parsed is None:
        return False
    from pyaya.cli._runcore import handle_errors  # noqa: PLC0415 - after parsing

    @handle_errors
    def build() -> None:
        from pyaya.build import build as build_project  # noqa: PLC0415
        from pyaya.project import find_project  # noqa: PLC0415

        project = find_project(parsed.path)
        objects = build_project(project, debug=parsed.debug, toolchain=parsed.toolchain)
        if objects:
            import sys  # noqa: PLC0415

            sys.stdout.write("".join(f"{obj}\n" for obj in objects))
            sys.stdout.flush()

    build()
    return True
