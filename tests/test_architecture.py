"""The layers of core/ (issue 23): no module imports itself through others, model files import no
evaluation, calibration or shipping code, and core never imports Streamlit or the app. Imports
are read with ``ast``, at any depth: an import inside a function still ties the two modules."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

CORE = ROOT / "core"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module name that ``path`` imports, as written (absolute imports)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def core_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in CORE.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
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
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_core_has_no_import_cycles():
    assert cycles(core_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_model_files_import_nothing_above_the_models():
    """A model file holds its network, loss, sampling and encoding; evaluation, DRS calibration,
    training and shipping import the models, never the other way round."""
    allowed = {"core.data", "core.names", "core.paths", "core.neighbors"}
    for path in (CORE / "models").glob("*.py"):
        above = {m for m in imports_of(path) if m.startswith("core.") and not m.startswith("core.models")}
        assert above <= allowed, f"{path.name} imports {sorted(above - allowed)}"


def test_core_never_imports_streamlit_or_the_app():
    for path in CORE.rglob("*.py"):
        bad = {m for m in imports_of(path) if m.split(".")[0] in ("streamlit", "app")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
