#!/usr/bin/env python3
"""Fails when the modules of a Rust crate depend on each other in a cycle (``make lint`` runs it on every crate's
``src``; ARCHITECTURE.md's invariants say which module sits below which).

An edge ``a -> b`` is any path ``crate::b`` written in module ``a``'s code (``use crate::b::...``, ``use crate::{b,
...}``, a qualified ``crate::b::f(...)``). Child modules count as their top-level module (``a/x.rs``, and ``mod x
{ ... }`` inside ``a.rs`` such as ``#[cfg(test)] mod tests``), so their ``super::`` paths name ``a`` itself and
are no edge; ``super::`` at the top of a top-level file (the crate root, as ``crate::``) is not used in these
crates. Comments and string literals are left out. ``lib.rs`` is the crate's root: it declares every module and
registers the Python API, so it is left out of the graph (nothing may name ``crate::`` items defined in it).

Usage: ``rust-module-cycles.py SRC_DIR...``; prints each cycle found with one witness line per edge, exit 1.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_STRING = re.compile(r'b?"(?:\\.|[^"\\])*"')
_GROUP = re.compile(r"\bcrate::\{([^}]*)\}")
_PATH = re.compile(r"\b(crate|super)::(\w+)")


def _strip(source: str) -> str:
    """The source with comments and string literals blanked, keeping line numbers."""

    def blank(match: re.Match[str]) -> str:
        return re.sub(r"[^\n]", " ", match.group(0))

    return _COMMENT.sub(blank, _STRING.sub(blank, source))


def module_of(path: Path, src: Path) -> str | None:
    """The top-level module a file belongs to (``maps.rs`` and ``maps/x.rs`` are ``maps``); None for the root."""
    parts = path.relative_to(src).with_suffix("").parts
    if parts in (("lib",), ("main",)):
        return None
    return parts[0]


def edges(src: Path) -> dict[str, dict[str, str]]:
    """``{module: {module it names: "file:line" of the first place it does}}``."""
    graph: dict[str, dict[str, str]] = {}
    for path in sorted(src.rglob("*.rs")):
        module = module_of(path, src)
        if module is None:
            continue
        targets = graph.setdefault(module, {})
        for number, line in enumerate(_strip(path.read_text()).splitlines(), 1):
            found = [name.split("::")[0].strip() for group in _GROUP.findall(line) for name in group.split(",")]
            # `super::` names the same top-level module (see the docstring): only `crate::` paths are edges.
            found.extend(name for root, name in _PATH.findall(line) if root == "crate")
            for name in found:
                if name and name not in ("self", "super", "crate") and name != module:
                    targets.setdefault(name, f"{path}:{number}")
    known = set(graph)
    return {module: {t: w for t, w in targets.items() if t in known} for module, targets in graph.items()}


def cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def main(argv: list[str]) -> int:
    failed = False
    for argument in argv or ["crates/pyaya-native/src"]:
        src = Path(argument)
        graph = edges(src)
        for component in cycles(graph):
            failed = True
            print(f"{src}: modules in a dependency cycle: {', '.join(component)}")
            for module in component:
                for target, witness in sorted(graph[module].items()):
                    if target in component:
                        print(f"  {module} -> {target}  ({witness})")
    if failed:
        print("move the shared code to a lower module (ARCHITECTURE.md, Invariants: layers) so that edges go one way")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
