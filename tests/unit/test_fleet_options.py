"""The options behind the fleet: `pyaya run --metrics` reaching main.py, main.py's `--metrics`/`--pinned-maps`,
addresses and metric names, and the errors of a missing pin folder (real processes and files, no kernel)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pyaya.errors import MetricsError, NotFoundError
from pyaya.metrics import metric_name, parse_address
from pyaya.runtime import PinnedObject, parse_options
from pyaya.toolchain import bpf_target


def test_run_passes_metrics_to_main(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    # --metrics needs a [metrics.MAP] table (pyaya run refuses it otherwise, before building).
    (root / "pyaya.toml").write_text('[project]\nname = "proj"\n[metrics.COUNTS]\ntype = "counter"\n')
    (root / "main.py").write_text("import json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    built = root / "target" / bpf_target() / "release" / "proj"
    built.parent.mkdir(parents=True)
    built.write_bytes(b"\x7fELF")
    result = subprocess.run(
        [sys.executable, "-m", "pyaya", "run", str(root), "--no-build", "--metrics", "127.0.0.1:9435"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["--object", str(built), "--metrics", "127.0.0.1:9435"]


def test_main_py_options(tmp_path: Path) -> None:
    options = parse_options(["--object", "x.o", "--metrics", "127.0.0.1:9435", "--pinned-maps", str(tmp_path)])
    assert options.metrics == "127.0.0.1:9435"
    assert options.pinned_maps == tmp_path
    assert parse_options(["--object", "x.o"]).pinned_maps is None


@pytest.mark.parametrize(
    ("address", "expected"),
    [("127.0.0.1:9435", ("127.0.0.1", 9435)), ("[::1]:80", ("::1", 80)), (":9435", ("0.0.0.0", 9435))],
)
def test_addresses(address: str, expected: tuple[str, int]) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize("address", ["localhost", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:http"])
def test_bad_addresses(address: str) -> None:
    with pytest.raises(MetricsError, match="is not HOST:PORT"):
        parse_address(address)


def test_metric_names() -> None:
    assert metric_name("exec-watch", "exec_counts") == "exec_watch_exec_counts"
    assert metric_name("9lives", "x") == "_9lives_x"


def test_pinned_maps_folder_must_exist(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such folder"):
        PinnedObject(tmp_path / "missing")
    (tmp_path / "COUNTS").write_text("")
    pinned = PinnedObject(tmp_path)
    assert list(pinned.maps) == ["COUNTS"]
    with pytest.raises(NotFoundError, match=r"no map 'OTHER' pinned in .* \(pinned: COUNTS\)"):
        pinned.maps["OTHER"]
    assert pinned.programs == {}
