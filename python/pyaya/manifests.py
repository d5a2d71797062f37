"""Kubernetes manifests for a packaged project: what bpfman's operator loads, and the project's own user space.

``pyaya package --manifests DIR`` writes:

* ``<name>-bpfapplication.yaml``: a ``ClusterBpfApplication`` (``bpfman.io/v1alpha1``, bpfman-operator 0.6) naming
  the bytecode image, the read-only globals (``globalData``) and, for each program, where it attaches, from
  ``[attach.<program>]`` in ``pyaya.toml`` (or from the program's ELF section, which names a tracepoint, kprobe or
  fentry function when the kernel side's macro says it);
* ``<name>-daemonset.yaml``: a Namespace, a ServiceAccount and a DaemonSet running ``main.py`` on every node with
  ``--pinned-maps`` (the maps bpfman pinned, mounted by bpfman's CSI driver) and ``--metrics`` (Prometheus), as an
  unprivileged user with every capability dropped;
* ``Containerfile``: how the DaemonSet's image is built (Python, ``pyaya[metrics]``, ``main.py`` and the object,
  whose BTF types the maps' keys and values).

The YAML is written with every string JSON-quoted (a JSON string is a YAML double-quoted scalar), so no value can
change the document's structure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyaya.errors import PackageError
from pyaya.project import AttachPoint, Project

__all__ = ["METRICS_PORT", "bpf_application", "daemonset", "to_yaml", "write_manifests"]

METRICS_PORT = 9435
MAPS_MOUNT = "/run/pyaya/maps"
_CRD_TYPES = {
    "tracepoint": "TracePoint",
    "kprobe": "KProbe",
    "kretprobe": "KRetProbe",
    "uprobe": "UProbe",
    "uretprobe": "URetProbe",
    "fentry": "FEntry",
    "fexit": "FExit",
    "xdp": "XDP",
    "tc": "TC",
    "tcx": "TCX",
}
_DNS_LABEL = re.compile(r"[^a-z0-9-]+")


def to_yaml(value: Any, indent: int = 0) -> str:
    """A YAML document of dicts, lists, strings, numbers and booleans; strings are JSON-quoted."""
    return "".join(_yaml_lines(value, indent))


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _yaml_lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        if not value:
            return [f"{pad}{{}}\n"]
        for key, item in value.items():
            head = f"{pad}{json.dumps(str(key)) if not re.fullmatch(r'[A-Za-z0-9_./-]+', str(key)) else key}:"
            if isinstance(item, (dict, list)) and item:
                lines.append(head + "\n")
                lines += _yaml_lines(item, indent + 2)
            else:
                lines.append(f"{head} {_flow(item)}\n")
        return lines
    if isinstance(value, list):
        if not value:
            return [f"{pad}[]\n"]
        for item in value:
            if isinstance(item, (dict, list)) and item:
                nested = _yaml_lines(item, indent + 2)
                lines.append(f"{pad}- {nested[0].lstrip()}")
                lines += nested[1:]
            else:
                lines.append(f"{pad}- {_flow(item)}\n")
        return lines
    return [f"{pad}{_scalar(value)}\n"]


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)


def kubernetes_name(name: str) -> str:
    """A project name as a Kubernetes object name (lower case, digits and ``-``)."""
    cleaned = _DNS_LABEL.sub("-", name.lower()).strip("-")[:63].strip("-")
    if not cleaned:
        raise PackageError(f"cannot make a Kubernetes name of {name!r}")
    return cleaned


def _section_target(section: str, prefix: str) -> str | None:
    head, _, rest = section.partition("/")
    return rest or None if head == prefix else None


def _interface_selector(program: str, attach: AttachPoint) -> dict[str, Any]:
    if attach.primary_interface:
        return {"primaryNodeInterface": True}
    if attach.interfaces:
        return {"interfaces": list(attach.interfaces)}
    raise PackageError(
        f'[attach.{program}] needs interfaces = ["eth0", ...] or primary_interface = true: where should bpfman '
        "attach it on each node?"
    )


def _program_entry(program: str, kind: str, section: str, attach: AttachPoint | None) -> dict[str, Any]:
    point = attach or AttachPoint(program=program)
    entry: dict[str, Any] = {"name": program, "type": _CRD_TYPES[kind]}
    missing = f"add [attach.{program}] to pyaya.toml with"
    if kind == "tracepoint":
        name = point.tracepoint or _section_target(section, "tracepoint")
        if name is None or "/" not in name:
            raise PackageError(f'{missing} tracepoint = "category/name"')
        entry["tracepoint"] = {"links": [{"name": name}]}
    elif kind in ("kprobe", "kretprobe"):
        function = point.function or _section_target(section, kind)
        if function is None:
            raise PackageError(f'{missing} function = "KERNEL_FUNCTION"')
        link: dict[str, Any] = {"function": function}
        if kind == "kprobe":
            link["offset"] = point.offset
        entry[kind] = {"links": [link]}
    elif kind in ("uprobe", "uretprobe"):
        if point.target is None:
            raise PackageError(f'{missing} target = "libc" (or a binary\'s path) and function = "SYMBOL"')
        link = {"target": point.target}
        if point.function is not None:
            link["function"] = point.function
        if kind == "uprobe" or point.offset:
            link["offset"] = point.offset
        entry[kind] = {"links": [link]}
    elif kind in ("fentry", "fexit"):
        function = point.function or _section_target(section, kind)
        if function is None:
            raise PackageError(f'{missing} function = "KERNEL_FUNCTION"')
        entry[kind] = {"function": function, "links": [{"mode": "Attach"}]}
    elif kind == "xdp":
        entry["xdp"] = {
            "links": [{"interfaceSelector": _interface_selector(program, point), "priority": point.priority}]
        }
    else:  # tc, tcx
        entry[kind] = {
            "links": [
                {
                    "interfaceSelector": _interface_selector(program, point),
                    "priority": point.priority,
                    "direction": point.direction.capitalize(),
                }
            ]
        }
    return entry


def bpf_application(
    project: Project,
    *,
    name: str,
    image_url: str,
    programs: Mapping[str, str],
    sections: Mapping[str, str],
    global_data: Mapping[str, str],
) -> dict[str, Any]:
    """The ``ClusterBpfApplication`` of a packaged project (``global_data``: base64 values by name)."""
    spec: dict[str, Any] = {
        "nodeSelector": {},
        "byteCode": {"image": {"url": image_url, "imagePullPolicy": "IfNotPresent"}},
    }
    if global_data:
        spec["globalData"] = dict(global_data)
    spec["programs"] = [
        _program_entry(program, kind, sections.get(program, ""), project.fleet.attach.get(program))
        for program, kind in sorted(programs.items())
    ]
    return {
        "apiVersion": "bpfman.io/v1alpha1",
        "kind": "ClusterBpfApplication",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "pyaya"}},
        "spec": spec,
    }


def daemonset(
    *, name: str, user_image: str, object_name: str, maps: list[str], main: str = "main.py"
) -> list[dict[str, Any]]:
    """A Namespace, a ServiceAccount and the DaemonSet running ``main.py`` next to the programs bpfman loaded."""
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "pyaya"}
    container: dict[str, Any] = {
        "name": name,
        "image": user_image,
        "imagePullPolicy": "IfNotPresent",
        "args": [
            f"/app/{main}",
            "--object",
            f"/app/{object_name}.o",
            "--pinned-maps",
            MAPS_MOUNT,
            "--metrics",
            f"0.0.0.0:{METRICS_PORT}",
            "--json",
        ],
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        # Reading pinned maps needs no capability on kernels >= 6.5 (and CAP_BPF before that, or with
        # kernel.unprivileged_bpf_disabled forbidding it): the CSI driver hands the pins to the pod's fsGroup.
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "runAsGroup": 65534,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "bpf-maps", "mountPath": MAPS_MOUNT}],
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
    }
    pod_spec: dict[str, Any] = {
        "serviceAccountName": name,
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "fsGroup": 65534, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [
            {
                "name": "bpf-maps",
                "csi": {
                    "driver": "csi.bpfman.io",
                    "volumeAttributes": {"csi.bpfman.io/program": name, "csi.bpfman.io/maps": ",".join(maps)},
                },
            }
        ],
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": name, "labels": labels},
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": name, "labels": labels},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                "template": {
                    "metadata": {
                        "labels": labels,
                        "annotations": {
                            "prometheus.io/scrape": "true",
                            "prometheus.io/port": str(METRICS_PORT),
                            "prometheus.io/path": "/metrics",
                        },
                    },
                    "spec": pod_spec,
                },
            },
        },
    ]


_CONTAINERFILE = """\
# The user space of {name}, for {name}-daemonset.yaml: `podman build -t {image} -f Containerfile <project folder>`
# after `pyaya build` (the object's BTF types the maps read from bpfman's pins).
FROM docker.io/library/python:3.12-slim
RUN pip install --no-cache-dir "pyaya[metrics]"
COPY {main} /app/{main}
COPY {object_path} /app/{object_name}.o
USER 65534:65534
ENTRYPOINT ["python"]
"""


def write_manifests(
    project: Project,
    folder: Path,
    *,
    image_url: str,
    programs: Mapping[str, str],
    maps: Mapping[str, str],
    global_data: Mapping[str, bytes],
    object_name: str,
    user_image: str,
    sections: Mapping[str, str] | None = None,
) -> tuple[Path, ...]:
    """Write the manifests of a packaged project into ``folder``; returns the files written."""
    import base64  # noqa: PLC0415

    if sections is None:
        from pyaya.inspect import inspect_file  # noqa: PLC0415

        objects = project.object_paths()
        sections = {p.name: p.section for p in inspect_file(objects[0]).programs} if objects else {}
    name = kubernetes_name(project.name)
    application = bpf_application(
        project,
        name=name,
        image_url=image_url,
        programs=programs,
        sections=sections,
        global_data={key: base64.b64encode(value).decode() for key, value in global_data.items()},
    )
    documents = daemonset(name=name, user_image=user_image, object_name=object_name, maps=sorted(maps))
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    app_file = folder / f"{name}-bpfapplication.yaml"
    app_file.write_text(to_yaml(application))
    written.append(app_file)
    ds_file = folder / f"{name}-daemonset.yaml"
    ds_file.write_text("---\n".join(to_yaml(document) for document in documents))
    written.append(ds_file)
    objects = project.object_paths()
    relative_object = (
        objects[0].relative_to(project.root) if objects and objects[0].is_relative_to(project.root) else None
    )
    containerfile = folder / "Containerfile"
    containerfile.write_text(
        _CONTAINERFILE.format(
            name=name,
            image=user_image,
            main=project.main.name,
            object_path=relative_object or f"target/bpfel-unknown-none/release/{object_name}",
            object_name=object_name,
        )
    )
    written.append(containerfile)
    return tuple(written)
