"""The import graph of ``python/pyaya``, read with :mod:`ast`: no cycles, and the layers CLI -> library -> native.

Layers, top to bottom:

* CLI: ``pyaya.cli`` and its submodules, and ``pyaya.__main__`` (``python -m pyaya``);
* library: every other module of the package, ``pyaya/__init__.py`` included;
* native: ``pyaya._native``, the extension module, which imports nothing of the package.

An edge ``a -> b`` is every ``import``/``from ... import`` of ``b`` that ``a`` runs: at module level *and* inside
functions (a lazy import still makes ``a`` depend on ``b``; it is legitimate for startup speed only when it goes
down the layers, which the cycle check enforces). Imports under ``if TYPE_CHECKING:`` do not count: they never run,
so they cannot form an import cycle, and annotations naming a higher module's class are how a lower module
describes what it is handed. ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to
``pkg`` (whose ``__init__`` defines the name). ``pyaya/__init__.py`` imports its public names on first use
(PEP 562, ``__import__`` of the modules its ``_LAZY`` table and ``_SUBMODULES`` name): those count as its edges.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parents[2] / "python" / "pyaya"
NATIVE = "pyaya._native"


def _modules() -> dict[str, tuple[Path, bool]]:
    """``{dotted name: (file, is a package)}`` for every ``.py`` file of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for statement in node.body:
                skipped.update(id(inner) for inner in ast.walk(statement))
    return skipped


def import_graph() -> dict[str, dict[str, int]]:
    """``{module: {module or NATIVE it imports: first line that does}}``, package modules only."""
    modules = _modules()

    def known(name: str) -> str | None:
        while name and name not in modules and name != NATIVE:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {}
    for name, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        skipped = _type_checking_nodes(tree)
        package = name if is_package else name.rpartition(".")[0]
        edges: dict[str, int] = {}
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    targets.append(submodule if submodule in modules or submodule == NATIVE else base)
            for target in targets:
                resolved = known(target) if target.startswith("pyaya") else None
                if resolved is not None and resolved != name:
                    edges.setdefault(resolved, node.lineno)
        if name == "pyaya":
            edges.update(dict.fromkeys(_lazy_modules(tree), 0))
        graph[name] = edges
    return graph


def _lazy_modules(tree: ast.Module) -> set[str]:
    """The modules ``pyaya.__getattr__`` imports: the values of ``_LAZY`` and ``pyaya.<name>`` of ``_SUBMODULES``."""
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            if not isinstance(target, ast.Name) or node.value is None:
                continue
            value = ast.literal_eval(node.value) if target.id == "_LAZY" else None
            if isinstance(value, dict):
                found.update(value.values())
            if target.id == "_SUBMODULES" and isinstance(node.value, ast.Call):
                found.update(f"pyaya.{name}" for name in ast.literal_eval(node.value.args[0]))
    return found


def layer(module: str) -> int:
    """0 native, 1 library, 2 CLI."""
    if module == NATIVE:
        return 0
    if module in {"pyaya.__main__", "pyaya.cli"} or module.startswith("pyaya.cli."):
        return 2
    return 1


def test_the_graph_sees_the_package() -> None:
    graph = import_graph()
    assert {"pyaya", "pyaya.cli", "pyaya.features", "pyaya.maps._core"} <= set(graph)
    # A module-level edge, a function-level one, and a TYPE_CHECKING import left out.
    assert "pyaya.loader" in graph["pyaya"]
    assert NATIVE in graph["pyaya.features"]
    assert "pyaya.usdt" in graph["pyaya.scaffold"]  # imported inside functions only
    assert "pyaya.loader" not in graph["pyaya.maps._core"]  # under TYPE_CHECKING only


def test_no_import_cycles() -> None:
    graph = import_graph()
    found = _rust_cycles_script().cycles(graph)  # one Tarjan for both languages' graphs
    described = [
        " <-> ".join(component)
        + ": "
        + ", ".join(f"{a} -> {b} (line {graph[a][b]})" for a in component for b in graph[a] if b in component)
        for component in found
    ]
    assert not found, "import cycles (move the shared code to a lower module):\n" + "\n".join(described)


def test_layers_point_down() -> None:
    graph = import_graph()
    upward = [
        f"{module} -> {target} (line {line})"
        for module, edges in graph.items()
        for target, line in edges.items()
        if layer(target) > layer(module)
    ]
    assert not upward, "imports that go up the layers (CLI -> library -> native):\n" + "\n".join(upward)


def _rust_cycles_script() -> Any:
    path = PACKAGE.parents[1] / "scripts" / "rust-module-cycles.py"
    spec = importlib.util.spec_from_file_location("rust_module_cycles", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rust_cycle_check_finds_a_cycle(tmp_path: Path) -> None:
    """The script `make lint` runs on the crates: `use crate::` and qualified `crate::` paths are edges, comments
    and strings are not, a child module's `super::` is its parent; a cycle is reported with its witnesses."""
    script = _rust_cycles_script()
    (tmp_path / "lib.rs").write_text("mod a;\nmod b;\nmod c;\n")
    (tmp_path / "a.rs").write_text("use crate::{b::Thing, errors};\n// crate::c::mentioned\n")
    (tmp_path / "b.rs").write_text('fn f() { crate::c::g(); let s = "crate::a::no"; }\n')
    (tmp_path / "c.rs").write_text("#[cfg(test)]\nmod tests {\n    use super::g;\n}\npub fn g() {}\n")
    graph = script.edges(tmp_path)
    assert graph == {"a": {"b": f"{tmp_path / 'a.rs'}:1"}, "b": {"c": f"{tmp_path / 'b.rs'}:1"}, "c": {}}
    assert script.cycles(graph) == []
    (tmp_path / "c.rs").write_text("use crate::a;\n")
    assert script.cycles(script.edges(tmp_path)) == [["a", "b", "c"]]
    assert script.main([str(tmp_path)]) == 1


def test_rust_crates_have_no_module_cycles() -> None:
    script = _rust_cycles_script()
    crates = PACKAGE.parents[1] / "crates"
    sources = [str(source) for source in sorted(crates.glob("*/src"))]
    assert sources
    assert script.main(sources) == 0
