"""The code stays one a newcomer can follow: short functions (ruff's C901 holds complexity at 15,
pyproject.toml) and no import cycle between the package's modules at import time."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "poolscope"
MAX_LINES = 80


def test_no_function_in_src_is_longer_than_80_lines():
    long = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}: {lines}")
    assert not long, "functions over 80 lines:\n" + "\n".join(long)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _run_on_import(statements: list[ast.stmt]) -> list[ast.stmt]:
    """The statements that run when the module is imported: not function or class bodies'
    code that runs later, not what ``if TYPE_CHECKING`` guards."""
    found = []
    for statement in statements:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(statement, ast.If) and "TYPE_CHECKING" in ast.dump(statement.test):
            found += _run_on_import(statement.orelse)
            continue
        found.append(statement)
        for field in ("body", "orelse", "finalbody", "handlers"):
            found += _run_on_import(getattr(statement, field, []))
    return found


def _imported_at_module_level(path: Path, name: str, modules: set[str]) -> set[str]:
    """The package's modules this one imports when it is imported."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _run_on_import(ast.parse(path.read_text(encoding="utf-8")).body):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = {f"{target}.{a.name}" for a in node.names} & modules
            found |= submodules
            if target in modules and len(submodules) < len(node.names):
                found.add(target)  # a name defined in the module (or package) itself
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
    return found - {name}


def test_no_module_level_import_cycle_in_the_package():
    paths = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph = {name: _imported_at_module_level(p, name, set(paths)) for name, p in paths.items()}
    state: dict[str, str] = {}  # "open" while on the path, "done" after

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                return [*path, name, target]
            if target not in state and (cycle := visit(target, [*path, name])):
                return cycle
        state[name] = "done"
        return None

    for name in sorted(graph):
        if name not in state:
            cycle = visit(name, [])
            assert cycle is None, "import cycle: " + " → ".join(cycle)
    assert len(graph) > 40 and sum(map(len, graph.values())) > 100  # the walk found the imports


def test_the_readme_layout_names_every_module_and_package():
    """A newcomer finds each module in the README's layout, under its package."""
    readme = (SRC.parent.parent / "README.md").read_text(encoding="utf-8")
    layout = readme[readme.index("## Layout"):]
    layout = layout[:layout.index("```", layout.index("```") + 3)]
    missing = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC)
        if relative.name == "__init__.py":
            continue
        top = relative.parts[0]
        if len(relative.parts) > 1 and top not in ("measure",):
            # analysis/, backends/, present/: the package is named and described as a whole
            if f"{top}/" not in layout:
                missing.append(f"{top}/")
            continue
        if relative.name not in layout:
            missing.append(str(relative))
    assert not missing, "not in the README's layout: " + ", ".join(missing)
    assert "measure/" in layout
