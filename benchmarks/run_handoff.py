"""How ``pyaya run`` hands over to ``main.py``: running it in the CLI's own interpreter (what the console script
does, ``pyaya._launch.MainScript``) against replacing itself with it (``os.execv``, what the Typer command does,
and ``pyaya run`` did before), with ``python main.py`` as the floor, measured in the same run.

Each row: wall time from launch until ``main.py`` (which imports :mod:`pyaya.runtime`, as every template does)
prints its first line, and that process's peak RSS. No privilege and no kernel needed: the project is a stand-in
with a placeholder object (``--no-build``), and main.py exits right after importing.

    .venv/bin/python benchmarks/run_handoff.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench import print_table

MAIN = """\
import resource, sys
from pyaya.runtime import Session, parse_options
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
"""

#: The exec handoff: the CLI's run path up to main.py (the project found, the options checked), then os.execv.
EXEC = """\
import sys
from pyaya.cli import _runcore
argv_for = _runcore.prepare(sys.argv[1], duration=None, json_lines=False, verbose=False, pid=None, interval=None,
                            count=None, metrics=None, main_args=None, project_args=[])
_runcore.start(argv_for, debug=False, no_build=True, rebuild=False)
"""


def _project(folder: Path) -> tuple[Path, Path]:
    root = folder / "handoff"
    (root / "handoff-ebpf" / "src").mkdir(parents=True)
    (root / "handoff-ebpf" / "src" / "main.rs").write_text("// kernel side\n")
    (root / "pyaya.toml").write_text('[project]\nname = "handoff"\n')
    (root / "main.py").write_text(MAIN)
    obj = root / "target" / "bpfel-unknown-none" / "release" / "handoff"
    obj.parent.mkdir(parents=True)
    obj.write_bytes(b"\x7fELF")
    return root, obj


def _sample(argv: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start
    return elapsed, int(result.stdout.split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="pyaya-handoff-") as folder:
        root, obj = _project(Path(folder))
        rows = {
            "python main.py (floor)": [sys.executable, str(root / "main.py"), "--object", str(obj)],
            "pyaya run (in-process, as shipped)": [sys.executable, "-m", "pyaya", "run", str(root), "--no-build"],
            "CLI then os.execv (the Typer command's)": [sys.executable, "-c", EXEC, str(root)],
        }
        samples: dict[str, list[tuple[float, int]]] = {name: [] for name in rows}
        for _ in range(runs):  # interleaved, so a busy moment of the machine weighs on every row alike
            for name, argv in rows.items():
                samples[name].append(_sample(argv))
    floor = statistics.median(t for t, _ in samples["python main.py (floor)"])
    table = []
    for name, values in samples.items():
        times = [t for t, _ in values]
        median = statistics.median(times)
        table.append(
            (
                name,
                f"{median * 1000:.0f} ms",
                f"{min(times) * 1000:.0f} ms",
                f"+{(median - floor) * 1000:.0f} ms",
                f"{max(rss for _, rss in values) / 1024:.1f} MiB",
            )
        )
    print_table(("handoff", "median", "min", "over the floor", "peak RSS"), table)


if __name__ == "__main__":
    main()
