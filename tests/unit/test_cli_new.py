"""`pyaya new` options: flags, --set, checks against this machine (real /sys, tracefs, BTF, ELF), prompts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pyaya import scaffold
from pyaya.cli import _complete, app
from pyaya.cli import new as new_module
from typer.testing import CliRunner

runner = CliRunner()

TEMPLATES = {
    "xdp": """
description = "Count packets"
[options.interface]
default = "lo"
help = "network interface"
check = "interface"
[options.direction]
default = "ingress"
help = "traffic direction"
check = "choice"
choices = ["ingress", "egress"]
""",
    "tp": """
description = "Trace one tracepoint"
[options.tracepoint_category]
default = "syscalls"
help = "category"
check = "tracepoint"
[options.tracepoint_name]
default = "sys_enter_openat"
help = "name"
check = "tracepoint"
""",
    "uprobe": """
description = "Probe a user function"
[options.uprobe_target]
default = "libc"
help = "binary or library"
check = "uprobe_target"
[options.uprobe_function]
default = "malloc"
help = "function"
check = "uprobe_function"
""",
    "kernel": """
description = "Kernel names"
[options.function]
default = "do_unlinkat"
check = "kernel_function"
[options.lsm_hook]
default = "file_open"
check = "lsm_hook"
[options.btf_tracepoint]
default = "sched_switch"
check = "btf_tracepoint"
[options.program_name]
default = "probe"
check = "identifier"
""",
    "raw": """
description = "Count syscalls"
[options.tracepoint_name]
default = "sys_enter"
help = "raw tracepoint"
check = "btf_tracepoint"
""",
    "plain": 'description = "No options"\n',
}


@pytest.fixture
def templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "templates"
    for kind, config in TEMPLATES.items():
        (root / kind).mkdir(parents=True)
        (root / kind / "template.toml").write_text(config)
        names = [line[len("[options.") : -1] for line in config.splitlines() if line.startswith("[options.")]
        (root / kind / "values.txt").write_text("\n".join(f"{n}={{{{{n}|text}}}}" for n in names) + "\n")
    monkeypatch.setattr(scaffold, "templates_root", lambda: root)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(new_module, "_interactive", lambda: False)
    return root


def _values(project: Path) -> dict[str, str]:
    lines = (project / "values.txt").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line)


def _fails(args: list[str], *needles: str) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.stderr
    return result.stderr


def _ok(args: list[str]) -> dict[str, str]:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return _values(Path(args[1]))


def test_defaults_without_a_terminal(templates: Path) -> None:
    assert _ok(["new", "p", "-t", "xdp"]) == {"interface": "lo", "direction": "ingress"}


def test_flags_set_options(templates: Path) -> None:
    assert _ok(["new", "p", "-t", "xdp", "--interface", "lo", "--direction", "egress"]) == {
        "interface": "lo",
        "direction": "egress",
    }


def test_set_sets_any_option(templates: Path) -> None:
    assert _ok(["new", "p", "-t", "xdp", "--set", "direction=egress"])["direction"] == "egress"


def test_flag_the_template_lacks_lists_its_options(templates: Path) -> None:
    _fails(["new", "p", "-t", "xdp", "--function", "x"], "no option for --function", "interface (--interface)")
    _fails(["new", "p", "-t", "plain", "--interface", "lo"], "template plain has no options")
    _fails(["new", "p", "-t", "xdp", "--set", "colour=red"], "no option 'colour'", "direction (--direction)")


def test_malformed_set_and_tracepoint_are_usage_errors(templates: Path) -> None:
    assert runner.invoke(app, ["new", "p", "-t", "xdp", "--set", "direction"]).exit_code == 2
    assert runner.invoke(app, ["new", "p", "-t", "tp", "--tracepoint", "sched"]).exit_code == 2


def test_choice_is_checked_with_a_suggestion(templates: Path) -> None:
    _fails(
        ["new", "p", "-t", "xdp", "--direction", "egres"],
        "--direction",
        "one of ingress, egress",
        "(did you mean egress?)",
    )


def test_interface_must_exist(templates: Path) -> None:
    present = sorted(p.name for p in Path("/sys/class/net").iterdir())
    _fails(["new", "p", "-t", "xdp", "--interface", "no-such-if0"], "no network interface 'no-such-if0'", present[0])
    assert _ok(["new", "p", "-t", "xdp", "--interface", present[0]])["interface"] == present[0]


def test_no_check_skips_machine_checks(templates: Path) -> None:
    assert _ok(["new", "p", "-t", "xdp", "--interface", "elsewhere0", "--no-check"])["interface"] == "elsewhere0"


def test_nothing_is_written_when_a_check_fails(templates: Path, tmp_path: Path) -> None:
    _fails(["new", "p", "-t", "xdp", "--interface", "no-such-if0"])
    assert not (tmp_path / "p").exists()


def _tracefs() -> Path:
    events = scaffold.tracefs_events()
    if events is None or not (events / "sched" / "sched_switch").is_dir():
        pytest.skip("tracefs is not mounted with sched/sched_switch (mount -t tracefs nodev /sys/kernel/tracing)")
    return events


def test_tracepoint_must_exist_in_tracefs(templates: Path) -> None:
    _tracefs()
    assert _ok(["new", "p", "-t", "tp", "--tracepoint", "sched/sched_switch"]) == {
        "tracepoint_category": "sched",
        "tracepoint_name": "sched_switch",
    }
    _fails(
        ["new", "q", "-t", "tp", "--tracepoint", "sched/sched_swich"],
        "no tracepoint sched/sched_swich",
        "did you mean sched_switch",
    )
    _fails(["new", "q", "-t", "tp", "--tracepoint", "schde/sched_switch"], "no tracepoint category 'schde'", "sched")


def test_unmounted_tracefs_says_how_to_mount(templates: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(scaffold, "TRACEFS_ROOTS", (tmp_path / "no-tracefs",))
    _fails(["new", "q", "-t", "tp", "--tracepoint", "sched/sched_switch"], "mount -t tracefs nodev /sys/kernel/tracing")


def _kernel_btf() -> None:
    if not Path("/sys/kernel/btf/vmlinux").is_file():
        pytest.skip("this kernel has no BTF at /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF)")


def test_raw_tracepoint_takes_a_name_alone(templates: Path) -> None:
    assert _ok(["new", "p", "-t", "raw", "--tracepoint", "sched_switch", "--no-check"]) == {
        "tracepoint_name": "sched_switch"
    }


def test_kernel_names_are_checked_in_the_kernel_btf(templates: Path) -> None:
    _kernel_btf()
    values = _ok(["new", "p", "-t", "kernel", "--function", "do_unlinkat", "--hook", "bpf_lsm_file_open"])
    assert values["function"] == "do_unlinkat"
    assert values["lsm_hook"] == "file_open"  # the BTF's name is accepted and rendered as the hook's
    _fails(["new", "q", "-t", "kernel", "--function", "do_unlinkatt"], "no function 'do_unlinkatt'", "do_unlinkat")
    _fails(["new", "q", "-t", "kernel", "--hook", "file_opn"], "not an LSM hook", "file_open")
    _fails(["new", "q", "-t", "kernel", "--btf-tracepoint", "sched_swich"], "not a BTF tracepoint", "sched_switch")
    _fails(["new", "q", "-t", "kernel", "--set", "program_name=9lives"], "not an identifier")


def test_uprobe_target_and_symbol_are_read_from_the_elf(templates: Path, tmp_path: Path) -> None:
    if scaffold.resolve_library("libc") is None:
        pytest.skip("no libc found through ldconfig -p or the usual library folders")
    assert _ok(["new", "p", "-t", "uprobe", "--target", "libc", "--symbol", "malloc"]) == {
        "uprobe_target": "libc",
        "uprobe_function": "malloc",
    }
    _fails(["new", "q", "-t", "uprobe", "--target", "libc", "--symbol", "mallocc"], "no function symbol", "malloc")
    _fails(["new", "q", "-t", "uprobe", "--target", "libno-such-lib"], "not a shared library")
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    _fails(["new", "q", "-t", "uprobe", "--target", str(text)], "not an ELF file")


def test_relative_uprobe_target_becomes_absolute(templates: Path, tmp_path: Path) -> None:
    true = shutil.which("true")
    if true is None:
        pytest.skip("no `true` program on PATH")
    shutil.copy(true, tmp_path / "prog")
    values = _ok(["new", "p", "-t", "uprobe", "--target", "./prog", "--symbol", "main", "--no-check"])
    assert values["uprobe_target"] == "./prog"  # --no-check renders what was given
    result = runner.invoke(app, ["new", "r", "-t", "uprobe", "--target", "./prog", "--set", "uprobe_function=x"])
    assert "has no function symbol 'x'" in result.stderr or result.exit_code == 0


def test_default_that_does_not_fit_warns(templates: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(scaffold, "SYS_CLASS_NET", tmp_path / "no-net")
    result = runner.invoke(app, ["new", "p", "-t", "xdp"])
    assert result.exit_code == 0, result.output
    assert "warning: no network interface 'lo'" in result.stderr
    assert "--interface" in result.stderr


def test_prompts_on_a_terminal_with_the_default(templates: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(new_module, "_interactive", lambda: True)
    # First answer is wrong and asked again; then Enter keeps the default direction.
    result = runner.invoke(app, ["new", "p", "-t", "xdp"], input="no-such-if0\nlo\n\n")
    assert result.exit_code == 0, result.output
    assert _values(Path("p")) == {"interface": "lo", "direction": "ingress"}
    assert "[lo]" in result.stderr  # the default, pre-filled
    assert "no network interface 'no-such-if0'" in result.stderr


def test_given_options_are_not_asked_for(templates: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(new_module, "_interactive", lambda: True)
    result = runner.invoke(app, ["new", "p", "-t", "xdp", "--interface", "lo"], input="egress\n")
    assert result.exit_code == 0, result.output
    assert "network interface" not in result.stderr
    assert _values(Path("p"))["direction"] == "egress"


def test_templates_lists_options(templates: Path) -> None:
    result = runner.invoke(app, ["templates"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "--interface  network interface (default: lo)" in lines[lines.index("xdp     Count packets") + 1]
    assert any("--tracepoint CATEGORY/NAME  category / name (default: syscalls/sys_enter_openat)" in x for x in lines)
    assert any("--set program_name=VALUE" in x for x in lines)
    listing = json.loads(runner.invoke(app, ["templates", "--json"]).stdout)
    xdp = next(t for t in listing if t["kind"] == "xdp")
    assert xdp["options"][1] == {
        "name": "direction",
        "flag": "--direction",
        "default": "ingress",
        "help": "traffic direction",
        "check": "choice",
        "choices": ["ingress", "egress"],
    }


def test_completions(templates: Path) -> None:
    assert ("xdp", "Count packets") in _complete.template_kinds("x")
    assert "lo" in _complete.interfaces("l")
    if scaffold.tracefs_events() is not None:
        assert "sched/" in _complete.tracepoints("sch")
        assert "sched/sched_switch" in _complete.tracepoints("sched/sched_sw")
    if Path("/sys/kernel/btf/vmlinux").is_file():
        assert "do_unlinkat" in _complete.kernel_functions("do_unlink")
        assert "file_open" in _complete.lsm_hooks("file_o")
    assert _complete.interfaces("no-such-prefix") == []


@pytest.mark.parametrize("kind", ["kprobe", "kretprobe"])
def test_a_kprobe_template_warns_at_once_on_a_kernel_without_kprobes(tmp_path: Path, kind: str) -> None:
    from pyaya import features  # noqa: PLC0415 - the same probe the command asks

    kprobes = features.kprobes_supported()
    result = runner.invoke(app, ["new", "probed", "-t", kind, "--path", str(tmp_path / "probed"), "--no-check"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "has no kprobes" in line]
    if kprobes.ok:
        assert warnings == []
    else:
        assert len(warnings) == 1
        assert warnings[0].startswith("warning: this kernel has no kprobes (")
        assert "templates that work here instead: tracepoint, raw_tracepoint" in warnings[0]
        # Before anything else: the first line on stderr.
        assert result.stderr.splitlines()[0] == warnings[0]


def test_tracepoint_template_does_not_warn_about_kprobes(tmp_path: Path) -> None:
    result = runner.invoke(app, ["new", "traced", "--path", str(tmp_path / "traced")])
    assert result.exit_code == 0, result.output
    assert "kprobes" not in result.stderr
