"""``pyaya package [PATH] --tag NAME:VERSION``: a bpfman bytecode image of the project, pushed and deployed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pyaya.cli._common import handle_errors

__all__ = ["package"]


@handle_errors
def package(
    path: Annotated[
        Path | None,
        typer.Argument(help="The project, or any folder inside it (default: the current folder).", show_default=False),
    ] = None,
    *,
    tag: Annotated[
        str,
        typer.Option("--tag", metavar="NAME:VERSION", help="The image's name and version, e.g. execwatch:0.1.0."),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            metavar="DIR",
            help="OCI image layout folder to write (default: target/oci/NAME in the project).",
            show_default=False,
        ),
    ] = None,
    push: Annotated[
        str | None,
        typer.Option(
            "--push",
            metavar="REGISTRY/REPO:TAG",
            help="Also push the image there (with skopeo), e.g. 127.0.0.1:5000/execwatch:0.1.0.",
            show_default=False,
        ),
    ] = None,
    cert_dir: Annotated[
        Path | None,
        typer.Option(
            "--cert-dir",
            metavar="DIR",
            help="Folder with the registry's CA certificate (*.crt) for --push.",
            show_default=False,
        ),
    ] = None,
    tls_verify: Annotated[
        bool, typer.Option("--tls-verify/--no-tls-verify", help="Check the registry's TLS certificate on --push.")
    ] = True,
    manifests: Annotated[
        Path | None,
        typer.Option(
            "--manifests",
            metavar="DIR",
            help="Write a ClusterBpfApplication and a DaemonSet for the project's user space there.",
            show_default=False,
        ),
    ] = None,
    user_image: Annotated[
        str | None,
        typer.Option(
            "--user-image",
            metavar="IMAGE",
            help="The DaemonSet's image of main.py (default: NAME-userspace:VERSION).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Build the project and write it as a bpfman bytecode image (OCI); print the image's folder, what was pushed and
    the manifests written (and, on stderr, the bpfman command that loads the image)."""
    import shlex  # noqa: PLC0415

    from pyaya.package import bpfman_load_command  # noqa: PLC0415 - see pyaya.cli: imported when run
    from pyaya.package import package as package_project  # noqa: PLC0415
    from pyaya.project import find_project  # noqa: PLC0415

    project = find_project(path)
    result = package_project(
        project,
        tag,
        output=output,
        push_to=push,
        manifests=manifests,
        cert_dir=cert_dir,
        tls_verify=tls_verify,
        user_image=user_image,
    )
    typer.echo(f"{result.image.layout} ({result.image.reference}, {result.image.digest})")
    if result.pushed:
        typer.echo(result.pushed)
    for written in result.manifests:
        typer.echo(str(written))
    url = push or tag
    command = bpfman_load_command(url, result.image.programs, result.global_data)
    typer.echo(f"load it with: {shlex.join(command)}", err=True)
