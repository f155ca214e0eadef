"""How the package is put together: no import cycle between its modules, no module reaching
into another's private names (a leading underscore means: only this module uses it), and no file
or function too long to read at once."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "duck_synth"


def modules() -> dict[str, tuple[Path, ast.Module]]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = (path, ast.parse(path.read_text()))
    return found


def imported(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute name a relative ``from ... import`` reads."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports when it is loaded (top-level imports only:
    an import inside a function runs later and cannot make a cycle at load time)."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for module, (path, tree) in known.items():
        targets = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level:
                base = imported(module, path, node)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in known else base)
        graph[module] = {t for t in targets if t in known and t != module}
    return graph


def test_no_import_cycle_between_modules():
    graph = import_graph()
    state: dict[str, str] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_no_module_imports_another_modules_private_names():
    reaching = []
    for module, (_, tree) in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        reaching.append(f"{module} imports {alias.name} from {node.module}")
    assert reaching == []


def test_the_graph_sees_real_imports():
    """The check above would pass on an empty graph: make sure it reads the imports."""
    graph = import_graph()
    assert "duck_synth.surface" in graph["duck_synth.access"]
    assert "duck_synth.interface" in graph["duck_synth.remote"]


# -- size: a file or a function too long to read at once is split --------------------------------
MAX_FILE_LINES, MAX_FUNCTION_LINES = 450, 80
# "path relative to duck_synth/" or "path:qualified.name" -> why it may be longer. At most three
# entries, each with its reason; none is needed today.
SIZE_EXCEPTIONS: dict[str, str] = {}


def test_exceptions_to_the_size_rule_are_few_and_explained():
    assert len(SIZE_EXCEPTIONS) <= 3
    assert all(reason.strip() for reason in SIZE_EXCEPTIONS.values())


def long_functions(tree: ast.Module) -> list[tuple[str, int]]:
    """(qualified name, lines) of every def (methods and nested ones too) over the limit."""
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = prefix
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                lines = child.end_lineno - child.lineno + 1
                if not isinstance(child, ast.ClassDef) and lines > MAX_FUNCTION_LINES:
                    found.append((name, lines))
                name += "."
            visit(child, name)

    visit(tree, "")
    return found


def test_no_file_over_450_lines_and_no_function_over_80():
    too_long = []
    for path, tree in modules().values():
        where = path.relative_to(PACKAGE).as_posix()
        lines = len(path.read_text().splitlines())
        if lines > MAX_FILE_LINES and where not in SIZE_EXCEPTIONS:
            too_long.append(f"{where}: {lines} lines")
        for name, length in long_functions(tree):
            if f"{where}:{name}" not in SIZE_EXCEPTIONS:
                too_long.append(f"{where}:{name}: {length} lines")
    assert too_long == [], f"over {MAX_FILE_LINES} lines a file or {MAX_FUNCTION_LINES} a def"
