"""The package's layers, read from its source: no import cycles (imports inside functions included), and
lower layers never import higher ones.

    base (errors, records, config, io.security) < io, decode, features < models < runtime < scoring
    < training < commands (cli, api, report, demo, timeline, submit, ...)

`runtime/` runs stages without knowing what they do; `io/` moves bytes and rows without knowing how they are
scored. A new capability is a new scorer or sink behind an existing interface, not an import upward.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "aei_batch"

#: What each layer may not import (by module prefix).
FORBIDDEN = {
    "aei_batch.io": ("aei_batch.scoring", "aei_batch.runtime", "aei_batch.training", "aei_batch.cli"),
    "aei_batch.decode": ("aei_batch.scoring", "aei_batch.runtime", "aei_batch.training", "aei_batch.models"),
    "aei_batch.features": (
        "aei_batch.scoring",
        "aei_batch.runtime",
        "aei_batch.training",
        "aei_batch.models",
    ),
    "aei_batch.models": ("aei_batch.scoring", "aei_batch.runtime", "aei_batch.training"),
    "aei_batch.runtime": ("aei_batch.scoring", "aei_batch.training", "aei_batch.io", "aei_batch.models"),
    "aei_batch.scoring": ("aei_batch.training", "aei_batch.cli", "aei_batch.api"),
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """aei_batch modules `name` imports anywhere in its source (module level or inside functions)."""
    found: set[str] = set()
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # `if TYPE_CHECKING:` blocks are for type checkers only: never run
        if (
            isinstance(node, ast.If)
            and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING"
        ):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for a in node.names:  # `from pkg import module` names a module
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base)
    return {m for m in found if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_no_import_cycles_not_even_inside_functions() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    # A package's __init__ importing its own submodules is not a cycle in practice; none are allowed here.
    assert not cycles, f"import cycles: {cycles}"


def test_lower_layers_do_not_import_higher_ones() -> None:
    bad = []
    for name, deps in _graph().items():
        for layer, forbidden in FORBIDDEN.items():
            if name == layer or name.startswith(layer + "."):
                bad += [
                    f"{name} -> {d}" for d in deps if any(d == f or d.startswith(f + ".") for f in forbidden)
                ]
    assert not bad, "imports across layers:\n" + "\n".join(sorted(bad))
