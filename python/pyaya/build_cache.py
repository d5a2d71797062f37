"""One folder of compiled dependencies per toolchain, shared by every project: a new project's first build compiles
only its own crates.

Cargo 1.91 and newer split its output: ``build.build-dir`` (``CARGO_BUILD_BUILD_DIR``) holds the intermediates
(dependencies, fingerprints, build scripts) and the target folder only the final artifacts, so a project's objects
stay in its own ``target/`` (where ``pyaya.toml`` and every caller look for them) while aya-ebpf and the rest are
compiled once into ``<cache>/build/<bpf target>-<key>`` (:func:`pyaya._cache.cache_home`). The key is a short hash
of what cargo's own fingerprints leave out or what would make two users of the folder rebuild each other's work:
``rustc -vV``, bpf-linker's path and version (cargo never relinks when the linker changes), the RUSTFLAGS and
build-std flags. Nothing is shared when the user chose where cargo builds (``CARGO_BUILD_BUILD_DIR``,
``CARGO_TARGET_DIR``, or ``build-dir``/``target-dir`` in a ``.cargo/config.toml``), nor with an older cargo.

Cargo locks the build folder for the length of a build, so concurrent builds wait for each other (cargo says
"Blocking waiting for file lock on build directory"). One thing cargo gets wrong in a shared folder: it names a
path package's fingerprint by the package's name, version and path *relative to its workspace*, so two projects
made by ``pyaya new foo`` share ``foo-ebpf``'s fingerprint and the second would get the first one's object.
``pyaya-projects.json`` in the folder records which package folder last built each package name; before a
different folder builds a package of that name, its fingerprints, dep-info and outputs are deleted (the outputs
too: the first project's ``target/`` holds hard links to them, which the linker would otherwise overwrite in
place). The record is read and written under the folder's ``.pyaya-lock``; each package name also has a lock of
its own, held for the whole build, so that no other project of the same package names builds in between.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyaya._cache import cache_home
from pyaya.toolchain import Toolchain

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "MIN_CARGO",
    "BuildPlan",
    "LocalPackage",
    "SharedBuild",
    "cargo_version",
    "local_packages",
    "plan",
    "planned_packages",
    "toolchain_key",
    "workspace_root",
]

MIN_CARGO = (1, 91)
"""The first cargo with ``build.build-dir`` (``CARGO_BUILD_BUILD_DIR``)."""

RECORD_NAME = "pyaya-projects.json"
LOCK_NAME = ".pyaya-lock"
_PACKAGE_LOCKS = ".pyaya-locks"
_PROBE_TIMEOUT = 60.0
# Variables with which the user tells cargo where to build; any of them set: pyaya leaves the choice alone.
_USER_VARIABLES = ("CARGO_BUILD_BUILD_DIR", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR")
_USER_KEYS = ("build-dir", "target-dir")


@dataclass(frozen=True)
class BuildPlan:
    """Where one build keeps its intermediates."""

    build_dir: Path | None
    """The shared folder (``CARGO_BUILD_BUILD_DIR``), or None: cargo's default (the project's ``target/``) or the
    user's choice."""
    reason: str
    """One line saying why (what ``pyaya doctor`` shows)."""
    cause: str = "shared"
    """``shared``; ``user`` (the user chose where cargo builds); ``cargo`` (too old for a build folder)."""

    def apply(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` with the build folder set, when there is one."""
        if self.build_dir is not None:
            env["CARGO_BUILD_BUILD_DIR"] = str(self.build_dir)
        return env


def _probe(argv: list[str], env: Mapping[str, str]) -> subprocess.Popen[str] | None:
    try:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=dict(env)
        )
    except OSError:
        return None


def _answer(process: subprocess.Popen[str] | None) -> str:
    if process is None:
        return ""
    try:
        out, _ = process.communicate(timeout=_PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return ""
    return out if process.returncode == 0 else ""


def _version_of(text: str, program: str) -> tuple[int, int] | None:
    match = re.match(rf"\s*{program}\s+(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def cargo_version(toolchain: Toolchain, env: Mapping[str, str]) -> tuple[int, int] | None:
    """``cargo -V``'s major and minor version (None when cargo does not say)."""
    return _version_of(_answer(_probe([str(toolchain.cargo), "-V"], env)), "cargo")


def toolchain_key(
    toolchain: Toolchain, env: Mapping[str, str], *, rustc_info: str | None = None, linker_info: str | None = None
) -> str:
    """The short hash naming a toolchain's build folder: ``rustc -vV``, bpf-linker's path and version, the flags.

    ``rustc_info`` and ``linker_info``: those programs' answers when the caller already has them."""
    rustc = None if rustc_info is not None else _probe([str(toolchain.rustc), "-vV"], env)
    linker = None if linker_info is not None else _probe([str(toolchain.bpf_linker), "--version"], env)
    parts = [
        (rustc_info if rustc_info is not None else _answer(rustc)) or f"{toolchain.rustc} {toolchain.rustc_version}",
        os.path.realpath(toolchain.bpf_linker),
        (linker_info if linker_info is not None else _answer(linker)) or f"LLVM {toolchain.linker_llvm_major}",
        toolchain.kind,
        env.get("CARGO_ENCODED_RUSTFLAGS", ""),
        "build-std=core" if toolchain.needs_build_std else "",
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def _config_files(start: Path, env: Mapping[str, str]) -> Iterator[Path]:
    """Cargo's configuration files, as cargo finds them: from ``start`` up to ``/``, then ``$CARGO_HOME``."""
    for folder in (start, *start.parents):
        for name in ("config.toml", "config"):
            yield folder / ".cargo" / name
    home = env.get("CARGO_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cargo")
    for name in ("config.toml", "config"):
        yield Path(home) / name


def _user_choice(start: Path, env: Mapping[str, str]) -> str | None:
    """Where the user told cargo where to build, or None."""
    for variable in _USER_VARIABLES:
        if env.get(variable):
            return f"{variable} is set"
    for path in _config_files(start, env):
        try:
            with path.open("rb") as file:
                config = tomllib.load(file)
        except (OSError, tomllib.TOMLDecodeError):  # absent, or cargo will report it
            continue
        build = config.get("build")
        if isinstance(build, dict):
            for key in _USER_KEYS:
                if key in build:
                    return f"build.{key} is set in {path}"
    return None


_ANSWERS_CACHE = "build-tool-answers.json"


def _tool_answers(toolchain: Toolchain, env: Mapping[str, str]) -> tuple[str, str, str]:
    """``cargo -V``, ``rustc -vV`` and ``bpf-linker --version``: remembered (:mod:`pyaya._toolchain_cache`) while the
    toolchain's fingerprint and the three programs are unchanged, since every build asks (each program takes
    10-30 ms to answer); asked all at once otherwise."""
    from pyaya import _toolchain_cache  # noqa: PLC0415
    from pyaya._toolchain_paths import BPF_LINKER_DIRS, SYSTEM_RUSTC  # noqa: PLC0415

    tools = [str(toolchain.cargo), str(toolchain.rustc), str(toolchain.bpf_linker)]
    use_cache = env.get("PYAYA_TOOLCHAIN_CACHE", os.environ.get("PYAYA_TOOLCHAIN_CACHE", "1")) != "0"
    key = {
        "tools": tools,
        "fingerprint": _toolchain_cache.fingerprint(env, system_rustc=SYSTEM_RUSTC, linker_dirs=BPF_LINKER_DIRS),
    }
    if use_cache:
        known = _toolchain_cache.load(_ANSWERS_CACHE, key)
        if isinstance(known, list) and len(known) == len(tools) and all(isinstance(a, str) for a in known):
            return known[0], known[1], known[2]
    cargo = _probe([tools[0], "-V"], env)
    rustc = _probe([tools[1], "-vV"], env)
    linker = _probe([tools[2], "--version"], env)
    answers = (_answer(cargo), _answer(rustc), _answer(linker))
    if use_cache and all(answers):  # a program that did not answer is asked again next time
        files = [*tools, *(os.path.realpath(tool) for tool in tools)]
        _toolchain_cache.store(_ANSWERS_CACHE, key, list(answers), files=files)
    return answers


def plan(toolchain: Toolchain, start: Path, env: Mapping[str, str] | None = None) -> BuildPlan:
    """Whether a build from ``start`` (the project's folder) shares the toolchain's build folder, and why.

    ``env`` is the build's environment (:meth:`Toolchain.env`, whose RUSTFLAGS are part of the key).
    """
    env = dict(toolchain.env() if env is None else env)
    chosen = _user_choice(start, env)
    if chosen is not None:
        return BuildPlan(None, f"not shared: {chosen}, so cargo builds where the user said", "user")
    cargo_info, rustc_info, linker_info = _tool_answers(toolchain, env)
    version = _version_of(cargo_info, "cargo")
    if version is None or version < MIN_CARGO:
        said = f"cargo {version[0]}.{version[1]}" if version else f"{toolchain.cargo} (version unknown)"
        return BuildPlan(
            None,
            f"not shared: {said} is older than {MIN_CARGO[0]}.{MIN_CARGO[1]} (no build.build-dir), so each project "
            "compiles its dependencies into its own target/ (minutes for its first build)",
            "cargo",
        )
    key = toolchain_key(toolchain, env, rustc_info=rustc_info, linker_info=linker_info)
    folder = cache_home() / "build" / f"{toolchain.target}-{key}"
    return BuildPlan(
        folder, f"dependencies compiled once into {folder}, shared by every project (cargo {version[0]}.{version[1]})"
    )


# -- the projects' packages -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalPackage:
    """A path package of a project (a workspace member or a path dependency)."""

    name: str
    folder: Path
    crates: frozenset[str] = field(default_factory=frozenset)
    """Its targets' crate names (``-`` as ``_``): the prefixes of its files in ``deps/`` and ``incremental/``."""


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        with (folder / "Cargo.toml").open("rb") as file:
            return tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError):  # cargo will report it
        return None


def workspace_root(start: Path) -> Path:
    """The folder of the workspace holding ``start`` (the nearest manifest with ``[workspace]``), else ``start``."""
    for folder in (start, *start.parents):
        manifest = _read_manifest(folder) if (folder / "Cargo.toml").is_file() else None
        if manifest is not None and "workspace" in manifest:
            return folder
    return start


def _crate(name: str) -> str:
    return name.replace("-", "_")


def _crates_of(folder: Path, manifest: Mapping[str, Any], name: str) -> frozenset[str]:
    crates = {_crate(name)}
    lib = manifest.get("lib")
    if isinstance(lib, dict) and isinstance(lib.get("name"), str):
        crates.add(_crate(lib["name"]))
    for kind in ("bin", "example", "test", "bench"):
        for target in manifest.get(kind) or ():
            if isinstance(target, dict) and isinstance(target.get("name"), str):
                crates.add(_crate(target["name"]))
    crates.update(_crate(path.stem) for path in (folder / "src" / "bin").glob("*.rs"))
    return frozenset(crates)


def _path_dependencies(folder: Path, manifest: Mapping[str, Any]) -> Iterator[Path]:
    tables: list[Any] = [manifest.get(key) for key in ("dependencies", "dev-dependencies", "build-dependencies")]
    for platform in (manifest.get("target") or {}).values():
        if isinstance(platform, dict):
            tables += [platform.get(key) for key in ("dependencies", "dev-dependencies", "build-dependencies")]
    workspace = manifest.get("workspace")
    if isinstance(workspace, dict):
        tables.append(workspace.get("dependencies"))
    for table in tables:
        if not isinstance(table, dict):
            continue
        for spec in table.values():
            if isinstance(spec, dict) and isinstance(spec.get("path"), str):
                yield (folder / spec["path"]).resolve()


def local_packages(start: Path) -> dict[str, LocalPackage]:
    """The path packages of the workspace holding ``start``, by name: its members and their path dependencies
    (followed), as its manifests say. Unreadable manifests are skipped: cargo reports them."""
    root = workspace_root(start.resolve())
    pending = [root]
    workspace = (_read_manifest(root) or {}).get("workspace")
    if isinstance(workspace, dict):
        for pattern in workspace.get("members") or ():
            if isinstance(pattern, str):
                pending += [Path(p).resolve() for p in sorted(glob.glob(str(root / pattern)))]
    found: dict[str, LocalPackage] = {}
    seen: set[Path] = set()
    while pending:
        folder = pending.pop()
        if folder in seen:
            continue
        seen.add(folder)
        manifest = _read_manifest(folder)
        if manifest is None:
            continue
        pending += _path_dependencies(folder, manifest)
        package = manifest.get("package")
        if isinstance(package, dict) and isinstance(package.get("name"), str):
            name = package["name"]
            found[name] = LocalPackage(name, folder, _crates_of(folder, manifest, name))
    return found


def planned_packages(root: Path, package: str) -> int | None:
    """How many packages building ``package`` compiles, from the Cargo.lock of the workspace holding ``root``
    (cargo writes it before compiling): those its dependency lists reach, for every platform (a few more than cargo
    builds). None while there is no lock file."""
    try:
        with (workspace_root(root) / "Cargo.lock").open("rb") as file:
            lock = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError):
        return None
    entries = [e for e in lock.get("package") or () if isinstance(e, dict) and isinstance(e.get("name"), str)]
    by_name: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_name.setdefault(entry["name"], []).append(entry)
    pending = list(by_name.get(package, ()))
    seen: set[tuple[str, str]] = set()
    while pending:
        entry = pending.pop()
        key = (entry["name"], str(entry.get("version")))
        if key in seen:
            continue
        seen.add(key)
        for dependency in entry.get("dependencies") or ():
            name, _, rest = str(dependency).partition(" ")
            version = rest.split(" ")[0]
            pending += [e for e in by_name.get(name, ()) if not version or str(e.get("version")) == version]
    return len(seen) or None


# -- the shared folder ------------------------------------------------------------------------------------------

_HASHED = r"-[0-9a-f]{16}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def forget(build_dir: Path, package: LocalPackage) -> int:
    """Delete what cargo keeps of ``package`` in ``build_dir`` (every profile, host and target): fingerprints,
    build script folders, outputs and dep-info in ``deps/``, incremental state. Returns how many entries went."""
    units = re.compile(re.escape(package.name) + _HASHED + "$")
    crates = "|".join(re.escape(crate) for crate in sorted(package.crates | {_crate(package.name)}))
    outputs = re.compile(rf"(?:lib)?(?:{crates}){_HASHED}(?:\.[A-Za-z0-9]+)?$")
    incremental = re.compile(rf"(?:{crates})-[0-9a-z]+$")
    removed = 0
    profiles = [p for p in (*build_dir.glob("*/"), *build_dir.glob("*/*/")) if (p / ".fingerprint").is_dir()]
    for profile in profiles:
        for folder, pattern in (
            (".fingerprint", units),
            ("build", units),
            ("deps", outputs),
            ("incremental", incremental),
        ):
            try:
                entries = list((profile / folder).iterdir())
            except OSError:
                continue
            for entry in entries:
                if pattern.match(entry.name):
                    _remove(entry)
                    removed += 1
    return removed


@contextlib.contextmanager
def _flock(path: Path, wait_notice: Callable[[], None] | None = None) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if wait_notice is not None:
                wait_notice()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class SharedBuild:
    """One build in the shared folder: enter before cargo runs, :meth:`finish` with what cargo built.

    On entry: each of the project's package names locked (sorted, so two builds never wait on each other), then,
    under ``.pyaya-lock``, what another project's package of the same name left is forgotten and the record says
    these packages are now this project's. The package locks are released on exit.
    """

    def __init__(self, build_dir: Path, start: Path, notice: Callable[[str], None] | None = None) -> None:
        self.build_dir = build_dir
        self.packages = local_packages(start)
        self._notice = notice or (lambda text: None)
        self._stack = contextlib.ExitStack()
        self.forgotten: list[str] = []
        """Package names whose entries were deleted because another project built them last."""

    def __enter__(self) -> SharedBuild:
        self.build_dir.mkdir(parents=True, exist_ok=True)
        locks = self.build_dir / _PACKAGE_LOCKS
        locks.mkdir(exist_ok=True)
        try:
            for name in sorted(self.packages):
                self._stack.enter_context(_flock(locks / name, functools.partial(self._blocked, name)))
            with self._record() as record:
                for package in self.packages.values():
                    self._claim(record, package)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _blocked(self, name: str) -> None:
        self._notice(f"    Blocking waiting for file lock on package {name} (another build of a package so named)")

    @contextlib.contextmanager
    def _record(self) -> Iterator[dict[str, str]]:
        """``pyaya-projects.json`` (package name -> folder), read and written back under ``.pyaya-lock``."""
        path = self.build_dir / RECORD_NAME
        with _flock(self.build_dir / LOCK_NAME):
            try:
                loaded = json.loads(path.read_text())
            except (OSError, ValueError):  # first build, or a file cut short: forget nothing that is not there
                loaded = {}
            packages = loaded.get("packages") if isinstance(loaded, dict) else None
            if not isinstance(packages, dict):  # not pyaya's: start afresh (the worst case is one rebuild)
                packages = {}
            record = {k: v for k, v in packages.items() if isinstance(k, str) and isinstance(v, str)}
            before = dict(record)
            yield record
            if record != before:
                scratch = path.with_name(f".{RECORD_NAME}.{os.getpid()}")
                scratch.write_text(json.dumps({"packages": record}, indent=1, sort_keys=True) + "\n")
                os.replace(scratch, path)

    def _claim(self, record: dict[str, str], package: LocalPackage) -> bool:
        """Make ``package`` the owner of its name; True when another folder's entries had to go."""
        owner = record.get(package.name)
        record[package.name] = str(package.folder)
        if owner is None or owner == str(package.folder):
            return False
        forget(self.build_dir, package)
        self.forgotten.append(package.name)
        return True

    def finish(self, built: Mapping[str, tuple[LocalPackage, bool]]) -> list[str]:
        """Record the path packages cargo built (name -> package and whether every unit of it was fresh), for
        those the manifests did not show. Returns the names that were fresh but another folder's: their entries
        are gone now, and the build must run again."""
        stale: list[str] = []
        with self._record() as record:
            for name, (package, fresh) in built.items():
                if name in self.packages:
                    continue
                if self._claim(record, package) and fresh:
                    stale.append(name)
        return stale
