"""pyaya.features against reality on this machine: what the probes say is what loading and attaching do."""

from __future__ import annotations

from pathlib import Path

import pyaya
import pytest
from pyaya import Ebpf, features


def test_probe_all_answers_every_feature() -> None:
    reports = features.probe_all()
    names = [report.name for report in reports]
    assert len(names) == len(set(names))
    for wanted in ("btf", "bpf_link", "kprobes", "fentry/fexit", "lsm", "tp_btf", "ring buffer", "batch map ops",
                   "tcx", "bpf stats", "program:Xdp", "map:RingBuf"):  # fmt: skip
        assert wanted in names
    for report in reports:
        assert report.reason, report.name
    assert features.probe_all() == reports  # cached: the same answers
    assert features.probe("ring buffer") is features.probe("ring buffer")


def test_unknown_names_are_errors() -> None:
    with pytest.raises(KeyError, match="no feature"):
        features.probe("warp drive")
    with pytest.raises(KeyError, match="lsm_cgroup"):  # the needs marker's names are listed
        features.requirement("warp drive")
    assert not features.program_type_supported("NoSuchProgram").ok
    assert "NoSuchProgram" in features.program_type_supported("NoSuchProgram").reason
    with pytest.raises(pyaya.NotFoundError, match="helpers are numbered"):
        pyaya._native.helper_supported("Xdp", 100000)


def test_requirements_agree_with_the_probes_they_stand_for() -> None:
    assert features.requirement("kprobes") == tuple(features.probe("kprobes")[1:])
    assert features.requirement("fentry") == features.fentry_supported()
    lsm_cgroup = features.requirement("lsm_cgroup")
    if not features.lsm_supported().ok:
        assert not lsm_cgroup.ok
    assert features.requirement("program:Xdp").ok


def test_xdp_probe_matches_loading_one(fixtures_dir: Path) -> None:
    assert features.probe("program:Xdp").supported
    with Ebpf.load_file(fixtures_dir / "types_plain") as bpf:
        program = bpf.programs["types_xdp"]
        program.load()
        assert program.loaded


def test_ring_buffer_probe_matches_creating_one(fixtures_dir: Path) -> None:
    assert features.probe("ring buffer").supported
    with Ebpf.load_file(fixtures_dir / "types_records") as bpf:
        assert bpf.maps["SAMPLES"].size == 64 * 1024


def test_helper_probe() -> None:
    bpf_redirect = 23
    assert features.helper_supported("Xdp", bpf_redirect).ok
    # A networking helper from a tracepoint: the verifier refuses it.
    assert not features.helper_supported("TracePoint", bpf_redirect).ok


def test_kprobe_attach_fails_exactly_when_the_probe_says_so(fixtures_dir: Path) -> None:
    report = features.probe("kprobes")
    with Ebpf.load_file(fixtures_dir / "types_plain") as bpf:
        program = bpf.programs["types_kprobe"]
        program.load()  # loading works either way: the program type exists
        assert program.loaded
        attach = getattr(program, "attach", None)
        if attach is None:
            pytest.skip("this build has no KProbe.attach (pyaya.programs registers no KProbe class)")
        if report.supported:
            with attach("do_unlinkat"):
                pass
        else:
            with pytest.raises(pyaya.PyayaError):
                attach("do_unlinkat")


#: The upstream release that added each BTF kind aya probes. Debian's kernels carry no backports of these, so on
#: them (this host and the VM kernels) aya's probe must agree with the version. Not btf_datasec_zero: aya probes it
#: with a DATASEC of size 0, which every kernel refuses, so it answers no everywhere (KernelFeatures says so).
BTF_KIND_SINCE = {
    "btf_func": (5, 0),
    "btf_datasec": (5, 2),
    "btf_func_global": (5, 6),
    "btf_float": (5, 13),
    "btf_decl_tag": (5, 16),
    "btf_type_tag": (5, 17),
    "btf_enum64": (6, 0),
}


@pytest.mark.smoke
def test_btf_kind_probes_agree_with_the_kernel_release() -> None:
    found = features.kernel_features()
    assert found.btf
    release = features.kernel_version()[:2]
    answers = {name: getattr(found, name) for name in BTF_KIND_SINCE}
    assert answers == {name: release >= since for name, since in BTF_KIND_SINCE.items()}
    assert not found.btf_datasec_zero
    assert {*BTF_KIND_SINCE, "btf_datasec_zero"} == set(features.BTF_FALLBACKS)
    reason = features.probe("object btf").reason
    for name, ok in {**answers, "btf_datasec_zero": False}.items():
        assert (features.BTF_FALLBACKS[name] in reason) is not ok, reason
