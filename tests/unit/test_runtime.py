"""runtime: BCC-style histograms, BCC's common flags, periodic callbacks, output modes, verifier summaries."""

from __future__ import annotations

import argparse
import io
import json
import os
import struct
import time
from pathlib import Path

import pyaya
import pytest
from bpfobj import BtfBuilder, Sym, build_elf
from pyaya import features, runtime
from pyaya.errors import VerifierError
from pyaya.inspect import line_info, source_location
from pyaya.runtime import (
    RunOptions,
    Session,
    linear_buckets,
    log2_buckets,
    parse_options,
    print_linear_hist,
    print_log2_hist,
    verifier_summary,
)


def _printed(function: object, *args: object, **kwargs: object) -> list[str]:
    out = io.StringIO()
    function(*args, file=out, **kwargs)  # type: ignore[operator]
    return out.getvalue().splitlines()


def test_log2_hist_matches_bcc() -> None:
    # What BCC's print_log2_hist prints for vals[1] = 1, vals[3] = 4 (e.g. biolatency with two bursts).
    assert _printed(print_log2_hist, {1: 1, 3: 4}, "usecs") == [
        "     usecs               : count     distribution",
        "         0 -> 1          : 1        |**********                              |",
        "         2 -> 3          : 0        |                                        |",
        "         4 -> 7          : 4        |****************************************|",
    ]


def test_log2_hist_wide_layout_past_slot_32() -> None:
    lines = _printed(print_log2_hist, {34: 2}, "nsecs")
    assert lines[0] == "               nsecs                         : count     distribution"
    assert lines[-1] == "          8589934592 -> 17179869183          : 2        |********************|"
    assert len(lines) == 35


def test_log2_hist_strip_leading_zero_and_empty() -> None:
    assert _printed(print_log2_hist, {3: 1}, "ms", strip_leading_zero=True) == [
        "     ms                  : count     distribution",
        "         4 -> 7          : 1        |****************************************|",
    ]
    assert _printed(print_log2_hist, {}, "ms") == []
    assert _printed(print_log2_hist, {0: 5}, "ms") == []  # slot 0 alone prints nothing, as in BCC


def test_per_cpu_values_are_summed() -> None:
    class PerCpu(list[int]):
        def sum(self) -> int:
            return sum(self)

    assert _printed(print_log2_hist, {1: PerCpu([1, 2]), 2: [3, 3]}, "x")[1:] == [
        "         0 -> 1          : 3        |********************                    |",
        "         2 -> 3          : 6        |****************************************|",
    ]


def test_linear_hist_matches_bcc() -> None:
    assert _printed(print_linear_hist, [1, 0, 3], "cpu") == [
        "     cpu           : count     distribution",
        "        0          : 1        |*************                           |",
        "        1          : 0        |                                        |",
        "        2          : 3        |****************************************|",
    ]


def test_buckets_for_json() -> None:
    assert log2_buckets({1: 1, 3: 4}) == [
        {"low": 0, "high": 1, "count": 1},
        {"low": 2, "high": 3, "count": 0},
        {"low": 4, "high": 7, "count": 4},
    ]
    assert linear_buckets({1: 2}) == [{"value": 0, "count": 0}, {"value": 1, "count": 2}]
    with pytest.raises(ValueError, match="negative"):
        log2_buckets({-1: 1})


def test_bcc_common_flags(tmp_path: Path) -> None:
    obj = tmp_path / "obj"
    options = parse_options(["--object", str(obj), "-p", "42", "2", "5", "--extra"])
    assert (options.pid, options.interval, options.count) == (42, 2.0, 5)
    assert options.extra == ("--extra",)
    plain = parse_options(["--object", str(obj)])
    assert (plain.pid, plain.interval, plain.count) == (None, None, None)
    for bad in (["0"], ["1", "0"], ["-p", "0"]):
        with pytest.raises(SystemExit):
            parse_options(["--object", str(obj), *bad])


def _slow_calls_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description="Slow calls.")
    parser.add_argument("--min-ms", type=float, default=10.0, help="only calls at least this long")
    return parser


def test_project_parser_joins_the_common_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    obj = tmp_path / "obj"
    options = parse_options(["--min-ms", "5", "--object", str(obj), "-p", "7", "2", "3"], parser=_slow_calls_parser())
    assert options.args.min_ms == 5.0  # not taken for the interval
    assert (options.object_path, options.pid, options.interval, options.count) == (obj, 7, 2.0, 3)
    assert options.extra == ()
    with pytest.raises(SystemExit) as caught:
        parse_options(["--object", str(obj), "--unknown"], parser=_slow_calls_parser())
    assert caught.value.code == 2
    assert "unrecognized arguments: --unknown" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_options(["--help"], parser=_slow_calls_parser())
    shown = capsys.readouterr().out
    assert "--min-ms" in shown
    assert "options of every pyaya project" in shown
    assert "--duration" in shown


def _session(tmp_path: Path, **options: object) -> tuple[Session, io.StringIO]:
    out = io.StringIO()
    return Session("demo", options=RunOptions(object_path=tmp_path / "obj", **options), out=out), out  # type: ignore[arg-type]


class _Named(dict[int, int]):
    name = "LATENCY"


def test_histogram_at_exit_table_and_json(tmp_path: Path) -> None:
    session, out = _session(tmp_path)
    session.show_histogram_at_exit(_Named({1: 1, 3: 4}), label="usecs")  # type: ignore[arg-type]
    session._print_maps()
    assert out.getvalue().splitlines()[1:3] == ["LATENCY:", "     usecs               : count     distribution"]

    session, out = _session(tmp_path, json=True)
    session.show_histogram_at_exit(_Named({1: 2}), label="usecs", kind="linear")  # type: ignore[arg-type]
    session._print_maps()
    assert json.loads(out.getvalue()) == {
        "kind": "map",
        "map": "LATENCY",
        "histogram": "linear",
        "label": "usecs",
        "buckets": [{"value": 0, "count": 0}, {"value": 1, "count": 2}],
    }
    with pytest.raises(ValueError, match="log2, linear"):
        session.show_histogram_at_exit(_Named(), label="x", kind="log10")  # type: ignore[arg-type]


def test_show_histogram_clear_empties_the_map(tmp_path: Path) -> None:
    session, _ = _session(tmp_path)
    hist = _Named({1: 1})
    session.show_histogram(hist, label="x", clear=True)  # type: ignore[arg-type]
    assert hist == {}


def test_every_runs_count_intervals_then_stops(tmp_path: Path) -> None:
    session, _ = _session(tmp_path, count=3)
    ticks: list[float] = []
    session.every(0.05, lambda: ticks.append(time.monotonic()))
    started = time.monotonic()
    session.wait(interval=10)
    assert len(ticks) == 3
    assert session.intervals_done == 3
    assert 0.14 <= time.monotonic() - started < 2
    with pytest.raises(ValueError, match="> 0"):
        session.every(0, lambda: None)


def test_every_uses_the_command_line_interval(tmp_path: Path) -> None:
    session, _ = _session(tmp_path, interval=0.05, count=1, duration=5)
    seen: list[int] = []
    session.every(None, lambda: seen.append(1))
    session.wait()
    assert seen == [1]


def test_plain_output_when_not_a_terminal(tmp_path: Path) -> None:
    session, out = _session(tmp_path)
    session.columns = [runtime.Column("pid", 6)]
    session.event("EVENTS", {"pid": 1})
    assert not session.color
    assert out.getvalue() == "PID\n1\n"


def test_lost_records_are_json_lines(tmp_path: Path) -> None:
    session, out = _session(tmp_path, json=True)
    session.lost("EVENTS", 3)
    session.lost("EVENTS", 0)  # nothing to report
    session.lost("EVENTS", 2)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines == [{"kind": "lost", "map": "EVENTS", "count": 3}, {"kind": "lost", "map": "EVENTS", "count": 2}]
    assert session.lost_records == {"EVENTS": 5}


def test_lost_warnings_are_rate_limited(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    session, out = _session(tmp_path)
    session.lost("EVENTS", 3)  # the first warning is shown at once
    session.lost("EVENTS", 4)  # within a second of it: held back
    session.lost("EVENTS", 1)
    assert capsys.readouterr().err.splitlines() == ["warning: lost 3 records from EVENTS (3 in all so far)"]
    assert session._lost_warned_at is not None
    session._lost_warned_at -= 1.5  # as if the second had passed
    session.lost("OTHER", 2)
    assert capsys.readouterr().err.splitlines() == [
        "warning: lost 5 records from EVENTS (8 in all so far)",
        "warning: lost 2 records from OTHER (2 in all so far)",
    ]
    assert out.getvalue() == ""  # warnings go to stderr, events to out


# -- verifier rejections -----------------------------------------------------------------------------------------

LOG = """\
0: R1=ctx() R10=fp0
;  @ const_ptr.rs:863
0: (07) r1 += 32768                   ; R1=ctx(off=0x8000)
;  @ mod.rs:2095
1: (79) r1 = *(u64 *)(r1 +0)
dereference of modified ctx ptr R1 off=32768 disallowed
verification time 80 usec
stack depth 0
processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""


def _object_with_line_info(tmp_path: Path) -> Path:
    btf = BtfBuilder()
    btf.int_("u32", 4)
    section = "tracepoint/syscalls/sys_enter_getpid"
    records = [
        (0, "/usr/src/rustc-1.96.0/library/core/src/ptr/const_ptr.rs", "", 863, 18),
        (8, "/usr/src/rustc-1.96.0/library/core/src/ptr/mod.rs", "", 2095, 9),
        (16, "/home/me/probe/probe-ebpf/src/main.rs", "let value = ...;", 11, 17),
    ]
    line_data = struct.pack("<III", 16, btf.s(section), len(records))
    for offset, file, text, line, column in records:
        line_data += struct.pack("<IIII", offset, btf.s(file), btf.s(text), (line << 10) | column)
    ext = struct.pack("<HBBIIIIIII", 0xEB9F, 1, 0, 32, 0, 0, 0, len(line_data), 0, 0) + line_data
    code = bytes(8 * 4)
    data = build_elf(
        [(section, 1, 0x6, code), (".BTF", 1, 0, btf.to_bytes()), (".BTF.ext", 1, 0, ext)],
        [Sym("rejected", section, 0, len(code))],
    )
    path = tmp_path / "rejected"
    path.write_bytes(data)
    return path


def test_line_info_is_read_from_btf_ext(tmp_path: Path) -> None:
    records = line_info(_object_with_line_info(tmp_path).read_bytes())
    assert [(r.insn_offset, r.line, r.column) for r in records] == [(0, 863, 18), (8, 2095, 9), (16, 11, 17)]
    assert str(records[2]) == "/home/me/probe/probe-ebpf/src/main.rs:11:17"
    location = source_location(tmp_path / "rejected", "rejected", 1)
    assert location is not None
    assert location.exact is not None
    assert location.exact.line == 2095
    assert location.own is not None
    assert location.own.line == 11
    assert source_location(tmp_path / "rejected", "rejected", 99) is None


def test_verifier_summary_keeps_what_matters(tmp_path: Path) -> None:
    error = VerifierError('loading program "rejected": the verifier rejected the program', LOG, 13)
    summary = verifier_summary(error, _object_with_line_info(tmp_path)).splitlines()
    assert summary[0] == 'loading program "rejected": the verifier rejected the program'
    assert summary[1] == "  dereference of modified ctx ptr R1 off=32768 disallowed"
    assert summary[2] == "  at instruction 1: (79) r1 = *(u64 *)(r1 +0)"
    assert summary[3] == (
        "  source: /usr/src/rustc-1.96.0/library/core/src/ptr/mod.rs:2095:9 "
        "(inlined into /home/me/probe/probe-ebpf/src/main.rs:11:17 in rejected)"
    )
    assert "verification time" not in "\n".join(summary)
    assert summary[-1] == "  (run with -v for the full verifier log)"
    without_object = verifier_summary(error)
    assert "source:" not in without_object


# The verifier's words when a helper is refused: 5.10 for a helper newer than itself, 5.10 for one the program type
# lacks, and 6.x for the same (recorded from those kernels' logs).
OLD_KERNEL_UNKNOWN = "0: R1=ctx(id=0,off=0,imm=0) R10=fp0\n0: (85) call unknown#184\ninvalid func unknown#184\n"
OLD_KERNEL_REFUSED = "0: (85) call bpf_get_current_pid_tgid#14\nunknown func bpf_get_current_pid_tgid#14\n"
NEW_KERNEL_REFUSED = "0: (85) call bpf_get_func_ret#184\nprogram of this type cannot use helper bpf_get_func_ret#184\n"


def test_verifier_error_names_a_helper_the_kernel_lacks() -> None:
    error = VerifierError('loading program "exit_ret": the verifier rejected the program', OLD_KERNEL_UNKNOWN, 22)
    assert error.hint is not None
    assert error.hint.startswith(f"this kernel ({os.uname().release}) has no helper bpf_get_func_ret (#184)")
    summary = verifier_summary(error).splitlines()
    assert summary[1] == f"  {error.hint}"
    assert error.hint in str(error)


def test_verifier_error_names_a_helper_the_program_type_may_not_call() -> None:
    for log, name in ((OLD_KERNEL_REFUSED, "bpf_get_current_pid_tgid (#14)"), (NEW_KERNEL_REFUSED, "bpf_get_func_ret")):
        hint = VerifierError("loading program: rejected", log).hint
        assert hint is not None
        assert "does not let this type of program call " + name in hint
    assert VerifierError("x", LOG).hint is None


def test_helpers_by_name_and_number() -> None:
    assert features.helper_number("bpf_get_func_ret") == 184
    assert features.helper_number("get_func_ret") == 184
    assert features.helper_name(14) == "bpf_get_current_pid_tgid"
    with pytest.raises(pyaya.NotFoundError, match="did you mean bpf_get_func_ret"):
        features.helper_number("bpf_get_func_rett")
    with pytest.raises(pyaya.NotFoundError, match="numbered 1 to"):
        features.helper_number(0)
    with pytest.raises(KeyError, match="helper:<ProgramType>:<name>"):
        features.requirement("helper:a:b:c")


@pytest.mark.parametrize(
    ("options", "level"),
    [({}, "INFO"), ({"json": True}, "INFO"), ({"verbose": True}, "DEBUG"), ({"json": True, "verbose": True}, "DEBUG")],
)
def test_kernel_debug_records_only_with_verbose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: dict[str, bool], level: str
) -> None:
    """Kernel-side records reach the session through the loader's sink (not logging), debug ones only with -v:
    --json alone must not switch on a debug record per event (the load's log_level says the same to the kernel)."""
    import logging  # noqa: PLC0415

    from pyaya import loader  # noqa: PLC0415

    session, out = _session(tmp_path, **options)
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logger = logging.getLogger("pyaya.ebpf")
    logger.addHandler(handler)
    previous_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        with session:
            loader._forward_log(logging.DEBUG, "app", "a debug record")
            loader._forward_log(logging.INFO, "app", "an info record")
            loader._forward_log(5, "app", "a trace record")
        loader._forward_log(logging.INFO, "app", "after the session")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
    shown = out.getvalue() + capsys.readouterr().err  # JSON lines on the output, else lines on stderr
    assert "an info record" in shown
    assert ("a debug record" in shown) is (level == "DEBUG")
    assert "a trace record" not in shown
    # Outside a session the records go to logging, as a script that never made a session has them.
    assert [record.getMessage() for record in seen] == ["after the session"]


# -- start-up: the fast option parser, the JSON encoder, the written-out dataclasses ------------------------------

#: Command lines of the common options the fast parser takes; argparse must read each the same.
FAST_TAKEN = [
    ["--object", "obj"],
    ["--object=obj", "--json"],
    ["--json", "--object", "target/x", "--duration", "1.5", "-v"],
    ["--object", "obj", "--verbose", "--duration=0", "--json", "--json"],
    ["--object", "obj", "--duration", "1", "--duration", "2"],
    ["--object", "obj", "--duration", "inf"],
    ["--object", "obj", "--metrics", "127.0.0.1:9000", "--pinned-maps", "/sys/fs/bpf/app"],
    ["--object", "obj", "--metrics=host:1", "--pinned-maps=pins"],
    ["--object", "a", "--object", "b"],
    ["--object", "obj with spaces"],
    ["--object", "obj", "--pid", "42"],
    ["--object", "obj", "-p", "42", "2", "10"],
    ["-p42", "--object", "obj", "2"],
    ["--pid=7", "--object", "obj", "0.5", "3"],
    ["2", "5", "--object", "obj", "--json"],
    ["--object", "obj", "-p", " 8 "],
]

#: What it leaves to argparse: help, usage errors, and what argparse reads in its own ways.
FAST_REFUSED = [
    ["--help"],
    ["-h"],
    ["--object", "obj", "-h"],
    ["--object", "obj", "--unknown"],
    ["--object", "obj", "-x"],
    ["--obj", "obj"],  # an abbreviation
    ["--object", "obj", "--js"],
    ["--object", "obj", "--json=1"],
    ["--object"],
    ["--object", ""],
    ["--object=", "--json"],
    ["--object", "-"],
    ["--object", "--json"],
    ["--object", "obj", "--duration"],
    ["--object", "obj", "--duration", "-1"],
    ["--object", "obj", "--duration=-1"],
    ["--object", "obj", "--duration", "soon"],
    ["--object", "obj", "-p", "0"],
    ["--object", "obj", "-p", "1.5"],
    ["--object", "obj", "-p=5"],
    ["--object", "obj", "-vp", "5"],
    ["--object", "obj", "-v5"],
    ["--object", "obj", "0"],
    ["--object", "obj", "-1"],
    ["--object", "obj", "1", "0"],
    ["--object", "obj", "1", "x"],
    ["--object", "obj", "soon"],
    ["--object", "obj", "1", "2", "3"],
    ["--object", "obj", "2", "--json", "5"],  # argparse takes 2 and leaves 5 in extra
    ["--object", "obj", "--", "2"],
    ["--object", "obj", "--metrics", "-x"],
]


def _argparse_result(argv: list[str], *, through_parse_options: bool = False) -> RunOptions | str:
    """What argparse makes of ``argv`` (parse_options without a project parser), or how it exits."""
    try:
        if through_parse_options:
            return parse_options(argv)
        return runtime._parse_argparse(argv, description=None, parser=None)
    except SystemExit as exit_:
        return f"exit {exit_.code}"


@pytest.mark.parametrize("argv", FAST_TAKEN, ids=" ".join)
def test_fast_parse_matches_argparse(argv: list[str]) -> None:
    fast = runtime._parse_fast(argv)
    assert fast is not None
    slow = _argparse_result(argv)
    assert isinstance(slow, RunOptions)
    assert list(vars(fast.args).items()) == list(vars(slow.args).items())  # the same Namespace, in the same order
    assert fast == slow
    assert repr(fast) == repr(slow)
    assert type(fast.object_path) is type(slow.object_path)
    assert type(fast.pinned_maps) is type(slow.pinned_maps)
    assert parse_options(argv) == slow


@pytest.mark.parametrize("argv", FAST_REFUSED, ids=" ".join)
def test_fast_parse_leaves_help_errors_and_oddities_to_argparse(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert runtime._parse_fast(argv) is None
    slow = _argparse_result(argv)
    shown = capsys.readouterr()
    assert _argparse_result(argv, through_parse_options=True) == slow
    assert capsys.readouterr() == shown  # argparse's own help and usage errors, byte for byte


def test_fast_parse_reads_sys_argv_and_makes_paths_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["main.py", "--object", "target/obj", "--json"])
    options = parse_options()
    assert isinstance(options._object_path, runtime._PathText)  # not a Path yet
    assert options._object_fspath() == "target/obj"
    assert options.object_path == Path("target/obj")
    assert isinstance(options.object_path, Path)
    assert options.object_path is options.object_path
    assert options.args is options.args
    assert options.args == argparse.Namespace(
        object=Path("target/obj"),
        json=True,
        duration=None,
        verbose=False,
        pid=None,
        metrics=None,
        pinned_maps=None,
        interval=None,
        count=None,
    )


def test_fast_parse_without_object_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No --object and no project holding the script: argparse's usage error, as before."""
    monkeypatch.setattr("sys.argv", [str(tmp_path / "main.py")])
    assert runtime._parse_fast([]) is None
    with pytest.raises(SystemExit) as caught:
        parse_options([])
    assert caught.value.code == 2


def _old_run_options() -> type:
    """RunOptions as the dataclass it was, to hold the written-out class to its repr and ==."""
    import dataclasses  # noqa: PLC0415
    from collections.abc import Sequence  # noqa: PLC0415

    @dataclasses.dataclass(frozen=True)
    class RunOptions:
        object_path: Path
        json: bool = False
        duration: float | None = None
        verbose: bool = False
        extra: Sequence[str] = ()
        pid: int | None = None
        interval: float | None = None
        count: int | None = None
        args: argparse.Namespace = dataclasses.field(default_factory=argparse.Namespace)
        metrics: str | None = None
        pinned_maps: Path | None = None

    RunOptions.__qualname__ = "RunOptions"  # as at a module's top, where it was
    return RunOptions


def test_run_options_behave_as_the_dataclass_they_were() -> None:
    import pickle  # noqa: PLC0415

    old = _old_run_options()
    for kwargs in ({}, {"json": True, "pid": 3, "extra": ("-x",), "pinned_maps": Path("pins")}):
        new_options = RunOptions(Path("obj"), **kwargs)  # type: ignore[arg-type]
        old_options = old(Path("obj"), **kwargs)
        assert repr(new_options) == repr(old_options)
        assert new_options == RunOptions(object_path=Path("obj"), **kwargs)  # type: ignore[arg-type]
        assert pickle.loads(pickle.dumps(new_options)) == new_options
    options = RunOptions("obj", True, 1.0, False, (), 5, 2.0, 3)  # type: ignore[arg-type]
    assert (options.object_path, options.json, options.pid, options.count) == ("obj", True, 5, 3)  # stored as given
    assert options.args == argparse.Namespace()
    assert options.args is not RunOptions(Path("obj")).args  # a fresh Namespace each, as the default factory made
    assert options != old("obj", True, 1.0, False, (), 5, 2.0, 3)  # another class: not equal, as dataclasses say
    with pytest.raises(AttributeError, match="cannot assign to field 'json'"):
        options.json = False  # type: ignore[misc]
    with pytest.raises(TypeError, match="unhashable"):
        hash(options)  # its Namespace is not hashable, as with the dataclass
    match options:
        case RunOptions(path, json_lines):
            assert (path, json_lines) == ("obj", True)


def test_columns_and_sessions_behave_as_the_dataclasses_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    column = runtime.Column("pid", 7)
    assert repr(column) == "Column(field='pid', width=7, heading=None, align='<')"
    assert column == runtime.Column(field="pid", width=7)
    assert hash(column) == hash(runtime.Column("pid", 7, None, "<"))
    assert runtime.Column("latency_ms", 10, "LAT(ms)", ">").title == "LAT(ms)"
    assert runtime.Column("comm").title == "COMM"
    with pytest.raises(AttributeError):
        column.width = 3  # type: ignore[misc]
    monkeypatch.setattr("sys.argv", ["main.py", "--object", str(tmp_path / "obj")])
    session = Session("demo", columns=[column])
    assert session.options == RunOptions(object_path=tmp_path / "obj", args=session.options.args)
    assert session.out is __import__("sys").stdout
    assert repr(session).startswith("Session(name='demo', options=RunOptions(object_path=")
    assert "lost_records={}, _lost_unwarned={}" in repr(session)
    session.mine = 1  # type: ignore[attr-defined]  # a script's own state, as on the dataclass
    with pytest.raises(TypeError):
        hash(session)


class _Level(int):
    """An int subclass (an IntEnum's value, a ctypes-derived count): JSON writes it as the int."""


#: Values events, logs and maps carry into --json lines.
JSON_VALUES: list[object] = [
    0,
    -1,
    2**64 - 1,
    -(2**70),
    10**40,
    True,
    False,
    None,
    _Level(7),
    1.5,
    0.1,
    -0.0,
    1e300,
    5e-324,
    float("nan"),
    float("inf"),
    float("-inf"),
    "",
    "plain",
    "é ü 日本 😀",
    '\x00\x01\x1f\x7f"\\/\n\r\t\b\f\u2028\u2029\ud800',
    b"",
    b"ascii",
    b"\xff\x00\x80abc\n",
    bytearray(b"\x01\xfe"),
    Path("/tmp/obj"),
    [],
    [1, "a", None, [2.5, b"x"]],
    (1, 2),
    {},
    {"nested": {"deeper": {"k": [1, {"x": b"\xc3\xa9"}]}}},
    {1: "int key", 2.5: "float key", None: "none key", False: "bool key"},
    {"kind": "event", "map": "EVENTS", "data": {"pid": 4242, "comm": "bash", "filename": "/usr/bin/ls"}},
]


@pytest.mark.parametrize("value", JSON_VALUES, ids=repr)
def test_json_lines_are_what_json_dumps_writes(value: object) -> None:
    record = {"kind": "event", "map": "M", "data": {"value": value}}
    expected = json.dumps(record, default=runtime._json_default)
    assert runtime._json_line(record) == expected
    assert runtime._json_line({"value": value, "again": value}) == json.dumps(
        {"value": value, "again": value}, default=runtime._json_default
    )


def test_json_lines_refuse_what_json_dumps_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TypeError, match="object is not JSON serialisable") as ours:
        runtime._json_line({"data": {"x": object()}})
    with pytest.raises(TypeError) as theirs:
        json.dumps({"data": {"x": object()}}, default=runtime._json_default)
    assert str(ours.value) == str(theirs.value)
    shared: list[object] = [1]
    assert runtime._json_line({"a": shared, "b": shared}) == '{"a": [1], "b": [1]}'  # no stale circular marks
    cycle: list[object] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="Circular reference detected"):
        runtime._json_line({"cycle": cycle})
    monkeypatch.setattr(runtime, "_c_encoder", lambda: None)  # an interpreter without _json: json itself
    record = {"kind": "log", "message": "é\x00", "data": b"\xff"}
    assert runtime._json_line(record) == json.dumps(record, default=runtime._json_default)


def test_session_writes_json_lines_as_json_dumps(tmp_path: Path) -> None:
    session, out = _session(tmp_path, json=True)
    data = {"pid": 1, "comm": "sh", "raw": b"\xff\x00", "ratio": float("nan"), "path": "é"}
    session.event("EVENTS", data)
    session.log("info", "probe", "hello\n")
    record = {"kind": "event", "map": "EVENTS", "data": data}
    log = {"kind": "log", "level": "info", "target": "probe", "message": "hello\n"}
    assert out.getvalue() == "".join(json.dumps(r, default=runtime._json_default) + "\n" for r in (record, log))
