"""Finding a toolchain able to build BPF objects, and explaining what is missing when there is none.

Resolution order (design.md section 3), first that works wins:

1. ``nightly``: rustup's nightly with the ``rust-src`` component; builds with ``-Z build-std=core``.
2. ``prebuilt``: a rustc whose sysroot already holds ``lib/rustlib/bpfel-unknown-none`` (Debian's
   ``libstd-rust-web-dev-bpf`` / ``libstd-rust-dev-bpf``); plain ``--target``, no build-std.
3. ``bootstrap``: any rustc whose sysroot has ``rust-src``, with ``RUSTC_BOOTSTRAP=1`` and ``-Z build-std=core``.

Overrides: a kind (``--toolchain``, ``[build] toolchain`` in pyaya.toml), and explicit binaries
(``PYAYA_RUSTC`` / ``PYAYA_CARGO``). ``bpf-linker`` is searched on PATH, then in :data:`BPF_LINKER_DIRS`; its LLVM
must be at least as new as rustc's, or linking fails with "Invalid record".
"""

from __future__ import annotations

import contextlib
import mmap
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyaya import _toolchain_cache
from pyaya._toolchain_paths import BPF_LINKER_DIRS, KINDS, SYSTEM_RUSTC, bpf_target
from pyaya.errors import ToolchainError

__all__ = [
    "BPF_LINKER_DIRS",
    "KINDS",
    "BpfLinker",
    "Rustc",
    "Toolchain",
    "bpf_target",
    "bpf_target_arch",
    "find_bpf_linker",
    "linker_llvm_major",
    "probe_rustc",
    "resolve",
    "shared_probes",
]


_PROBE_TIMEOUT = 60.0

# Rust's `target_arch` for each `platform.machine()`; aya-ebpf needs `--cfg bpf_target_arch="<this>"`.
_RUST_ARCH = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "armv7l": "arm",
    "armv6l": "arm",
    "riscv64": "riscv64",
    "ppc64le": "powerpc64",
    "ppc64": "powerpc64",
    "s390x": "s390x",
    "mips": "mips",
    "mips64": "mips64",
    "loongarch64": "loongarch64",
}


def bpf_target_arch() -> str:
    """The host architecture the way Rust names it (aya-ebpf's ``bpf_target_arch`` cfg)."""
    machine = platform.machine().lower()
    return _RUST_ARCH.get(machine, machine)


@dataclass(frozen=True)
class Rustc:
    """What ``rustc -vV`` and ``rustc --print sysroot`` say about one rustc."""

    path: Path
    version: str
    """``release:`` line, e.g. ``1.96.0`` or ``1.97.0-nightly``."""
    llvm_version: str | None
    """``LLVM version:`` line, e.g. ``22.1.8``."""
    sysroot: Path

    @property
    def llvm_major(self) -> int | None:
        return _major(self.llvm_version)

    @property
    def is_nightly(self) -> bool:
        return _is_nightly(self.version)

    def has_target(self, target: str | None = None) -> bool:
        """Whether the sysroot ships a prebuilt ``core`` for the BPF target."""
        return (self.sysroot / "lib" / "rustlib" / (target or bpf_target())).is_dir()

    @property
    def has_rust_src(self) -> bool:
        return (self.sysroot / "lib" / "rustlib" / "src" / "rust" / "library").is_dir()


@dataclass(frozen=True)
class BpfLinker:
    path: Path
    llvm_major: int | None
    """None when the version could not be determined (allowed, but reported)."""


@dataclass(frozen=True)
class Toolchain:
    """A toolchain able to build BPF objects, and how to run a build with it."""

    kind: str
    """``nightly``, ``prebuilt`` or ``bootstrap``."""
    cargo: Path
    rustc: Path
    rustc_version: str
    llvm_major: int | None
    """LLVM major version of rustc."""
    needs_build_std: bool
    bpf_linker: Path
    linker_llvm_major: int | None
    sysroot: Path | None = None
    rustup_toolchain: str | None = None
    """``nightly`` for the rustup kind, None otherwise."""
    notes: tuple[str, ...] = field(default=())
    """Warnings worth showing (e.g. bpf-linker's LLVM version is unknown)."""

    @property
    def target(self) -> str:
        return bpf_target()

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment for cargo: aya-build's RUSTFLAGS, the chosen rustc, bpf-linker on PATH."""
        env = dict(os.environ if base is None else base)
        flags = [f'--cfg=bpf_target_arch="{bpf_target_arch()}"', "-Cdebuginfo=2", "-Clink-arg=--btf"]
        env["CARGO_ENCODED_RUSTFLAGS"] = "\x1f".join(flags)
        env.pop("RUSTFLAGS", None)
        env["RUSTC"] = str(self.rustc)
        env.pop("RUSTC_WORKSPACE_WRAPPER", None)
        if self.rustup_toolchain:
            env["RUSTUP_TOOLCHAIN"] = self.rustup_toolchain
        else:
            env.pop("RUSTUP_TOOLCHAIN", None)
        if self.kind == "bootstrap" or not _is_nightly(self.rustc_version):
            # aya-ebpf itself uses nightly features on the BPF target (`#![feature(asm_experimental_arch)]`), so a
            # stable rustc (Debian's prebuilt one included) needs them unlocked.
            env["RUSTC_BOOTSTRAP"] = "1"
        else:
            env.pop("RUSTC_BOOTSTRAP", None)
        path = env.get("PATH", os.defpath)
        env["PATH"] = os.pathsep.join([str(self.bpf_linker.parent), str(self.rustc.parent), path])
        return env

    def build_argv(
        self,
        package: str,
        *,
        release: bool = True,
        message_format: str = "json",
        extra: Sequence[str] = (),
    ) -> list[str]:
        """``cargo build`` for one package, the way aya-build 0.2 runs it."""
        argv = [str(self.cargo), "build", "--target", self.target, "-p", package, f"--message-format={message_format}"]
        if release:
            argv.append("--release")
        if self.needs_build_std:
            argv += ["-Z", "build-std=core"]
        argv += list(extra)
        return argv

    def build_command(
        self,
        package: str,
        *,
        release: bool = True,
        message_format: str = "json",
        base_env: Mapping[str, str] | None = None,
    ) -> tuple[list[str], dict[str, str]]:
        """The argv and env of a build: everything ``subprocess.run(argv, env=env)`` needs."""
        return self.build_argv(package, release=release, message_format=message_format), self.env(base_env)

    def describe(self) -> str:
        llvm = f"LLVM {self.llvm_major}" if self.llvm_major is not None else "LLVM unknown"
        linker_llvm = f"LLVM {self.linker_llvm_major}" if self.linker_llvm_major is not None else "LLVM unknown"
        build_std = ", -Z build-std=core" if self.needs_build_std else ""
        return (
            f"{self.kind}: rustc {self.rustc_version} ({llvm}) at {self.rustc}, cargo at {self.cargo}{build_std}; "
            f"bpf-linker at {self.bpf_linker} ({linker_llvm})"
        )


# --------------------------------------------------------------------------------------------------------------------
# probing


def _is_nightly(version: str) -> bool:
    return "nightly" in version or "-dev" in version


def _major(version: str | None) -> int | None:
    if not version:
        return None
    match = re.match(r"\s*(\d+)", version)
    return int(match.group(1)) if match else None


_ProbeKey = tuple[tuple[str, ...], tuple[tuple[str, str], ...] | None]
#: The probes of the open :func:`shared_probes` block (a list of at most one), each started (a process) or answered
#: (its stdout, None if it failed). Empty outside such a block: each probe then runs when asked.
_open_blocks: list[dict[_ProbeKey, subprocess.Popen[str] | str | None]] = []


def _shared() -> dict[_ProbeKey, subprocess.Popen[str] | str | None] | None:
    return _open_blocks[0] if _open_blocks else None


@contextlib.contextmanager
def shared_probes() -> Iterator[None]:
    """Within this block, each probe command (``rustc -vV``, ``ldd bpf-linker``...) runs once and its answer is
    shared (``pyaya doctor`` resolves the toolchain for two checks), and :func:`resolve` starts the probes it will
    likely need all at once, so that they run in parallel rather than one after the other (each rustup proxy call
    costs tens of ms). Probes started and never asked for are killed when the block ends. Not thread-safe: one
    thread probes at a time."""
    if _open_blocks:  # nested: the outer block owns the probes
        yield
        return
    _open_blocks.append({})
    try:
        yield
    finally:
        leftovers = _open_blocks.pop()
        for value in leftovers.values():
            if isinstance(value, subprocess.Popen):
                value.kill()
                value.wait()


def _key(argv: Sequence[str], env: Mapping[str, str] | None) -> _ProbeKey:
    return tuple(argv), None if env is None else tuple(sorted(env.items()))


def _start(argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
    """Start a probe in the open :func:`shared_probes` block, if it is not started already."""
    probes = _shared()
    if probes is None or _key(argv, env) in probes:
        return
    try:
        process: subprocess.Popen[str] | None = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=None if env is None else dict(env),
        )
    except OSError:
        process = None
    probes[_key(argv, env)] = process


def _answer(process: subprocess.Popen[str]) -> str | None:
    try:
        out, _ = process.communicate(timeout=_PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None
    return out if process.returncode == 0 else None


def _run(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str | None:
    """stdout of a probe, or None when it cannot run or fails."""
    probes = _shared()
    if probes is not None:
        _start(argv, env)
        key = _key(argv, env)
        value = probes[key]
        if isinstance(value, subprocess.Popen):
            value = probes[key] = _answer(value)
        return value
    try:
        result = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT,
            check=False,
            env=None if env is None else dict(env),
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def _prefetch(chosen: str, env: Mapping[str, str]) -> None:
    """Start at once the probes resolving ``chosen`` is likely to run (see :func:`shared_probes`): rustup's
    nightly, each rustc candidate, bpf-linker's ``ldd``. Only their order of asking stays sequential."""
    if env.get("PYAYA_RUSTC") or env.get("PYAYA_CARGO"):
        return
    probe_env = _probe_env()
    rustup = _rustup() if chosen in ("auto", "nightly") else None
    if rustup is not None:
        _start([rustup, "run", "nightly", "rustc", "--print", "sysroot"], probe_env)
    if chosen != "nightly":
        for candidate in _rustc_candidates():
            _start([candidate, "-vV"], probe_env)
            _start([candidate, "--print", "sysroot"], probe_env)
    linker = find_bpf_linker(env)
    ldd = shutil.which("ldd")
    if linker is not None and ldd is not None:
        _start([ldd, str(linker)])


def _probe_env() -> dict[str, str]:
    env = dict(os.environ)
    # Ask each binary about itself, not about whatever toolchain an override selects.
    for key in ("RUSTUP_TOOLCHAIN", "RUSTC", "RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER"):
        env.pop(key, None)
    env["RUSTUP_AUTO_INSTALL"] = "0"
    return env


#: The sysroots the running :func:`resolve` looked into (a list of at most one list, as for the probes): the
#: answer it remembers is valid while none of their ``lib/rustlib`` folders changes.
_sysroots_seen: list[list[Path]] = []


def _saw_sysroot(sysroot: Path) -> None:
    if _sysroots_seen:
        _sysroots_seen[0].append(sysroot)


def probe_rustc(path: str | os.PathLike[str]) -> Rustc | None:
    """Ask one rustc for its version, LLVM version and sysroot; None when it does not answer."""
    env = _probe_env()
    _start([str(path), "--print", "sysroot"], env)  # in a shared_probes() block: both at once
    info = _run([str(path), "-vV"], env)
    sysroot = _run([str(path), "--print", "sysroot"], env)
    if info is None or sysroot is None or not sysroot.strip():
        return None
    _saw_sysroot(Path(sysroot.strip()))
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    words = info.split()
    version = fields.get("release", "").strip() or (words[1] if len(words) > 1 else "unknown")
    llvm = fields.get("LLVM version", "").strip() or None
    return Rustc(path=Path(path), version=version, llvm_version=llvm, sysroot=Path(sysroot.strip()))


def _real_binary(rustc: Rustc, name: str, fallback_dir: Path) -> Path | None:
    """``name`` next to the real rustc (in its sysroot's bin), else in ``fallback_dir`` (the rustup proxy case)."""
    for folder in (rustc.sysroot / "bin", fallback_dir):
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _rustup() -> str | None:
    return shutil.which("rustup") or _existing(Path("~/.cargo/bin/rustup").expanduser())


def _existing(path: Path) -> str | None:
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def _rustc_candidates() -> list[str]:
    """PATH's rustc, then the distribution's, without duplicates (by resolved path)."""
    seen: set[str] = set()
    result: list[str] = []
    for candidate in (shutil.which("rustc"), _existing(Path(SYSTEM_RUSTC))):
        if candidate is None:
            continue
        key = os.path.realpath(candidate)
        if key not in seen:
            seen.add(key)
            result.append(candidate)
    return result


@dataclass
class _Attempt:
    """What resolution tried, for the error message when nothing worked."""

    lines: list[str] = field(default_factory=list)

    def note(self, kind: str, reason: str) -> None:
        self.lines.append(f"  - {kind}: {reason}")


@dataclass(frozen=True)
class _Rust:
    kind: str
    rustc: Rustc
    cargo: Path
    rustup_toolchain: str | None = None

    @property
    def needs_build_std(self) -> bool:
        return self.kind in ("nightly", "bootstrap")


def _try_nightly(attempt: _Attempt) -> _Rust | None:
    rustup = _rustup()
    if rustup is None:
        attempt.note("nightly", "rustup is not installed")
        return None
    sysroot = _run([rustup, "run", "nightly", "rustc", "--print", "sysroot"], _probe_env())
    if sysroot is None or not sysroot.strip():
        attempt.note("nightly", "rustup has no nightly toolchain (fix: rustup toolchain install nightly -c rust-src)")
        return None
    nightly_sysroot = Path(sysroot.strip())
    _saw_sysroot(nightly_sysroot)
    if not (nightly_sysroot / "lib" / "rustlib" / "src" / "rust" / "library").is_dir():
        # Rustc.has_rust_src, asked of the sysroot rustup named: no need to run the nightly rustc to know.
        attempt.note(
            "nightly", "rustup's nightly has no rust-src (fix: rustup component add rust-src --toolchain nightly)"
        )
        return None
    rustc_path = nightly_sysroot / "bin" / "rustc"
    rustc = probe_rustc(rustc_path)
    if rustc is None:
        attempt.note("nightly", f"{rustc_path} does not run")
        return None
    if not rustc.has_rust_src:
        attempt.note(
            "nightly", "rustup's nightly has no rust-src (fix: rustup component add rust-src --toolchain nightly)"
        )
        return None
    cargo = _real_binary(rustc, "cargo", rustc_path.parent)
    if cargo is None:
        attempt.note("nightly", f"no cargo in {rustc.sysroot / 'bin'}")
        return None
    return _Rust("nightly", rustc, cargo, rustup_toolchain="nightly")


def _try_local(kind: str, attempt: _Attempt, candidates: Sequence[str] | None = None) -> _Rust | None:
    """``prebuilt`` or ``bootstrap`` from the rustc candidates."""
    target = bpf_target()
    tried = list(candidates) if candidates is not None else _rustc_candidates()
    if not tried:
        attempt.note(kind, "no rustc on PATH or at /usr/bin/rustc")
        return None
    for candidate in tried:
        rustc = probe_rustc(candidate)
        if rustc is None:
            attempt.note(kind, f"{candidate} does not run")
            continue
        if kind == "prebuilt" and not rustc.has_target(target):
            attempt.note(
                kind, f"{candidate} ({rustc.version}): its sysroot {rustc.sysroot} has no lib/rustlib/{target}"
            )
            continue
        if kind == "bootstrap" and not rustc.has_rust_src:
            attempt.note(kind, f"{candidate} ({rustc.version}): its sysroot {rustc.sysroot} has no rust-src")
            continue
        real_rustc = _real_binary(rustc, "rustc", Path(candidate).parent) or Path(candidate)
        cargo = _real_binary(rustc, "cargo", Path(candidate).parent)
        if cargo is None:
            attempt.note(kind, f"{candidate}: no cargo beside it")
            continue
        if real_rustc != Path(candidate):
            rustc = Rustc(real_rustc, rustc.version, rustc.llvm_version, rustc.sysroot)
        return _Rust(kind, rustc, cargo)
    return None


def _from_override(kind: str, rustc_env: str | None, cargo_env: str | None) -> _Rust:
    """PYAYA_RUSTC / PYAYA_CARGO: use these binaries; the kind follows from what the sysroot holds."""
    if rustc_env:
        rustc_path = rustc_env
    else:
        assert cargo_env is not None
        beside = Path(cargo_env).parent / "rustc"
        rustc_path = str(beside) if beside.exists() else (shutil.which("rustc") or "rustc")
    rustc = probe_rustc(rustc_path)
    if rustc is None:
        raise ToolchainError(f"PYAYA_RUSTC={rustc_path} does not run (`{rustc_path} -vV` failed): fix or unset it")
    if cargo_env:
        cargo = Path(cargo_env)
        if not (cargo.is_file() and os.access(cargo, os.X_OK)):
            raise ToolchainError(f"PYAYA_CARGO={cargo_env} is not an executable file: fix or unset it")
    else:
        found = _real_binary(rustc, "cargo", Path(rustc_path).parent)
        if found is None:
            raise ToolchainError(f"no cargo beside PYAYA_RUSTC={rustc_path}: set PYAYA_CARGO as well")
        cargo = found
    target = bpf_target()
    if kind == "auto":
        if rustc.is_nightly and rustc.has_rust_src:
            kind = "nightly"
        elif rustc.has_target(target):
            kind = "prebuilt"
        elif rustc.has_rust_src:
            kind = "bootstrap"
        else:
            raise ToolchainError(
                f"PYAYA_RUSTC={rustc_path} ({rustc.version}) cannot build {target}: its sysroot {rustc.sysroot} has "
                f"neither lib/rustlib/{target} nor rust-src"
            )
    elif kind == "prebuilt" and not rustc.has_target(target):
        raise ToolchainError(f"{rustc_path}: its sysroot {rustc.sysroot} has no lib/rustlib/{target}")
    elif kind in ("nightly", "bootstrap") and not rustc.has_rust_src:
        raise ToolchainError(f"{rustc_path}: its sysroot {rustc.sysroot} has no rust-src for -Z build-std")
    return _Rust(kind, rustc, cargo)


def _find_rust(kind: str, env: Mapping[str, str]) -> _Rust:
    rustc_env = env.get("PYAYA_RUSTC") or None
    cargo_env = env.get("PYAYA_CARGO") or None
    if rustc_env or cargo_env:
        return _from_override(kind, rustc_env, cargo_env)
    attempt = _Attempt()
    order = ("nightly", "prebuilt", "bootstrap") if kind == "auto" else (kind,)
    for each in order:
        found = _try_nightly(attempt) if each == "nightly" else _try_local(each, attempt)
        if found is not None:
            return found
    target = bpf_target()
    what = "no toolchain can build" if kind == "auto" else f"the {kind} toolchain cannot build"
    raise ToolchainError(
        f"{what} {target} objects:\n" + "\n".join(attempt.lines) + "\nfix, one of:\n"
        "  - rustup toolchain install nightly --component rust-src\n"
        "  - Debian/Ubuntu: apt-get install rustc-web libstd-rust-web-dev-bpf (or libstd-rust-dev-bpf)\n"
        "  - in a pyaya checkout: make setup"
    )


# --------------------------------------------------------------------------------------------------------------------
# bpf-linker

_LDD_LLVM = re.compile(r"libLLVM(?:-(\d+)|\.so\.(\d+))")
_BYTES_PATTERNS = (
    re.compile(rb"libLLVM(?:-(\d+)|\.so\.(\d+))"),
    re.compile(rb"llvm-sys-(\d+)\."),
    re.compile(rb"LLVM (\d+)\.\d+"),
)


def find_bpf_linker(env: Mapping[str, str] | None = None) -> Path | None:
    """bpf-linker on PATH, then in :data:`BPF_LINKER_DIRS`."""
    path = (os.environ if env is None else env).get("PATH")
    found = shutil.which("bpf-linker", path=path)
    if found:
        return Path(found)
    for folder in BPF_LINKER_DIRS:
        expanded = os.path.expandvars(os.path.expanduser(folder))
        if "$" in expanded:  # a variable that is not set
            continue
        candidate = Path(expanded) / "bpf-linker"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _llvm_sys_major(value: int) -> int:
    # llvm-sys numbers its releases LLVM major * 10 + minor: llvm-sys 191 is LLVM 19.1.
    return value // 10 if value >= 100 else value


def linker_llvm_major(path: str | os.PathLike[str]) -> int | None:
    """The LLVM major version bpf-linker was built with: from ``ldd`` (dynamic) or the binary's bytes (static)."""
    ldd = shutil.which("ldd")
    if ldd is not None:
        out = _run([ldd, str(path)])
        if out:
            match = _LDD_LLVM.search(out)
            if match:
                return int(match.group(1) or match.group(2))
    try:
        with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            for index, pattern in enumerate(_BYTES_PATTERNS):
                hit = pattern.search(data)
                if hit is None:
                    continue
                groups = [g for g in hit.groups() if g]
                value = int(groups[0])
                return _llvm_sys_major(value) if index == 1 else value
    except (OSError, ValueError):
        return None
    return None


def _linker_install_hint(rust: _Rust) -> str:
    llvm = rust.rustc.llvm_major
    from_rustup = rust.rustup_toolchain is not None or ".rustup" in str(rust.rustc.sysroot)
    lines = []
    if from_rustup:
        lines.append("  cargo install bpf-linker")
    else:
        n = str(llvm) if llvm is not None else "N"
        lines.append(
            f"  apt-get install llvm-{n}-dev\n"
            f"  LLVM_PREFIX=/usr/lib/llvm-{n} cargo install bpf-linker --no-default-features --features llvm-{n}"
        )
    lines.append("  (in a pyaya checkout, `make setup` does this)")
    return "\n".join(lines)


def _check_linker(rust: _Rust, env: Mapping[str, str]) -> BpfLinker:
    path = find_bpf_linker(env)
    if path is None:
        places = ", ".join(("PATH", *(d for d in BPF_LINKER_DIRS if "$" not in d)))
        raise ToolchainError(
            f"bpf-linker not found (searched {places}); rustc needs it to link BPF objects. Install it:\n"
            + _linker_install_hint(rust)
        )
    major = linker_llvm_major(path)
    rust_major = rust.rustc.llvm_major
    if major is not None and rust_major is not None and major < rust_major:
        raise ToolchainError(
            f"bpf-linker at {path} uses LLVM {major} but rustc {rust.rustc.version} ({rust.rustc.path}) emits LLVM "
            f'{rust_major} bitcode: linking would fail with "Invalid record" (old LLVM cannot read newer bitcode). '
            f"Rebuild bpf-linker against LLVM {rust_major} or newer:\n" + _linker_install_hint(rust)
        )
    return BpfLinker(path, major)


def resolve(
    kind: str | None = None,
    *,
    project_kind: str | None = None,
    env: Mapping[str, str] | None = None,
    cached: bool = True,
) -> Toolchain:
    """Find the toolchain to build with.

    ``kind`` (from ``--toolchain``) wins over ``project_kind`` (``[build] toolchain``), then ``auto``.
    ``PYAYA_RUSTC``/``PYAYA_CARGO`` in ``env`` pick the binaries. Raises :class:`ToolchainError` saying what is
    missing and how to fix it.

    A toolchain found is remembered (:mod:`pyaya._toolchain_cache`) until a file or variable the search depends on
    changes; ``cached=False`` or ``PYAYA_TOOLCHAIN_CACHE=0`` probes anyway. Failures are never remembered.
    """
    env = os.environ if env is None else env
    chosen = kind or project_kind or env.get("PYAYA_TOOLCHAIN") or "auto"
    if chosen not in KINDS:
        raise ToolchainError(f"unknown toolchain kind {chosen!r}: use one of {', '.join(KINDS)}")
    use_cache = cached and env.get("PYAYA_TOOLCHAIN_CACHE", "1") != "0"
    key = {
        "kind": chosen,
        "target": bpf_target(),
        "fingerprint": _toolchain_cache.fingerprint(env, system_rustc=SYSTEM_RUSTC, linker_dirs=BPF_LINKER_DIRS),
    }
    if use_cache:
        remembered = _toolchain_from_json(_toolchain_cache.load(_CACHE_NAME, key))
        if remembered is not None:
            return remembered
    _sysroots_seen.append([])
    try:
        found = _resolve(chosen, env)
    finally:
        sysroots = _sysroots_seen.pop()
    if use_cache:
        files = _answer_files(found) + [root / "lib" / "rustlib" / part for root in sysroots for part in ("", "src")]
        _toolchain_cache.store(_CACHE_NAME, key, _toolchain_to_json(found), files=files)
    return found


#: In pyaya's cache folder: the toolchains :func:`resolve` found, with what each answer depends on.
_CACHE_NAME = "toolchain.json"


def _answer_files(found: Toolchain) -> list[Path]:
    """The files a resolved toolchain is made of: when one changes, the answer may be wrong."""
    files = [found.rustc, found.cargo, found.bpf_linker]
    if found.sysroot is not None:
        rustlib = found.sysroot / "lib" / "rustlib"
        files += [found.sysroot / "bin", rustlib, rustlib / found.target, rustlib / "src"]
    return files


def _toolchain_to_json(found: Toolchain) -> dict[str, object]:
    return {
        "kind": found.kind,
        "cargo": str(found.cargo),
        "rustc": str(found.rustc),
        "rustc_version": found.rustc_version,
        "llvm_major": found.llvm_major,
        "needs_build_std": found.needs_build_std,
        "bpf_linker": str(found.bpf_linker),
        "linker_llvm_major": found.linker_llvm_major,
        "sysroot": None if found.sysroot is None else str(found.sysroot),
        "rustup_toolchain": found.rustup_toolchain,
        "notes": list(found.notes),
    }


def _optional_int(value: object) -> int | None:
    if value is not None and not isinstance(value, int):
        raise TypeError(value)
    return value


def _toolchain_from_json(value: object) -> Toolchain | None:
    """A cached answer back, or None when the entry is not one this version wrote."""
    if not isinstance(value, dict):
        return None
    try:
        sysroot, rustup_toolchain = value["sysroot"], value["rustup_toolchain"]
        return Toolchain(
            kind=str(value["kind"]),
            cargo=Path(value["cargo"]),
            rustc=Path(value["rustc"]),
            rustc_version=str(value["rustc_version"]),
            llvm_major=_optional_int(value["llvm_major"]),
            needs_build_std=bool(value["needs_build_std"]),
            bpf_linker=Path(value["bpf_linker"]),
            linker_llvm_major=_optional_int(value["linker_llvm_major"]),
            sysroot=None if sysroot is None else Path(sysroot),
            rustup_toolchain=None if rustup_toolchain is None else str(rustup_toolchain),
            notes=tuple(str(note) for note in value["notes"]),
        )
    except (KeyError, TypeError):
        return None


def _resolve(chosen: str, env: Mapping[str, str]) -> Toolchain:
    with shared_probes():
        _prefetch(chosen, env)
        rust = _find_rust(chosen, env)
        linker = _check_linker(rust, env)
    notes: list[str] = []
    if linker.llvm_major is None:
        notes.append(
            f'could not tell which LLVM {linker.path} uses; if linking fails with "Invalid record", '
            "rebuild it against rustc's LLVM"
        )
    return Toolchain(
        kind=rust.kind,
        cargo=rust.cargo,
        rustc=rust.rustc.path,
        rustc_version=rust.rustc.version,
        llvm_major=rust.rustc.llvm_major,
        needs_build_std=rust.needs_build_std,
        bpf_linker=linker.path,
        linker_llvm_major=linker.llvm_major,
        sysroot=rust.rustc.sysroot,
        rustup_toolchain=rust.rustup_toolchain,
        notes=tuple(notes),
    )
