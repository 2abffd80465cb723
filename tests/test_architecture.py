"""What the layout promises (app/auth/README.md, ../shared/STYLE.md), checked on the source:
arrows between packages point one way, the core knows no domain, fastapi-users stays in
app/auth, services reach each other through typed state, and SQL stays in repositories."""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app"
MAX_LINES = 400
# Composition roots: they import every package, and nothing imports them.
ENTRY = {"app.main", "app.__main__"}


def modules() -> Iterator[tuple[str, Path, ast.Module]]:
    for path in sorted(APP.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path, ast.parse(path.read_text(encoding="utf-8"))


def imported(tree: ast.Module) -> Iterator[str]:
    """Every module an import names, those under `if TYPE_CHECKING:` included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def node(module: str) -> str:
    """A package of app/ is one node (`app.auth`, subpackages included); a module at the
    top of app/ is one of its own (`app.db`)."""
    return ".".join(module.split(".")[:2])


def known(name: str) -> bool:
    parts = name.split(".")
    path = APP.joinpath(*parts[1:])
    return parts[0] == "app" and (path.is_dir() or path.with_suffix(".py").exists())


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, _path, tree in modules():
        if name in ENTRY:
            continue
        source = node(name)
        for target in imported(tree):
            if target.startswith("app.") and known(target) and node(target) != source:
                edges.setdefault(source, set()).add(node(target))
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
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

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_the_packages_of_app():
    assert cycles(graph()) == []


def test_the_core_modules_import_no_package_of_app():
    # app/*.py (config, db, errors, state...) are what every package builds on.
    for name, path, tree in modules():
        if path.parent != APP or name in ENTRY or name == "app":
            continue
        packages = {t for t in imported(tree) if t.startswith("app.") and (APP / t.split(".")[1]).is_dir()}
        assert packages == set(), f"{name} imports {sorted(packages)}"


def test_fastapi_users_is_imported_only_inside_app_auth():
    for name, _path, tree in modules():
        if any(t == "fastapi_users" or t.startswith("fastapi_users") for t in imported(tree)):
            assert name.startswith("app.auth"), name


def test_app_state_is_read_in_one_place():
    for name, _path, tree in modules():
        for attribute in ast.walk(tree):
            if isinstance(attribute, ast.Attribute) and attribute.attr == "state":
                assert name == "app.state", f"{name} reads .state (use app.state.state_of)"


def test_only_the_unit_of_work_commits():
    for name, _path, tree in modules():
        for call in ast.walk(tree):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute):
                if call.func.attr == "commit":
                    assert name == "app.db", f"{name} commits"


SQL_BUILDERS = {"select", "insert", "update", "delete", "text"}


@pytest.mark.parametrize("builder", sorted(SQL_BUILDERS))
def test_sql_statements_are_built_only_in_repositories(builder):
    for name, _path, tree in modules():
        if name.endswith(".repository") or name == "app.db":
            continue
        for found in ast.walk(tree):
            if isinstance(found, ast.ImportFrom) and found.module and found.module.startswith("sqlalchemy"):
                names = {alias.name for alias in found.names}
                assert builder not in names, f"{name} imports sqlalchemy's {builder}"


def test_no_file_of_the_app_or_the_benchmarks_is_over_400_lines():
    for path in [*APP.rglob("*.py"), *(ROOT / "bench").rglob("*.py")]:
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= MAX_LINES, f"{path.relative_to(ROOT)}: {lines} lines"
