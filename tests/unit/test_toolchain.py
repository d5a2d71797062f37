"""Toolchain resolution against fake toolchains (shell scripts with canned answers): no real rustc involved."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _fake_rust import fake_linker, fake_rustc, fake_rustup, isolated_path
from pyaya import toolchain
from pyaya.errors import ToolchainError


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty machine: no rustc, rustup or bpf-linker anywhere pyaya looks."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PYAYA_CACHE", raising=False)
    monkeypatch.setattr(toolchain, "SYSTEM_RUSTC", str(tmp_path / "usr" / "bin" / "rustc"))
    monkeypatch.setattr(toolchain, "BPF_LINKER_DIRS", (str(tmp_path / "linker-install" / "bin"),))
    for var in ("PYAYA_RUSTC", "PYAYA_CARGO", "PYAYA_TOOLCHAIN", "RUSTUP_TOOLCHAIN", "RUSTC", "RUSTC_BOOTSTRAP"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", isolated_path(tmp_path / "empty"))
    return tmp_path


def set_path(monkeypatch: pytest.MonkeyPatch, *dirs: Path) -> None:
    monkeypatch.setenv("PATH", isolated_path(*dirs))


def rustup_with_nightly(world: Path, *, rust_src: bool) -> Path:
    """~/.cargo/bin with rustup (nightly at a fake sysroot) and a stable proxy rustc without BPF support."""
    cargo_bin = world / "home" / ".cargo" / "bin"
    nightly = world / "rustup" / "nightly"
    fake_rustc(nightly / "bin", nightly, release="1.97.0-nightly", llvm="22.1.4", rust_src=rust_src)
    fake_rustup(cargo_bin, nightly)
    fake_rustc(cargo_bin, world / "rustup" / "stable", release="1.95.0", llvm="20.1.0")
    return cargo_bin


def debian_rustc(world: Path, *, llvm: str = "22.1.8", bpf_target: bool = True, rust_src: bool = False) -> Path:
    """A distribution rustc at the (patched) SYSTEM_RUSTC, sysroot <world>/usr."""
    return fake_rustc(
        world / "usr" / "bin", world / "usr", release="1.96.0", llvm=llvm, bpf_target=bpf_target, rust_src=rust_src
    )


def test_nightly_with_rust_src_wins(world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cargo_bin = rustup_with_nightly(world, rust_src=True)
    debian_rustc(world)
    fake_linker(cargo_bin, 22)
    set_path(monkeypatch, cargo_bin)
    tc = toolchain.resolve()
    assert tc.kind == "nightly"
    assert tc.needs_build_std
    assert tc.rustc == world / "rustup" / "nightly" / "bin" / "rustc"
    assert tc.cargo == world / "rustup" / "nightly" / "bin" / "cargo"
    assert tc.rustup_toolchain == "nightly"
    argv, env = tc.build_command("x-ebpf")
    assert argv[-2:] == ["-Z", "build-std=core"]
    assert env["RUSTUP_TOOLCHAIN"] == "nightly"
    assert "RUSTC_BOOTSTRAP" not in env


def test_prebuilt_when_nightly_lacks_rust_src(world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine's situation: rustup's proxies shadow Debian's rustc, whose sysroot has the BPF target."""
    cargo_bin = rustup_with_nightly(world, rust_src=False)
    debian = debian_rustc(world)
    linker_dir = world / "linker-install" / "bin"
    fake_linker(linker_dir, 22)
    set_path(monkeypatch, cargo_bin)
    tc = toolchain.resolve()
    assert tc.kind == "prebuilt"
    assert tc.rustc == debian
    assert tc.cargo == debian.parent / "cargo"
    assert not tc.needs_build_std
    assert tc.bpf_linker == linker_dir / "bpf-linker"
    assert (tc.llvm_major, tc.linker_llvm_major) == (22, 22)
    argv, env = tc.build_command("x-ebpf", release=True)
    assert argv[:2] == [str(debian.parent / "cargo"), "build"]
    assert "--release" in argv
    assert "build-std=core" not in argv
    assert env["RUSTC"] == str(debian)
    assert "RUSTUP_TOOLCHAIN" not in env
    assert env["PATH"].split(":")[0] == str(linker_dir)
    flags = env["CARGO_ENCODED_RUSTFLAGS"].split("\x1f")
    assert flags[0].startswith('--cfg=bpf_target_arch="')
    assert flags[1:] == ["-Cdebuginfo=2", "-Clink-arg=--btf"]


def test_bootstrap_as_last_resort(world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = world / "opt" / "bin"
    fake_rustc(bin_dir, world / "opt", release="1.90.0", rust_src=True)
    fake_linker(bin_dir, 22)
    set_path(monkeypatch, bin_dir)
    tc = toolchain.resolve()
    assert tc.kind == "bootstrap"
    argv, env = tc.build_command("x-ebpf", release=False)
    assert "--release" not in argv
    assert argv[-2:] == ["-Z", "build-std=core"]
    assert env["RUSTC_BOOTSTRAP"] == "1"


def test_nothing_works_lists_what_was_tried(world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cargo_bin = rustup_with_nightly(world, rust_src=False)
    set_path(monkeypatch, cargo_bin)
    with pytest.raises(ToolchainError) as info:
        toolchain.resolve()
    message = str(info.value)
    assert "rustup component add rust-src --toolchain nightly" in message
    assert "has no lib/rustlib/bpfel-unknown-none" in message or "bpfeb" in message
    assert "has no rust-src" in message


def test_kind_override_wins(world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cargo_bin = rustup_with_nightly(world, rust_src=True)
    debian_rustc(world)
    fake_linker(cargo_bin, 22)
    set_path(monkeypatch, cargo_bin)
    assert toolchain.resolve("prebuilt").kind == "prebuilt"
    assert toolchain.resolve(project_kind="prebuilt").kind == "prebuilt"
    assert toolchain.resolve("nightly", project_kind="prebuilt").kind == "nightly"  # the flag beats pyaya.toml
    with pytest.raises(ToolchainError, match="bootstrap toolchain cannot build"):
        toolchain.resolve("bootstrap")
    with pytest.raises(ToolchainError, match="unknown toolchain kind"):
        toolchain.resolve("stable")


def test_env_binaries_override(world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cargo_bin = rustup_with_nightly(world, rust_src=True)
    fake_linker(cargo_bin, 22)
    custom = fake_rustc(world / "custom" / "bin", world / "custom", release="1.96.0", bpf_target=True)
    set_path(monkeypatch, cargo_bin)
    monkeypatch.setenv("PYAYA_RUSTC", str(custom))
    tc = toolchain.resolve()
    assert (tc.kind, tc.rustc, tc.cargo) == ("prebuilt", custom, custom.parent / "cargo")
    monkeypatch.setenv("PYAYA_CARGO", str(world / "nope" / "cargo"))
    with pytest.raises(ToolchainError, match="PYAYA_CARGO"):
        toolchain.resolve()


def test_linker_older_than_rustc_is_an_error(world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    debian_rustc(world, llvm="22.1.8")
    fake_linker(world / "linker-install" / "bin", 21)
    with pytest.raises(ToolchainError) as info:
        toolchain.resolve()
    message = str(info.value)
    assert "LLVM 21" in message
    assert "LLVM 22" in message
    assert "Invalid record" in message
    assert "cargo install bpf-linker" in message


def test_linker_newer_or_unknown_is_fine(world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    debian_rustc(world, llvm="21.1.0")
    linker_dir = world / "linker-install" / "bin"
    fake_linker(linker_dir, 22)
    assert toolchain.resolve().linker_llvm_major == 22
    fake_linker(linker_dir, None)
    tc = toolchain.resolve()
    assert tc.linker_llvm_major is None
    assert any("could not tell which LLVM" in note for note in tc.notes)


def test_missing_linker_debian_gives_apt_command(world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    debian_rustc(world, llvm="22.1.8")
    with pytest.raises(ToolchainError) as info:
        toolchain.resolve()
    message = str(info.value)
    assert message.startswith("bpf-linker not found")
    assert "apt-get install llvm-22-dev" in message
    assert "LLVM_PREFIX=/usr/lib/llvm-22 cargo install bpf-linker --no-default-features --features llvm-22" in message
    assert "make setup" in message


def test_missing_linker_rustup_gives_cargo_install(world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cargo_bin = rustup_with_nightly(world, rust_src=True)
    set_path(monkeypatch, cargo_bin)
    with pytest.raises(ToolchainError, match=r"cargo install bpf-linker\n"):
        toolchain.resolve()


@pytest.mark.parametrize(
    ("content", "major"),
    [
        (b"\x7fELF...libLLVM.so.22.1\x00...", 22),
        (b"\x7fELF...libLLVM-17.so\x00", 17),
        (b"/registry/src/llvm-sys-191.0.0/src/lib.rs\x00", 19),
        (b"LLVM 20.1.8\x00", 20),
        (b"nothing useful", None),
        (b"", None),
    ],
)
def test_linker_llvm_from_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, major: int | None
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-ldd"))
    binary = tmp_path / "bpf-linker"
    binary.write_bytes(content)
    assert toolchain.linker_llvm_major(binary) == major


def test_a_found_toolchain_is_remembered_until_a_tool_changes(world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The no-op build's cost: probing runs ~10 processes, so the answer is kept while nothing it rests on changed."""
    searches: list[str] = []
    search = toolchain._resolve

    def counted(chosen: str, env: object) -> toolchain.Toolchain:
        searches.append(chosen)
        return search(chosen, env)  # type: ignore[arg-type]

    monkeypatch.setattr(toolchain, "_resolve", counted)
    cargo_bin = rustup_with_nightly(world, rust_src=False)
    debian = debian_rustc(world)
    linker_dir = world / "linker-install" / "bin"
    fake_linker(linker_dir, 22)
    set_path(monkeypatch, cargo_bin)
    first = toolchain.resolve()
    assert toolchain.resolve() == first
    assert len(searches) == 1
    assert toolchain.resolve("prebuilt") == first  # another kind asked: its own entry
    assert len(searches) == 2

    os.utime(debian, (1, 1))  # rustc upgraded in place
    assert toolchain.resolve() == first
    assert len(searches) == 3
    fake_linker(linker_dir, 21)  # bpf-linker rebuilt against an older LLVM: now an error, never remembered
    for _ in range(2):
        with pytest.raises(ToolchainError, match="LLVM 21"):
            toolchain.resolve()
    assert len(searches) == 5
    fake_linker(linker_dir, 22)
    toolchain.resolve()
    assert len(searches) == 6

    # rust-src added to rustup's nightly: auto now picks it.
    nightly = world / "rustup" / "nightly"
    fake_rustc(nightly / "bin", nightly, release="1.97.0-nightly", llvm="22.1.4", rust_src=True)
    assert toolchain.resolve().kind == "nightly"
    assert len(searches) == 7
    assert toolchain.resolve(cached=False).kind == "nightly"
    monkeypatch.setenv("PYAYA_TOOLCHAIN_CACHE", "0")
    toolchain.resolve()
    assert len(searches) == 9
