"""The layer above the modules keeps its shape: small CLI functions, no import cycle, and every
attribute the core reads from a plugin documented."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def runtime_imports(tree: ast.Module) -> list[ast.AST]:
    """Import statements outside ``if TYPE_CHECKING:`` blocks."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    return [n for n in ast.walk(tree)
            if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in skipped]


def module_graph() -> dict[str, set[str]]:
    modules = {}
    for path in (REPO / "trainkit").rglob("*.py"):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in runtime_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            # the package root only re-exports (lazily): it is not a layer of its own
            graph[name] |= {t for t in targets if t in modules and t not in (name, "trainkit")}
    graph.pop("trainkit")
    return graph


def test_no_import_cycle_among_trainkit_modules():
    graph = module_graph()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join([*path, node, nxt])}"
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])


def test_no_function_in_the_cli_is_longer_than_about_40_lines():
    long = []
    for path in (REPO / "trainkit" / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 42:
                    long.append(f"{path.name}:{node.name} ({lines} lines)")
    assert not long


def test_every_attribute_the_core_reads_from_a_plugin_is_in_the_contract_and_documented():
    from trainkit.contract import PLUGIN_ATTRIBUTES

    docs = (REPO / "docs" / "plugins.md").read_text()
    for name in PLUGIN_ATTRIBUTES:
        assert f"`{name}`" in docs, f"docs/plugins.md does not document plugin attribute {name}"
    # ... and nothing else reads one of them with getattr behind the contract's back
    pattern = re.compile(r"getattr\([^,]+,\s*[\"'](" + "|".join(PLUGIN_ATTRIBUTES) + r")[\"']")
    for path in [*(REPO / "trainkit").rglob("*.py"), *(REPO / "plugins").glob("*.py")]:
        if path.name == "contract.py":
            continue
        for match in pattern.finditer(path.read_text()):
            raise AssertionError(f"{path.relative_to(REPO)} reads {match.group(1)!r} from an "
                                 f"object with getattr: use trainkit.contract.read")
