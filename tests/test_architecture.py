"""The package's shape (docs/architecture.md): layers that follow the data flow, no import circle,
no lower layer importing a higher one -- imports inside functions count."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "genocl_plugin"
# data flow, lowest first: the core modules, screens and the reference set, the objective, models,
# evaluation, training with its strategy callbacks, the zoo, scoring (genocl_plugin.variants is
# scoring's documented alias)
LAYER = {"errors": 0, "config": 0, "progress": 0, "workarounds": 0, "data": 1, "objectives": 2, "models": 3,
         "evaluation": 4, "training": 5, "strategies": 5, "zoo": 6, "scoring": 7, "variants": 7}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the genocl_plugin modules it imports (anywhere in its body)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("genocl_plugin"):
                targets = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("genocl_plugin")]
            for target in targets:
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYER.get(parts[1]) if len(parts) > 1 else None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer():
    graph = import_graph()
    assert len(graph) > 40
    unplaced = sorted(m for m in graph if m != "genocl_plugin" and layer(m) is None
                      and not m.startswith("genocl_plugin.bundled"))
    assert unplaced == [], "add these to LAYER and docs/architecture.md"


def test_no_import_circle():
    assert cycles(import_graph()) == []


def test_no_lower_layer_imports_a_higher_one():
    graph = import_graph()
    upward = sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets
                    if layer(m) is not None and layer(t) is not None and layer(t) > layer(m))
    assert upward == []


def test_the_checks_can_fail():
    """The detectors find a planted circle and a planted upward import."""
    graph = {"genocl_plugin.data.a": {"genocl_plugin.models.b"}, "genocl_plugin.models.b": {"genocl_plugin.data.a"}}
    assert cycles(graph) == [["genocl_plugin.data.a", "genocl_plugin.models.b"]]
    assert layer("genocl_plugin.models.b") > layer("genocl_plugin.data.a")
