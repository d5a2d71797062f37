"""Symbol resolution for stack traces: user addresses through this process's maps and libc's symbol table, kernel
addresses through a kallsyms file."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

import pytest
from pyaya.errors import PermissionDeniedError
from pyaya.symbols import KernelSymbols, UserSymbols, resolve_stack


def test_user_address_resolves_to_the_libc_function() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    address = ctypes.cast(libc.getppid, ctypes.c_void_p).value
    assert address is not None
    symbol = UserSymbols(os.getpid()).resolve(address + 2)
    assert symbol.name == "getppid"
    assert symbol.offset == 2
    assert symbol.module is not None
    assert "libc" in symbol.module
    assert str(symbol).startswith("getppid+0x2")


def test_kernel_addresses_from_kallsyms(tmp_path: Path) -> None:
    kallsyms = tmp_path / "kallsyms"
    kallsyms.write_text(
        "ffffffff81000000 T _stext\nffffffff81001000 t do_thing\nffffffffc0000000 t mod_func\t[some_mod]\n"
    )
    symbols = KernelSymbols(kallsyms)
    assert not symbols.zeroed
    found = symbols.resolve(0xFFFFFFFF81001010)
    assert (found.name, found.offset, found.module) == ("do_thing", 0x10, "kernel")
    assert str(symbols.resolve(0xFFFFFFFFC0000004)) == "mod_func+0x4 [some_mod]"


def test_zeroed_kallsyms_says_root_is_needed(tmp_path: Path) -> None:
    kallsyms = tmp_path / "kallsyms"
    kallsyms.write_text("0000000000000000 T _stext\n0000000000000000 t do_thing\n")
    symbols = KernelSymbols(kallsyms)
    assert symbols.zeroed
    with pytest.raises(PermissionDeniedError, match="root"):
        symbols.resolve(0xFFFFFFFF81001010)


def test_user_addresses_stay_unresolved_without_a_pid() -> None:
    frames = resolve_stack([0x401000], None)
    assert frames[0].name is None
    assert str(frames[0]) == "0x401000"
