"""Writes the "Tested on" section of every template's README and the kernel table of docs/guide.md from the results
of a kernel matrix run (`make matrix`), never by hand.

Usage: python scripts/tested-kernels.py [--host JUNIT.xml] ROWS.json [ROWS.json ...]

Each ROWS.json is the output of `pyaya test --json` (one row per kernel, every test's outcome under "tests"; a later
file's outcome of a test on the same kernel, a rerun, replaces an earlier one's); the optional JUnit file is the
same tests run on this host. A template counts as run on a kernel when
test_template_runs_and_reports[kind] passed there (its build output loaded, attached and reported events), and as
tested when test_generated_project_tests_pass[kind] passed too.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

from pyaya.cli.matrix import junit_outcomes  # noqa: E402

RUNS = "tests.kernel.test_templates::test_template_runs_and_reports[{}]"
TESTS = "tests.kernel.test_templates::test_generated_project_tests_pass[{}]"
DEBIAN = {"5.10": "Debian 11", "6.1": "Debian 12", "6.12": "Debian 13"}
BEGIN = "<!-- tested-kernels:begin (written by scripts/tested-kernels.py from a matrix run) -->"
END = "<!-- tested-kernels:end -->"


def load(host: Path | None, rows: list[Path]) -> list[tuple[str, dict[str, dict[str, str]]]]:
    """``(kernel label, outcomes)`` for each kernel of the run, the host first."""
    kernels = []
    if host is not None:
        kernels.append((f"{platform.release()} (pyaya's development host)", junit_outcomes(host.read_bytes())))
    merged: dict[str, dict[str, dict[str, str]]] = {}
    for path in rows:  # a later file's outcome of a test (a rerun) replaces an earlier one's, kernel by kernel
        for row in json.loads(path.read_text()):
            series = row["kernel"]
            where = f"{DEBIAN[series]}, `--kernel {series}`" if series in DEBIAN else row["kernel"]
            merged.setdefault(f"{row['release']} ({where})", {}).update(row.get("tests", {}))
    return kernels + list(merged.items())


def verdict(kind: str, outcomes: dict[str, dict[str, str]]) -> str | None:
    runs, tests = outcomes.get(RUNS.format(kind)), outcomes.get(TESTS.format(kind))
    if runs is None and tests is None:
        return None
    parts = []
    for label, result in (("runs and reports events", runs), ("its tests", tests)):
        if result is None:
            continue
        outcome = result["outcome"]
        if outcome == "passed":
            parts.append(f"{label}: pass" if label == "its tests" else label)
        elif outcome == "skipped":
            reason = result.get("message", "").removeprefix("Skipped: ").split(": ")[0]  # "this kernel lacks X"
            parts.append(f"{label}: skipped ({reason})")
        else:
            parts.append(f"{label}: FAIL ({result.get('message', '')})")
    return "; ".join(parts)


def replace_section(text: str, section: str) -> str:
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: section, text)
    return text.rstrip("\n") + "\n\n" + section + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", type=Path, help="JUnit XML of the template tests run on this host")
    parser.add_argument("rows", type=Path, nargs="+", help="`pyaya test --json` output files")
    args = parser.parse_args()
    kernels = load(args.host, args.rows)
    kinds = sorted(path.parent.name for path in (REPO / "templates").glob("*/template.toml"))
    for kind in kinds:
        lines = [
            BEGIN,
            "## Tested on",
            "",
            "Kernels this template ran on in pyaya's kernel matrix (`pyaya test` in QEMU guests, and the host):",
            "",
            "| kernel | result |",
            "|---|---|",
        ]
        for label, outcomes in kernels:
            found = verdict(kind, outcomes)
            if found is not None:
                lines.append(f"| {label} | {found} |")
        lines.append(END)
        readme = REPO / "templates" / kind / "README.md.tmpl"
        readme.write_text(replace_section(readme.read_text(), "\n".join(lines)))
    guide = REPO / "docs" / "guide.md"
    labels = [label for label, _ in kernels]
    table = [
        BEGIN,
        "| template | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for kind in kinds:
        cells = [verdict(kind, outcomes) or "not run" for _, outcomes in kernels]
        table.append(f"| `{kind}` | " + " | ".join(_short(cell) for cell in cells) + " |")
    table.append(END)
    guide.write_text(replace_section(guide.read_text(), "\n".join(table)))
    return 0


def _short(cell: str) -> str:
    if "FAIL" in cell:
        return "fails"
    if "skipped" in cell:
        reason = re.search(r"skipped \(([^)]*)\)", cell)  # the first skip's reason: "this kernel lacks X"
        return f"skipped: {reason.group(1)}" if reason else "skipped"
    return "runs, tests pass" if "its tests: pass" in cell else "runs" if cell.startswith("runs") else cell


if __name__ == "__main__":
    sys.exit(main())
