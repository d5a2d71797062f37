"""``pyaya test [PATH] --kernel SERIES [...] [--json] [-- PYTEST-ARGS]``: a project's tests inside VMs of other kernels.

Each kernel boots in its own QEMU guest (one after the other) that sees this machine's files read-only under a
scratch overlay: the project is built here first, then its ``tests/`` run with this interpreter's pytest, as root,
in the guest. One row per kernel says what passed, failed and was skipped, and how long the boot and the run took.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from pyaya.cli._common import EXIT_FAILURE, handle_errors, note, use_color
from pyaya.cli._table import format_table

if TYPE_CHECKING:
    from pyaya.vm import Kernel, VmConfig

__all__ = ["TestCommand", "junit_outcomes", "matrix"]


class TestCommand(TyperCommand):
    """Everything after ``--`` goes to pytest untouched (so ``pyaya test -- -k name`` is not read as PATH)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # a click Context: typer keeps click private
        if "--" in args:
            at = args.index("--")
            ctx.meta["pytest_args"] = args[at + 1 :]
            args = args[:at]
        return super().parse_args(ctx, args)


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through vm.run, which kills its QEMU


def _names_a_path(root: Path, args: list[str]) -> bool:
    return any(not arg.startswith("-") and (root / arg.split("::")[0]).exists() for arg in args)


def junit_outcomes(xml: bytes) -> dict[str, dict[str, str]]:
    """Each test of pytest's JUnit XML (``module.path::name``) with its ``outcome`` (``passed``, ``failed``,
    ``skipped``; an error is a failure) and, for the last two, the first line of its ``message``."""
    from xml.etree import ElementTree  # noqa: PLC0415 - only when a run reports

    root = ElementTree.fromstring(xml)  # written by pytest in our own guest
    outcomes: dict[str, dict[str, str]] = {}
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}".lstrip(":")
        for tag, outcome in (("failure", "failed"), ("error", "failed"), ("skipped", "skipped")):
            problem = case.find(tag)
            if problem is not None:
                lines = (problem.get("message") or problem.text or "").strip().splitlines()
                outcomes[name] = {"outcome": outcome, "message": lines[0] if lines else ""}
                break
        else:
            outcomes[name] = {"outcome": "passed"}
    return outcomes


def _run_kernel(kernel: Kernel, config: VmConfig, root: Path, pytest_argv: list[str], *, quiet: bool) -> dict[str, Any]:
    from pyaya import vm  # noqa: PLC0415 - see pyaya.cli: imported when run
    from pyaya.errors import VmError  # noqa: PLC0415

    row: dict[str, Any] = {
        "kernel": kernel.label,
        "release": kernel.release,
        "passed": 0,
        "failed": 0,
        "skipped": 0,
        "seconds": {"boot": None, "run": None},
        "accel": None,
        "failures": [],
        "error": None,
        "tests": {},
    }
    accel, why = vm.choose_accel(kernel, config.accel, progress=note)
    row["accel"] = accel
    note(f"{kernel.label}: booting {kernel.release} under {accel.upper()} ({why})")
    # The guest's output is a serial port (a terminal to pytest): colors only where this side shows them.
    color = "--color=yes" if use_color(err=True) else "--color=no"
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", color, f"--junitxml={vm.GUEST_SHARE}/junit.xml"]
    try:
        result = vm.run(
            kernel,
            [*argv, *pytest_argv],
            config=config,
            accel=accel,
            cwd=root,
            output=(lambda text: None) if quiet else sys.stderr.write,
            keep=("junit.xml",),
        )
    except VmError as error:
        row["error"] = str(error).splitlines()[0]
        row["failed"] = 1
        return row
    row["seconds"] = {"boot": round(result.boot_seconds, 1), "run": round(result.run_seconds, 1)}
    note(f"{kernel.label}: booted to the command in {result.boot_seconds:.1f} s; tests ran {result.run_seconds:.1f} s")
    junit = result.files.get("junit.xml")
    if junit:
        outcomes = junit_outcomes(junit)
        for outcome in ("passed", "failed", "skipped"):
            row[outcome] = sum(1 for test in outcomes.values() if test["outcome"] == outcome)
        row["failures"] = [
            {"test": name, "message": test["message"]} for name, test in outcomes.items() if test["outcome"] == "failed"
        ]
        row["tests"] = outcomes
    if result.returncode != 0:
        if not row["failed"]:
            row["failed"] = 1
            row["error"] = (
                "pytest collected no test"
                if result.returncode == 5
                else f"pytest exited with status {result.returncode}"
            )
        row["console_log"] = str(vm.save_console_log(result.console, kernel))
    return row


def _render(rows: list[dict[str, Any]]) -> str:
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    table = format_table(
        ("KERNEL", "RELEASE", "ACCEL", "PASSED", "FAILED", "SKIPPED", "BOOT S", "RUN S"),
        [
            (
                row["kernel"],
                row["release"],
                row["accel"] or "-",
                row["passed"],
                row["failed"],
                row["skipped"],
                seconds(row["seconds"]["boot"]),
                seconds(row["seconds"]["run"]),
            )
            for row in rows
        ],
        right=frozenset({3, 4, 5, 6, 7}),
    )
    lines = [table]
    for row in rows:
        problems = [f"  {f['test']}: {f['message']}" for f in row["failures"]]
        if row["error"]:
            problems.insert(0, f"  {row['error']}")
        if row.get("console_log"):
            problems.append(f"  console log: {row['console_log']}")
        if problems:
            lines += ["", f"{row['kernel']} ({row['release']}):", *problems]
    return "\n".join(lines)


@handle_errors
def matrix(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Argument(
            metavar="PATH", help="The project (default: the current folder); its tests/ run.", show_default=False
        ),
    ] = None,
    *,
    kernel: Annotated[
        list[str] | None,
        typer.Option(
            "--kernel",
            metavar="SERIES",
            help="A kernel series: 5.10, 6.1 or 6.12 (Debian's current package).",
            show_default=False,
        ),
    ] = None,
    kernel_image: Annotated[
        list[Path] | None,
        typer.Option(
            "--kernel-image",
            metavar="PATH",
            help="A vmlinuz of another distribution (its modules: --modules, else lib/modules/<release> beside it).",
            show_default=False,
        ),
    ] = None,
    modules: Annotated[
        Path | None,
        typer.Option("--modules", metavar="DIR", help="The modules folder of --kernel-image.", show_default=False),
    ] = None,
    append: Annotated[
        str, typer.Option("--append", metavar="PARAMS", help="Extra kernel parameters, e.g. 'lsm=lockdown,bpf'.")
    ] = "",
    memory: Annotated[str, typer.Option("--memory", metavar="SIZE", help="Guest memory (QEMU -m).")] = "2G",
    cpus: Annotated[int, typer.Option("--cpus", min=1, max=64, help="Guest CPUs.")] = 2,
    accel: Annotated[
        str, typer.Option("--accel", metavar="auto|kvm|tcg", help="KVM, emulation, or KVM where a boot check works.")
    ] = "auto",
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, metavar="SECONDS", help="Kill a guest that runs longer.")
    ] = 3600,
    boot_timeout: Annotated[
        float,
        typer.Option("--boot-timeout", min=1, metavar="SECONDS", help="Kill a guest that has not booted by then."),
    ] = 180,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help='Print a JSON list of {"kernel", "passed", "failed", "skipped", "seconds", "tests", ...} rows.',
        ),
    ] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Ask Debian for the newest package of each series again.")
    ] = False,
    no_build: Annotated[bool, typer.Option("--no-build", help="Do not build the project first.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not show the guests' output.")] = False,
) -> None:
    """Run the project's tests as root inside a VM of each kernel; one row per kernel (exit 1 if any fails).

    Arguments after `--` go to pytest, e.g. `pyaya test --kernel 6.12 -- -k lsm -x`.
    """
    from pyaya import vm  # noqa: PLC0415 - see pyaya.cli: imported when run
    from pyaya.errors import ProjectError, VmError  # noqa: PLC0415
    from pyaya.project import find_project  # noqa: PLC0415

    series = list(kernel or [])
    images = list(kernel_image or [])
    if not series and not images:
        raise typer.BadParameter("give at least one --kernel SERIES or --kernel-image PATH", param_hint="--kernel")
    if accel not in ("auto", "kvm", "tcg"):
        raise typer.BadParameter(f"{accel!r} is not one of auto, kvm, tcg", param_hint="--accel")
    unknown = [name for name in series if name not in vm.SERIES]
    if unknown:
        raise VmError(
            f"unknown kernel series {unknown[0]!r}: known are {', '.join(vm.SERIES)}; for another kernel pass "
            "--kernel-image PATH (a vmlinuz with its modules)"
        )
    pytest_args: list[str] = list(ctx.meta.get("pytest_args", []))
    start = (path or Path.cwd()).resolve()
    if not start.exists():
        raise typer.BadParameter(f"{start} does not exist", param_hint="PATH")
    try:
        project = find_project(start)
    except ProjectError:
        project = None  # a folder with tests but no pyaya.toml (pyaya itself): nothing to build
    root = project.root if project is not None else start
    if not _names_a_path(root, pytest_args):
        if not (root / "tests").is_dir():
            raise typer.BadParameter(f"{root} has no tests/ folder; name tests after `--`", param_hint="PATH")
        pytest_args = ["tests", *pytest_args]
    vm.qemu_binary()
    vm.busybox_binary()
    if project is not None and not no_build:
        from pyaya.build import ensure_built  # noqa: PLC0415

        for built in ensure_built(project):
            note(f"built {built}")
    signal.signal(signal.SIGTERM, _on_sigterm)
    kernels = [vm.debian_kernel(name, refresh=refresh, progress=note) for name in series]
    kernels += [vm.image_kernel(image, modules, progress=note) for image in images]
    config = vm.VmConfig(
        memory=memory, cpus=cpus, append=append, accel=accel, boot_timeout=boot_timeout, timeout=timeout
    )
    rows = [_run_kernel(k, config, root, pytest_args, quiet=quiet) for k in kernels]
    if json_output:
        typer.echo(json.dumps(rows, indent=2))
    else:
        typer.echo(_render(rows))
    if any(row["failed"] or row["error"] for row in rows):
        raise typer.Exit(EXIT_FAILURE)
