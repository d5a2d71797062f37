"""Finding and reading a pyaya project: a folder with a ``pyaya.toml``, searched upward like cargo does.

```toml
[project]
name = "execwatch"
template = "tracepoint"
[build]
package = "execwatch-ebpf"      # cargo package that produces the objects
objects = ["execwatch"]         # cargo bin targets -> target/bpfel-unknown-none/<profile>/<name>
toolchain = "auto"              # optional: auto, nightly, prebuilt, bootstrap
[run]
main = "main.py"                # user-space script run by `pyaya run`
```
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyaya.errors import ProjectError
from pyaya.toolchain import KINDS, bpf_target

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["CONFIG_NAME", "Project", "find_project", "load_project"]

CONFIG_NAME = "pyaya.toml"

# Folders never searched for sources when deciding whether the objects are stale.
_SKIP_DIRS = frozenset({"target", ".git", "__pycache__", ".venv", "venv", "node_modules", ".mypy_cache"})
# Files outside a `src/` folder whose change means a rebuild.
_BUILD_INPUTS = frozenset({"Cargo.toml", "Cargo.lock", CONFIG_NAME, "build.rs", "rust-toolchain.toml", "config.toml"})


@dataclass(frozen=True)
class Project:
    """A pyaya project, as described by its ``pyaya.toml``."""

    root: Path
    """The folder holding ``pyaya.toml`` (absolute)."""
    name: str
    template: str | None
    package: str
    """The cargo package that produces the BPF objects (``cargo build -p``)."""
    objects: tuple[str, ...]
    """Cargo bin target names; each becomes ``target/<bpf target>/<profile>/<name>``."""
    main: Path
    """The user-space script ``pyaya run`` runs (absolute)."""
    toolchain: str | None = None
    """``[build] toolchain``: one of ``auto``, ``nightly``, ``prebuilt``, ``bootstrap``, or None when not set."""

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def target_dir(self) -> Path:
        """Cargo's target folder: ``$CARGO_TARGET_DIR`` when set, else ``<root>/target``."""
        env = os.environ.get("CARGO_TARGET_DIR")
        if env:
            path = Path(env)
            return path if path.is_absolute() else self.root / path
        return self.root / "target"

    def object_paths(self, profile: str = "release") -> list[Path]:
        """Where the objects of ``profile`` (``release`` or ``debug``/``dev``) are after a build."""
        folder = "debug" if profile in ("dev", "debug") else profile
        return [self.target_dir / bpf_target() / folder / name for name in self.objects]

    def source_files(self) -> Iterator[Path]:
        """Every file a build depends on: anything under a ``src/`` folder, manifests, lock files, pyaya.toml."""
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and (d == ".cargo" or not d.startswith("."))]
            here = Path(folder)
            in_src = "src" in here.relative_to(self.root).parts
            for file in files:
                if in_src or file in _BUILD_INPUTS:
                    yield here / file

    def is_stale(self, profile: str = "release") -> bool:
        """True when an object is missing or any build input is newer than the oldest object."""
        try:
            oldest = min(path.stat().st_mtime for path in self.object_paths(profile))
        except (FileNotFoundError, ValueError):  # an object is missing, or there are none
            return True
        for source in self.source_files():
            try:
                if source.stat().st_mtime > oldest:
                    return True
            except FileNotFoundError:  # removed while we walked
                continue
        return False


def find_project(path: str | os.PathLike[str] | None = None) -> Project:
    """Find the project holding ``path`` (default: the current folder), searching parent folders, and read it."""
    start = Path(path) if path is not None else Path.cwd()
    if not start.exists():
        raise ProjectError(f"{start} does not exist: pass the path of a pyaya project (a folder with {CONFIG_NAME})")
    start = start.resolve()
    if start.is_file():
        if start.name == CONFIG_NAME:
            return load_project(start)
        start = start.parent
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return load_project(candidate)
    raise ProjectError(
        f"no {CONFIG_NAME} in {start} or any parent folder: "
        "run `pyaya new NAME` to create a project, or pass the project's path"
    )


def _table(data: dict[str, Any], key: str, config: Path) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ProjectError(f"{config}: `{key}` must be a table ([{key}])")
    return value


def _string(table: dict[str, Any], section: str, key: str, config: Path, default: str | None) -> str | None:
    value = table.get(key, default)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ProjectError(f"{config}: [{section}] {key} must be a non-empty string, not {value!r}")
    return value


def load_project(config: str | os.PathLike[str]) -> Project:
    """Read one ``pyaya.toml``; every problem is a :class:`ProjectError` naming the file and the fix."""
    config = Path(config).resolve()
    try:
        with config.open("rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise ProjectError(f"{config} does not exist: run `pyaya new NAME` to create a project") from None
    except tomllib.TOMLDecodeError as error:
        raise ProjectError(f"{config} is not valid TOML: {error}") from None
    except OSError as error:
        raise ProjectError(f"cannot read {config}: {error.strerror or error}") from None

    project = _table(data, "project", config)
    build = _table(data, "build", config)
    run = _table(data, "run", config)

    name = _string(project, "project", "name", config, None)
    if name is None:
        raise ProjectError(f'{config}: [project] name is missing: add `name = "..."` under [project]')
    template = _string(project, "project", "template", config, None)
    package = _string(build, "build", "package", config, f"{name}-ebpf")
    assert package is not None  # has a default

    objects = build.get("objects", [name])
    if (
        not isinstance(objects, list)
        or not objects
        or not all(isinstance(item, str) and item and "/" not in item for item in objects)
    ):
        raise ProjectError(
            f"{config}: [build] objects must be a non-empty list of cargo bin target names, "
            f'e.g. objects = ["{name}"]; found {objects!r}'
        )

    toolchain = _string(build, "build", "toolchain", config, None)
    if toolchain is not None and toolchain not in KINDS:
        raise ProjectError(f"{config}: [build] toolchain = {toolchain!r} is not one of {', '.join(KINDS)}")

    main = _string(run, "run", "main", config, "main.py")
    assert main is not None  # has a default

    root = config.parent
    return Project(
        root=root,
        name=name,
        template=template,
        package=package,
        objects=tuple(objects),
        main=(root / main).resolve(),
        toolchain=toolchain,
    )
