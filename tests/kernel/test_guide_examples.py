"""The guide's runnable examples, each run as its own Python program as root against this kernel.

A ```python block of docs/guide.md runs when the line before it is a marker comment (invisible on GitHub):

    <!-- run: bpf=net_tc "eth0"=$iface "legacy"=net_tc_rewrite -->

Tokens: ``bpf=<fixture>`` loads that fixture object (crates/pyaya-fixtures) as ``bpf`` before the example and
closes it after; ``"<literal>"=<value>`` replaces that string literal of the example with ``"<value>"``, where the
value ``$iface`` is the host end of a fresh veth pair, ``$bpffs`` a fresh directory in bpffs (removed after) and
``$fixtures`` the folder of the built fixture objects;
``kernel=<major>.<minor>`` skips the example on older kernels, saying so; ``needs=<feature>`` marks it as the
kernel tests' ``needs`` marker does (skipped with the probed reason, run in the VM guests). See CONTRIBUTING.md.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pyaya.testing import NetnsPair

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide.md"
MARKER = re.compile(r"^<!-- run:(.*)-->\s*$")


@dataclass
class Example:
    line: int
    source: str
    fixture: str | None = None
    kernel: tuple[int, int] | None = None
    needs: list[str] = field(default_factory=list)
    literals: dict[str, str] = field(default_factory=dict)


def _examples() -> list[Example]:
    lines = GUIDE.read_text().splitlines()
    examples = []
    for number, text in enumerate(lines):
        marker = MARKER.match(text)
        if marker is None:
            continue
        start = number + 1
        if start >= len(lines) or lines[start].strip() != "```python":
            raise AssertionError(f"docs/guide.md:{number + 1}: a run marker must come right before a ```python block")
        end = lines.index("```", start + 1)
        example = Example(line=start + 1, source="\n".join(lines[start + 1 : end]) + "\n")
        for token in marker.group(1).split():
            key, _, value = token.partition("=")
            if key == "bpf":
                example.fixture = value
            elif key == "needs":
                example.needs.append(value)
            elif key == "kernel":
                major, minor = value.split(".")
                example.kernel = (int(major), int(minor))
            elif key.startswith('"') and key.endswith('"'):
                example.literals[key] = value
            else:
                raise AssertionError(f"docs/guide.md:{number + 1}: unknown run marker token {token!r}")
        examples.append(example)
    return examples


EXAMPLES = _examples()


def _kernel() -> tuple[int, int]:
    major, minor = os.uname().release.split(".")[:2]
    return int(major), int(re.match(r"\d+", minor).group())  # type: ignore[union-attr]


def test_the_guide_has_runnable_examples() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize(
    "example",
    [
        pytest.param(
            example, marks=[pytest.mark.needs(feature) for feature in example.needs], id=f"guide.md:{example.line}"
        )
        for example in EXAMPLES
    ],
)
def test_guide_example_runs(
    example: Example, fixtures_dir: Path, netns_pair: NetnsPair, requires_root: None, tmp_path: Path
) -> None:
    if example.kernel is not None and _kernel() < example.kernel:
        pytest.skip(f"needs kernel {example.kernel[0]}.{example.kernel[1]}+, this is {os.uname().release}")
    bpffs = Path("/sys/fs/bpf") / f"pyaya-guide-{os.getpid()}-{example.line}"
    values = {"$iface": netns_pair.host_interface, "$bpffs": str(bpffs), "$fixtures": str(fixtures_dir)}
    source = example.source
    for literal, given in example.literals.items():
        assert literal in source, f"docs/guide.md:{example.line}: the example has no {literal}"
        value = given
        for name, real in values.items():
            value = value.replace(name, real)
        source = source.replace(literal, f'"{value}"')
    prelude = ["import ctypes", "import pyaya"]
    if example.fixture is not None:
        prelude.append(f"bpf = pyaya.Ebpf.load_file({str(fixtures_dir / example.fixture)!r})")
    program = tmp_path / "example.py"
    program.write_text("\n".join(prelude) + "\n" + source)
    bpffs.mkdir()
    try:
        result = subprocess.run(
            [sys.executable, str(program)], capture_output=True, text=True, timeout=120, check=False
        )
    finally:
        shutil.rmtree(bpffs, ignore_errors=True)
    assert result.returncode == 0, f"docs/guide.md:{example.line} failed:\n{source}\n{result.stderr}"
