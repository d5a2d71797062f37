"""``pyaya run`` without Typer, for the command lines it can take as they are.

:func:`parse` reads the arguments the way Click reads them for :func:`pyaya.cli.run.run` (long options with
``=VALUE`` or the next argument, short ones grouped or with the value attached, the last of a repeated option
winning, ``--`` ending them) and returns None for anything it does not take: ``--help``, ``--watch``, an unknown
option, a missing or bad value, a second PATH. The console script then runs the Typer command, so help, usage
errors and watching are Click's own, unchanged; only well-formed runs skip importing Typer (~200 ms before main.py
starts). A test holds both parsers to the same result for every option.

A run taken here then runs main.py in this interpreter (:func:`pyaya.cli._runcore.launch`), and the modules it
imports before main.py import nothing heavy (``tests/unit/test_import_cost.py``): no dataclasses, no pathlib.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyaya._launch import MainScript

__all__ = ["RunArgs", "main", "parse"]

_FLAGS = {
    "--json": "json_lines",
    "--no-build": "no_build",
    "--rebuild": "rebuild",
    "--debug": "debug",
    "--verbose": "verbose",
    "-v": "verbose",
}
_VALUES = {
    "--duration": "duration",
    "--pid": "pid",
    "-p": "pid",
    "--interval": "interval",
    "--count": "count",
    "--metrics": "metrics",
    "--args": "main_args",
}


class RunArgs:
    """The options of one ``pyaya run``, as :func:`pyaya.cli.run.run` receives them (``path`` as text)."""

    __slots__ = (
        "count",
        "debug",
        "duration",
        "interval",
        "json_lines",
        "main_args",
        "metrics",
        "no_build",
        "path",
        "pid",
        "project_args",
        "rebuild",
        "verbose",
    )

    def __init__(self, project_args: list[str] | None = None) -> None:
        self.path: str | None = None
        self.duration: float | None = None
        self.json_lines = False
        self.no_build = False
        self.rebuild = False
        self.debug = False
        self.verbose = False
        self.pid: int | None = None
        self.interval: float | None = None
        self.count: int | None = None
        self.metrics: str | None = None
        self.main_args: str | None = None
        self.project_args: list[str] = [] if project_args is None else project_args

    def as_dict(self) -> dict[str, object]:
        """Every option by name (what ``vars()`` gave of the dataclass this was)."""
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        return f"RunArgs({', '.join(f'{name}={value!r}' for name, value in self.as_dict().items())})"


def _number(text: str, kind: type[int] | type[float], low: float | None) -> int | float | None:
    """``text`` as Click's INT or FLOAT (with ``min=low``) takes it; None where Click would refuse it."""
    try:
        value = kind(text)
    except ValueError:
        return None
    if low is not None and value < low:
        return None
    return value


def _convert(name: str, text: str) -> object:
    """The value of option ``name``; None where Click would refuse ``text`` (Click says why, not this)."""
    if name == "duration":
        return _number(text, float, 0)
    if name == "pid":
        return _number(text, int, 1)
    if name == "count":
        return _number(text, int, 1)
    if name == "interval":
        return _number(text, float, None)
    return text


def parse(arguments: list[str]) -> RunArgs | None:
    """The options in ``arguments`` (what follows ``run``), or None when Click should read them."""
    options, project_args = arguments, []
    if "--" in arguments:
        at = arguments.index("--")
        options, project_args = arguments[:at], arguments[at + 1 :]
    parsed = RunArgs(project_args=project_args)
    values: dict[str, str] = {}
    positional: list[str] = []
    index = 0
    while index < len(options):
        arg = options[index]
        index += 1
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            continue
        if arg.startswith("--"):
            name, equals, value = arg.partition("=")
            if name in _FLAGS and not equals:
                setattr(parsed, _FLAGS[name], True)
                continue
            if name not in _VALUES:
                return None  # --help, --watch, unknown: Click's
            if not equals:
                if index >= len(options):
                    return None
                value = options[index]
                index += 1
            values[_VALUES[name]] = value
            continue
        # Short options, grouped (-vp 12, -vp12): flags until one that takes a value, which takes the rest.
        letters = arg[1:]
        for at, letter in enumerate(letters):
            short = f"-{letter}"
            if short in _FLAGS:
                setattr(parsed, _FLAGS[short], True)
                continue
            if short not in _VALUES:
                return None  # -h, -w, unknown
            value = letters[at + 1 :]
            if not value:
                if index >= len(options):
                    return None
                value = options[index]
                index += 1
            values[_VALUES[short]] = value
            break
    if len(positional) > 1 or (positional and not positional[0]):
        return None
    if positional:
        parsed.path = positional[0]
    for name, text in values.items():
        converted = _convert(name, text)
        if converted is None:
            return None
        setattr(parsed, name, converted)
    return parsed


def main(arguments: list[str]) -> bool:
    """Run ``pyaya run ARGUMENTS`` here when :func:`parse` takes them (it never returns then: main.py runs in this
    interpreter and the process ends with it, or the run fails and exits); False when Typer should."""
    parsed = parse(arguments)
    if parsed is None:
        return False
    from pyaya.cli import _runcore  # noqa: PLC0415 - after parsing: a refused command line never needs it

    @_runcore.handle_errors
    def run() -> MainScript | None:
        try:
            argv_for = _runcore.prepare(
                parsed.path,
                duration=parsed.duration,
                json_lines=parsed.json_lines,
                verbose=parsed.verbose,
                pid=parsed.pid,
                interval=parsed.interval,
                count=parsed.count,
                metrics=parsed.metrics,
                main_args=parsed.main_args,
                project_args=parsed.project_args,
            )
        except _runcore.BadValue:
            return None  # Click's "Invalid value" message, from the Typer command
        return _runcore.launch(argv_for, debug=parsed.debug, no_build=parsed.no_build, rebuild=parsed.rebuild)

    script = run()
    if script is None:
        return False
    script.run()  # outside handle_errors: what main.py raises is the interpreter's to report, as for python main.py
