"""node.protocol is the bottom layer: it imports nothing first-party but node.errors, its modules
form no import cycle, no import hides inside a function, and dependencies are used through their
public names only."""

from __future__ import annotations

import ast
from pathlib import Path

PROTOCOL = Path(__file__).resolve().parents[2] / "node" / "protocol"
FIRST_PARTY = ("node", "api", "oracle", "waymark", "scripts", "tests")


def _modules() -> dict[str, ast.Module]:
    return {f"node.protocol.{path.stem}": ast.parse(path.read_text(encoding="utf-8")) for path in PROTOCOL.glob("*.py")}


def _imports(tree: ast.Module) -> list[tuple[ast.stmt, str, list[str]]]:
    found: list[tuple[ast.stmt, str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node, node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((node, alias.name, []) for alias in node.names)
    return found


def test_protocol_imports_only_node_errors_and_itself() -> None:
    wrong = [
        (name, module)
        for name, tree in _modules().items()
        for _node, module, _names in _imports(tree)
        if module.split(".")[0] in FIRST_PARTY and module != "node.errors" and not module.startswith("node.protocol")
    ]
    assert wrong == []


def test_no_import_inside_a_function() -> None:
    inside = [
        (name, node.lineno)
        for name, tree in _modules().items()
        for function in ast.walk(tree)
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(function)
        if isinstance(node, (ast.Import, ast.ImportFrom))
    ]
    assert inside == []


def test_no_import_cycle_between_protocol_modules() -> None:
    modules = _modules()
    graph = {
        name: {module for _node, module, _names in _imports(tree) if module in modules and module != name}
        for name, tree in modules.items()
    }
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join(path[path.index(name):] + (name,))}"
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, path + (name,))
        done.add(name)

    for name in sorted(graph):
        visit(name, ())


def test_dependencies_only_through_public_names() -> None:
    private = [
        (name, module, imported)
        for name, tree in _modules().items()
        for _node, module, names in _imports(tree)
        if module.split(".")[0] not in FIRST_PARTY and module != "__future__"
        for imported in [*module.split(".")[1:], *names]
        if imported.startswith("_")
    ]
    assert private == []
