"""Kubernetes manifests of `pyaya package --manifests`: parsed back with PyYAML and checked against the fields of
bpfman-operator 0.6's ClusterBpfApplication CRD (tests/unit/data, reduced from the CRD's openAPIV3Schema), and the
DaemonSet against what it must say (no cluster runs here: see docs/guide.md, "Running on a fleet")."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyaya.errors import PackageError
from pyaya.manifests import bpf_application, daemonset, to_yaml, write_manifests
from pyaya.project import load_project
from pyaya.scaffold import create_project

SCHEMA = json.loads((Path(__file__).parent / "data" / "bpfman_clusterbpfapplication_v1alpha1.json").read_text())


def validate(value: Any, schema: dict[str, Any], path: str = "spec") -> list[str]:
    """The OpenAPI v3 subset Kubernetes checks for a structural CRD; unknown fields are errors here (the API
    server would prune them silently, which would lose what the user wrote)."""
    errors: list[str] = []
    kind = schema.get("type")
    checks = {"object": dict, "array": list, "string": str, "boolean": bool}
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{path}: {value!r} is not an integer"]
    elif kind in checks and not isinstance(value, checks[kind]):
        return [f"{path}: {value!r} is not a {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: {value} < {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{path}: {value} > {schema['maximum']}")
    if kind == "array":
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{path}: more than {schema['maxItems']} items")
        for i, item in enumerate(value):
            errors += validate(item, schema.get("items", {}), f"{path}[{i}]")
    if kind == "object":
        properties = schema.get("properties")
        for required in schema.get("required", []):
            if required not in value:
                errors.append(f"{path}: {required} is required")
        for key, item in value.items():
            if properties is not None and key in properties:
                errors += validate(item, properties[key], f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += validate(item, schema["additionalProperties"], f"{path}.{key}")
            elif properties is not None:
                errors.append(f"{path}: unknown field {key!r}")
    return errors


def test_the_validator_catches_what_bpfman_would_refuse() -> None:
    bad = {
        "nodeSelector": {},
        "byteCode": {"image": {"url": "x", "imagePullPolicy": "Sometimes"}},
        "programs": [{"name": "p", "type": "Lsm", "tracepoint": {"links": [{}]}, "extra": 1}],
    }
    errors = validate(bad, SCHEMA["spec"])
    assert any("imagePullPolicy" in e for e in errors)
    assert any("'Lsm' is not one of" in e for e in errors)
    assert any("name is required" in e for e in errors)
    assert any("unknown field 'extra'" in e for e in errors)


def _render(kind: str, tmp_path: Path, **options: str) -> Path:
    """A template's project as `pyaya new` creates it (default options unless given); its pyaya.toml."""
    name = f"demo-{kind}".replace("_", "-")
    folder, _files = create_project(name, template=kind, path=tmp_path / kind, options=options)
    return folder / "pyaya.toml"


# Each template bpfman loads: its programs (name suffix -> bpfman type) and the ELF sections aya gives them.
BPFMAN_TEMPLATES = {
    "tracepoint": ({"": "tracepoint"}, {"": "tracepoint/syscalls/sys_enter_execve"}),
    "exec_context": ({"": "tracepoint"}, {"": "tracepoint/sched/sched_process_exec"}),
    "xdp": ({"": "xdp"}, {"": "xdp"}),
    "classifier": ({"": "tcx"}, {"": "classifier"}),
    "kprobe": ({"_entry": "kprobe", "_return": "kretprobe"}, {"_entry": "kprobe", "_return": "kretprobe"}),
    "kretprobe": ({"": "kretprobe"}, {"": "kretprobe"}),
    "fentry": ({"_entry": "fentry", "_return": "fexit"}, {"_entry": "fentry/vfs_read", "_return": "fexit/vfs_read"}),
    "fexit": ({"": "fexit"}, {"": "fexit/vfs_read"}),
    "uprobe": ({"_entry": "uprobe", "_return": "uretprobe"}, {"_entry": "uprobe", "_return": "uretprobe"}),
    "uretprobe": ({"": "uretprobe"}, {"": "uretprobe"}),
}


@pytest.mark.parametrize("kind", sorted(BPFMAN_TEMPLATES))
def test_every_bpfman_template_makes_a_valid_cluster_bpf_application(kind: str, tmp_path: Path) -> None:
    project = load_project(_render(kind, tmp_path))
    suffixes, sections = BPFMAN_TEMPLATES[kind]
    programs = {f"demo_{kind}{suffix}": program_type for suffix, program_type in suffixes.items()}
    application = bpf_application(
        project,
        name=project.name,
        image_url="127.0.0.1:5000/demo:1",
        programs=programs,
        sections={f"demo_{kind}{suffix}": section for suffix, section in sections.items()},
        global_data={"TASK_TGID_OFFSET": "CAAAAAAAAAA="} if kind == "tracepoint" else {},
    )
    parsed = yaml.safe_load(to_yaml(application))
    assert parsed == application
    assert parsed["apiVersion"] == "bpfman.io/v1alpha1"
    assert parsed["kind"] == "ClusterBpfApplication"
    assert validate(parsed["spec"], SCHEMA["spec"]) == []
    assert sorted(p["name"] for p in parsed["spec"]["programs"]) == sorted(programs)


def test_attach_points_come_from_pyaya_toml(tmp_path: Path) -> None:
    tracepoint = load_project(_render("tracepoint", tmp_path))
    app = bpf_application(
        tracepoint, name="t", image_url="r/t:1", programs={"demo_tracepoint": "tracepoint"}, sections={}, global_data={}
    )
    assert app["spec"]["programs"] == [
        {
            "name": "demo_tracepoint",
            "type": "TracePoint",
            "tracepoint": {"links": [{"name": "syscalls/sys_enter_execve"}]},
        }
    ]
    classifier = load_project(_render("classifier", tmp_path, interface="eth1", direction="egress"))
    app = bpf_application(
        classifier, name="c", image_url="r/c:1", programs={"demo_classifier": "tcx"}, sections={}, global_data={}
    )
    (program,) = app["spec"]["programs"]
    assert program["tcx"]["links"] == [
        {"interfaceSelector": {"interfaces": ["eth1"]}, "priority": 50, "direction": "Egress"}
    ]


def test_a_network_program_without_interfaces_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "pyaya.toml"
    config.write_text('[project]\nname = "n"\n')
    with pytest.raises(PackageError, match=r"needs interfaces = \[\"eth0\", \.\.\.\] or primary_interface = true"):
        bpf_application(
            load_project(config), name="n", image_url="r/n:1", programs={"n": "xdp"}, sections={}, global_data={}
        )


def test_tracepoints_default_to_the_section_and_otherwise_must_be_given(tmp_path: Path) -> None:
    config = tmp_path / "pyaya.toml"
    config.write_text('[project]\nname = "n"\n')
    project = load_project(config)
    app = bpf_application(
        project, name="n", image_url="r/n:1", programs={"n": "tracepoint"}, sections={"n": "tracepoint/sched/x"},
        global_data={},
    )  # fmt: skip
    assert app["spec"]["programs"][0]["tracepoint"]["links"] == [{"name": "sched/x"}]
    with pytest.raises(PackageError, match=r'add \[attach.n\] to pyaya.toml with tracepoint = "category/name"'):
        bpf_application(project, name="n", image_url="r/n:1", programs={"n": "tracepoint"}, sections={}, global_data={})


def test_the_daemonset_reads_the_pinned_maps_unprivileged() -> None:
    documents = daemonset(
        name="execwatch",
        user_image="reg/execwatch-userspace:1",
        object_name="execwatch",
        maps=["EXEC_COUNTS", "EVENTS"],
    )
    parsed = yaml.safe_load_all("---\n".join(to_yaml(d) for d in documents))
    namespace, account, ds = parsed
    assert namespace["kind"] == "Namespace"
    assert account["kind"] == "ServiceAccount"
    assert ds["apiVersion"] == "apps/v1"
    assert ds["kind"] == "DaemonSet"
    pod = ds["spec"]["template"]
    assert ds["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    spec = pod["spec"]
    (container,) = spec["containers"]
    security = container["securityContext"]
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["allowPrivilegeEscalation"] is False
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert "privileged" not in security
    assert not spec.get("hostNetwork")
    assert not spec.get("hostPID")
    (volume,) = spec["volumes"]
    assert volume["csi"]["driver"] == "csi.bpfman.io"
    assert volume["csi"]["volumeAttributes"] == {
        "csi.bpfman.io/program": "execwatch",
        "csi.bpfman.io/maps": "EXEC_COUNTS,EVENTS",
    }
    (mount,) = container["volumeMounts"]
    args = container["args"]
    assert args[args.index("--pinned-maps") + 1] == mount["mountPath"]
    assert args[args.index("--metrics") + 1] == "0.0.0.0:9435"
    assert container["ports"] == [{"name": "metrics", "containerPort": 9435, "protocol": "TCP"}]


def test_yaml_strings_cannot_change_the_document() -> None:
    hostile = {"a": 'x"\n  b: injected', "list": ["- c", "{d: e}", "#f"], "n": 1, "t": True, "empty": {}, "none": []}
    assert yaml.safe_load(to_yaml(hostile)) == hostile


def test_write_manifests_writes_three_files(tmp_path: Path) -> None:
    project = load_project(_render("tracepoint", tmp_path))
    out = tmp_path / "deploy"
    written = write_manifests(
        project, out, image_url="127.0.0.1:5000/demo:1", programs={"demo_tracepoint": "tracepoint"},
        maps={"EXEC_COUNTS": "hash", "EVENTS": "ringbuf"}, global_data={"TASK_TGID_OFFSET": (8).to_bytes(8, "little")},
        object_name="demo-tracepoint", user_image="demo-userspace:1", sections={},
    )  # fmt: skip
    assert [p.name for p in written] == [
        "demo-tracepoint-bpfapplication.yaml",
        "demo-tracepoint-daemonset.yaml",
        "Containerfile",
    ]
    application = yaml.safe_load(written[0].read_text())
    assert application["spec"]["globalData"] == {"TASK_TGID_OFFSET": "CAAAAAAAAAA="}
    assert validate(application["spec"], SCHEMA["spec"]) == []
    assert len(list(yaml.safe_load_all(written[1].read_text()))) == 3
    assert "COPY main.py /app/main.py" in written[2].read_text()
