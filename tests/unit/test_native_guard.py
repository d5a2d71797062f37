"""No Rust panic crosses into Python: a panic inside aya becomes the entry point's PyayaError, silently.

The object below has a legacy ``maps`` section of 28 bytes holding a map symbol that claims 1000: aya-obj 0.3
slices the section with the symbol's size unchecked, which panics. Without the guard that panic reached Python as
``pyo3_runtime.PanicException`` (a BaseException) after Rust printed its panic message on stderr.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from bpfobj import Sym, build_elf
from pyaya import _native
from pyaya.errors import ObjectError

# A map symbol larger than its section: aya-obj's parser indexes the section with it.
OVERSIZED_MAP = build_elf([("maps", 1, 3, bytes(28))], [Sym("COUNTS", "maps", 0, 1000, type=1)])


@pytest.mark.parametrize(
    ("call", "entry_point"),
    [(_native.inspect_object, "inspect_object"), (_native.Ebpf.load, "Ebpf.load")],
)
def test_a_panic_in_aya_obj_is_an_object_error(call: object, entry_point: str) -> None:
    with pytest.raises(ObjectError) as caught:
        call(OVERSIZED_MAP)  # type: ignore[operator]
    message = str(caught.value)
    assert message.startswith(f"{entry_point} failed: internal error (range end index 1000 out of range")
    assert "aya-obj-0.3.0/src/obj.rs:" in message  # where aya panicked, without the registry's cache path
    assert "rebuild the object with `pyaya build`" in message


def test_the_panic_message_is_not_printed(tmp_path: Path) -> None:
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from test_native_guard import OVERSIZED_MAP\n"
        "from pyaya import _native\n"
        "from pyaya.errors import ObjectError\n"
        "try:\n"
        "    _native.inspect_object(OVERSIZED_MAP)\n"
        "except ObjectError:\n"
        "    print('caught')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(Path(__file__).parent)], capture_output=True, text=True, check=False
    )
    assert result.stdout == "caught\n"
    assert result.stderr == ""


def test_pyaya_inspect_prints_one_line(tmp_path: Path) -> None:
    obj = tmp_path / "broken.o"
    obj.write_bytes(OVERSIZED_MAP)
    result = subprocess.run(
        [sys.executable, "-m", "pyaya", "inspect", str(obj)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "internal error" in result.stderr
    assert "Traceback" not in result.stderr
