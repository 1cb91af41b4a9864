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
                targets = [f"{node.module}.{a.name}" for a in node.names]
                if not all(t in modules for t in targets):  # names from the module itself
                    targets.append(node.module)
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
    from trainkit.plugin.contract import PLUGIN_ATTRIBUTES

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
                                 f"object with getattr: use trainkit.plugin.contract.read")


#: The layers, bottom up: a module may import its own layer's and those below it, never above.
#: docs/architecture.md's layer list is checked against this table.
LAYERS = [
    ("base", ["trainkit.errors", "trainkit.lazy", "trainkit.markers", "trainkit.deprecated"]),
    ("persist", ["trainkit.persist"]),
    ("numerics", ["trainkit.nn", "trainkit.data"]),
    ("export", ["trainkit.export"]),
    ("plugin", ["trainkit.plugin", "trainkit.hookspecs"]),
    ("loop", ["trainkit.loop"]),
    ("session", ["trainkit.session"]),
    ("sweep", ["trainkit.sweep"]),
    ("cli", ["trainkit.cli", "trainkit.__main__"]),
    ("testing", ["trainkit.testing"]),
]


def layer_of(module: str) -> int:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} "
                  f"({LAYERS[layer_of(target)][0]})"
                  for module, targets in graph.items() for target in targets
                  if layer_of(target) > layer_of(module))


def test_every_import_points_down_the_layers():
    assert upward_imports(module_graph()) == []


def test_the_layer_test_fails_on_an_upward_import():
    graph = module_graph()
    graph["trainkit.persist.atomic"].add("trainkit.loop.trainer")
    assert upward_imports(graph) == ["trainkit.persist.atomic (persist) imports "
                                     "trainkit.loop.trainer (loop)"]


def test_no_core_module_imports_a_builtin_plugin():
    found = []
    for path in (REPO / "trainkit").rglob("*.py"):
        for node in runtime_imports(ast.parse(path.read_text())):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module else
                     [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            found += [f"{path.relative_to(REPO)}: {n}" for n in names
                      if n and n.startswith("trainkit.plugins")]
    assert found == []


def test_the_top_of_trainkit_is_its_public_face_and_packages():
    modules = sorted(p.name for p in (REPO / "trainkit").glob("*.py"))
    assert modules == ["__init__.py", "__main__.py", "deprecated.py", "errors.py", "hookspecs.py",
                       "lazy.py", "markers.py"]


def test_the_documented_layers_are_the_tested_ones():
    text = (REPO / "docs" / "architecture.md").read_text()
    block = text.split("<!-- layers: checked by tests/test_architecture.py -->")[1].split("```")[1]
    documented = [line.split(":")[0].strip() for line in block.strip().splitlines()]
    assert documented == [name for name, _ in reversed(LAYERS)]
    for name, prefixes in LAYERS:
        row = next(line for line in block.splitlines() if line.strip().startswith(name + ":"))
        for prefix in prefixes:
            assert prefix.removeprefix("trainkit.") in row, (name, prefix)


def test_no_layer_or_optimizer_reads_how_the_work_is_split():
    """The maths in front, the threading below: only ``nn/schedule.py`` knows the plan (the
    thread count, whether the model splits its work) and the threads; a layer declares its work
    with ``over_batch`` and never cuts the batch or branches on a setting."""
    below = re.compile(r"\b(current_plan|_plan|planned|Plan|on_threads|threading|batch_parts|"
                       r"value_parts|splitting|set_threads|split_batch)\b")
    found = []
    for path in sorted((REPO / "trainkit" / "nn").glob("*.py")):
        if path.name in ("parallel.py", "schedule.py", "workers.py", "__init__.py"):
            continue
        found += [f"{path.name}:{n}: {line.strip()}" for n, line in
                  enumerate(path.read_text().splitlines(), 1) if below.search(line)]
    found += [f"plugins/{p.name}:{n}" for p in (REPO / "plugins").glob("optimizers.py")
              for n, line in enumerate(p.read_text().splitlines(), 1) if below.search(line)]
    assert not found, "\n".join(found)


def test_the_profiler_times_run_hooks_only():
    from trainkit.hookspecs import RUN_HOOKS
    from trainkit.loop.profiler import TIMED_HOOKS

    assert set(TIMED_HOOKS) <= set(RUN_HOOKS)


def test_no_module_is_over_400_lines_and_the_trainer_under_350():
    sizes = {path.relative_to(REPO).as_posix(): len(path.read_text().splitlines())
             for path in [*(REPO / "trainkit").rglob("*.py"), *(REPO / "plugins").rglob("*.py")]}
    assert not {path: n for path, n in sizes.items() if n > 400}
    assert sizes["trainkit/loop/trainer.py"] < 350
