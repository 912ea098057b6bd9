"""The package map (README, "Architecture") as rules that fail when an import breaks them.

Read from the source with `ast`, nothing imported: which first-party module imports which, at
module level (what runs when the module loads) and inside functions (a first-party import there
is how a cycle gets hidden, so none is allowed). Rules checked:

- each package imports only the packages the map allows it (production code never imports
  `waymark`, the CLI and devnet tooling; `api` and `oracle` never import each other);
- no cycle between first-party modules;
- no first-party import inside a function, but for a CLI command loading the stack it runs;
- no module over 500 lines unless its docstring says why it is one concern ("One concern:").
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PRODUCT_PACKAGES = ("node", "api", "oracle", "waymark")
MAX_LINES = 500

_ROOT = {"node.errors", "node.paths"}
_SHARED = _ROOT | {"node.protocol", "node.settings", "node.strict_json", "node.periodic", "node.lifetime"}
_CORE = _SHARED | {"node.chain", "node.db"}
_NODE = _CORE | {"node.escrow", "node.documents", "node.member", "node.audit"}

# package (longest prefix wins) -> the first-party packages it may import besides itself.
ALLOWED: dict[str, set[str]] = {
    "node.errors": set(),
    "node.paths": set(),
    "node.protocol": {"node.errors"},
    "node.strict_json": {"node.errors"},
    "node.periodic": {"node.errors"},
    "node.lifetime": set(),
    "node.settings": _ROOT | {"node.chain"},
    "node.chain": _ROOT | {"node.protocol", "node.settings"},
    "node.db": _ROOT | {"node.protocol", "node.settings"},
    "node.escrow": _CORE,
    "node.documents": _CORE,
    "node.member": _CORE | {"node.escrow", "node.documents"},
    "node.relayer": _CORE | {"node.escrow"},
    "node.audit": _CORE | {"node.escrow", "node.member"},
    "node": _ROOT,
    "api": _NODE,
    "oracle": _NODE - {"node.audit"},
    "waymark": {"node", "api", "oracle"},
}


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported first-party module (or package)
    line: int
    in_function: bool


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PRODUCT_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The first-party module an import names (`from a.b import c`: a.b.c if it is a module)."""
    if name.split(".")[0] not in PRODUCT_PACKAGES:
        return None
    return name


def _imports(module: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function.update(id(inner) for inner in ast.walk(node) if inner is not node)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        for name in dict.fromkeys(names):
            target = _resolve(name)
            if target is not None:
                found.append(Import(module, target, node.lineno, id(node) in in_function))
    return found


IMPORTS = [found for module, path in MODULES.items() for found in _imports(module, path)]


def _package_of(module: str) -> str:
    candidates = [package for package in ALLOWED if module == package or module.startswith(package + ".")]
    return max(candidates, key=len)


def _allowed(source: str, target: str) -> bool:
    own = _package_of(source)
    if target == own or target.startswith(own + "."):
        return True
    return any(target == allowed or target.startswith(allowed + ".") for allowed in ALLOWED[own])


def test_every_module_belongs_to_a_package_of_the_map() -> None:
    for module in MODULES:
        assert _package_of(module), module


def test_packages_import_only_what_the_map_allows() -> None:
    broken = sorted(
        f"{MODULES[i.source].relative_to(REPO)}:{i.line} ({_package_of(i.source)}) imports {i.target}"
        for i in IMPORTS
        if not _allowed(i.source, i.target)
    )
    assert broken == [], "imports the package map does not allow:\n" + "\n".join(broken)


def _command_loads_its_stack(i: Import) -> bool:
    """A command of the CLI (a waymark.cmd_* module) imports the stack it runs (a server, the audit
    engine, the demo) inside the command, so that the CLI's other commands start without it
    (tests/cli/test_cli.py). No cycle can hide there: only the CLI imports a command module (the
    next test), and the package map keeps node, api and oracle from importing the CLI."""
    return i.source.startswith("waymark.cmd_") and not i.target.startswith(("waymark.cmd_", "waymark.cli"))


def test_no_first_party_import_inside_a_function() -> None:
    hidden = sorted(f"{MODULES[i.source].relative_to(REPO)}:{i.line} imports {i.target}"
                    for i in IMPORTS if i.in_function and not _command_loads_its_stack(i))
    assert hidden == [], "first-party imports inside functions:\n" + "\n".join(hidden)


def test_only_the_cli_imports_its_command_modules() -> None:
    importers = sorted(f"{MODULES[i.source].relative_to(REPO)}:{i.line} imports {i.target}" for i in IMPORTS
                       if i.target.startswith("waymark.cmd_") and not i.source.startswith(("waymark.cli", "waymark.cmd_")))
    assert importers == [], "modules importing a CLI command module:\n" + "\n".join(importers)


def _graph() -> dict[str, set[str]]:
    """Module-level edges; importing a.b.c also runs the packages a and a.b."""
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for i in IMPORTS:
        if i.in_function:
            continue
        parts = i.target.split(".")
        for end in range(1, len(parts) + 1):
            target = ".".join(parts[:end])
            if target in MODULES and target != i.source and not i.source.startswith(target + "."):
                graph[i.source].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_no_import_cycle() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("source, target, allowed", [
    ("node.member.app", "waymark.devnet.anvil", False),
    ("api.readmodel.passport", "oracle.queue", False),
    ("oracle.runtime", "node.chain.client", True),
    ("node.protocol.gs1", "node.chain.client", False),
    ("node.chain.client", "node.protocol.merkle", True),
])
def test_the_map_is_read_as_written(source: str, target: str, allowed: bool) -> None:
    assert _allowed(source, target) is allowed


def test_modules_over_500_lines_say_why_they_are_one_concern() -> None:
    long = []
    sources = [*MODULES.values(), *sorted((REPO / "scripts").rglob("*.py")), *sorted((REPO / "tests").rglob("*.py"))]
    for path in sources:
        if "migrations" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if lines > MAX_LINES and "One concern:" not in docstring:
            long.append(f"{path.relative_to(REPO)}: {lines} lines")
    assert long == [], "modules over 500 lines without a docstring saying why they are one concern:\n" + "\n".join(long)


DIALECT_WORDS = ("is_sqlite", "paramstyle", "dialect.name", "sqlite_insert", "postgresql.insert")


def test_database_dialects_differ_only_in_the_storage_layer() -> None:
    branches = [
        f"{path.relative_to(REPO)}:{number}"
        for module, path in MODULES.items()
        if not module.startswith("node.db")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if any(word in line for word in DIALECT_WORDS)
    ]
    assert branches == [], "dialect branches outside node/db:\n" + "\n".join(branches)
