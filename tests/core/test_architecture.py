"""The code's shape, read from the source: where SQL may live, and no import cycles.

Both checks read the files as Python syntax trees (not by importing them), so they
see imports inside functions too, which is where a cycle hides.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
# Every package the contracts cover (and the test below: every package that is installed).
PACKAGES = tuple(sorted(PYPROJECT["tool"]["importlinter"]["root_packages"]))

# The storage modules: the one home of each database's SQL (a folder: every module in it).
SQL_HOMES = {
    "appliance/log.py",  # the till's event log
    "appliance/projections.py",  # its derived tables
    "appliance/queries.py",  # the named reads the layers above ask for
    "appliance/schema.py",  # the DDL
    "edge/store/",  # the region's database, one module per group of tables
    "console/reports/store.py",  # the tax and promoter reports' reads and their own tables
    "sync_agent/store.py",  # the agent's own agent.db
    "console/queries.py",  # the console's scoped reads of the region's data
    "console/tables.py",  # the console's own tables (users, sessions, audit, receipt index)
}
# The test harness reads the databases itself on purpose: a checker must not go through
# the code it checks, or a wrong named query would pass its own test.
SQL_IN_TEST_HARNESS = {
    "systest/postgres.py",
    "systest/reports.py",
    "systest/sync.py",
}

_SQL_TEXT = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|PRAGMA)\s+\S", re.ASCII
)
_SQL_CALLS = {"execute", "executemany", "executescript"}


def test_every_installed_package_is_under_the_import_contracts() -> None:
    installed = {
        p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert installed == set(PACKAGES), "name the package in [tool.importlinter] root_packages"
    assert all((ROOT / pkg / "__init__.py").is_file() for pkg in PACKAGES)


def _sources() -> list[Path]:
    return sorted(
        p for pkg in PACKAGES if (ROOT / pkg).is_dir() for p in (ROOT / pkg).rglob("*.py")
    )


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def sql_in(source: str) -> list[str]:
    """Where ``source`` runs SQL or spells a statement: ``line: what`` for each."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if _SQL_TEXT.match(node.value):
                found.append((node.lineno, repr(node.value.strip()[:50])))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in _SQL_CALLS:
                found.append((node.lineno, f".{node.func.attr}(...)"))
            elif node.func.attr == "connect" and ast.unparse(node.func.value) == "sqlite3":
                found.append((node.lineno, "sqlite3.connect(...)"))
    return [f"{line}: {what}" for line, what in sorted(found)]


def test_the_detector_sees_sql_in_strings_and_calls() -> None:
    code = (
        "def f(log):\n"
        "    log.conn.execute('SELECT seq FROM refunds WHERE receipt_no = ?', (1,))\n"
        "    q = f'UPDATE devices SET n = {1}'\n"
        "    import sqlite3\n"
        "    sqlite3.connect('x.db')\n"
        "    return 'Select a receipt to reprint'\n"
    )
    assert [line.split(":")[0] for line in sql_in(code)] == ["2", "2", "3", "5"]


def _is_sql_home(rel: str) -> bool:
    return rel in SQL_HOMES or any(h.endswith("/") and rel.startswith(h) for h in SQL_HOMES)


def test_the_storage_modules_exist() -> None:
    # a home renamed or split must be named again here, not left allowing a file gone
    for rel in SQL_HOMES:
        assert (ROOT / rel).is_dir() if rel.endswith("/") else (ROOT / rel).is_file(), rel
    assert _is_sql_home("edge/store/sales.py") and not _is_sql_home("edge/storefront.py")


def _sql_cases() -> list[object]:
    cases = []
    for path in _sources():
        rel = _rel(path)
        if _is_sql_home(rel) or rel in SQL_IN_TEST_HARNESS:
            continue
        cases.append(pytest.param(path, id=rel))
    return cases


def test_the_harness_allow_list_names_only_existing_harness_files() -> None:
    for rel in SQL_IN_TEST_HARNESS:
        assert rel.startswith("systest/") and (ROOT / rel).is_file(), rel


@pytest.mark.parametrize("path", _sql_cases())
def test_no_sql_outside_the_storage_modules(path: Path) -> None:
    found = sql_in(path.read_text(encoding="utf-8"))
    assert not found, (
        f"{_rel(path)} runs SQL itself; give the core a named query in "
        f"appliance/queries.py (or the store's module) and call that: {found}"
    )


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """``node`` and every node below it, except under ``if TYPE_CHECKING:`` (never run)."""
    yield node
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and ast.unparse(child.test) in _TYPE_CHECKING:
            for other in child.orelse:
                yield from _runtime_nodes(other)
        else:
            yield from _runtime_nodes(child)


_TYPE_CHECKING = {"TYPE_CHECKING", "typing.TYPE_CHECKING"}


def import_graph(files: dict[str, str]) -> dict[str, set[str]]:
    """Module -> the first-party modules it imports when it runs (functions included,
    ``if TYPE_CHECKING:`` annotations-only imports not)."""
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, source in files.items():
        for node in _runtime_nodes(ast.parse(source)):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                # the code base imports absolutely only (a relative import fails here)
                assert node.level == 0, f"{name}:{node.lineno}: use an absolute import"
                base = node.module or ""
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_cycle_finder_sees_an_import_inside_a_function() -> None:
    files = {
        "pkg.a": "def f():\n    from pkg.b import g\n",
        "pkg.b": "from pkg import c\n\ndef g():\n    from pkg.a import f\n",
        "pkg.c": "import pkg.d\n",
        "pkg.d": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.c\n",
    }
    assert cycles(import_graph(files)) == [["pkg.a", "pkg.b"]]


def test_no_import_cycles_between_first_party_modules() -> None:
    files = {_module_name(p): p.read_text(encoding="utf-8") for p in _sources()}
    assert cycles(import_graph(files)) == [], "move the shared piece to a module both can import"
