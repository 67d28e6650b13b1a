"""Drivers move bytes: no driver module sees the till, writes an event or runs SQL.

The core's services (appliance.services) record what the drivers report. This reads
each module's syntax tree, so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import drivers

DRIVERS = sorted(Path(drivers.__file__).parent.glob("*.py"))
FORBIDDEN_MODULES = ("appliance.till", "appliance.log", "appliance.projections", "sqlite3")
FORBIDDEN_CALLS = {"record", "execute", "executemany", "executescript", "append"}


def problems(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
            if node.module == "appliance":
                names += [f"appliance.{alias.name}" for alias in node.names]
        else:
            names = []
        for name in names:
            if name.startswith(FORBIDDEN_MODULES):
                found.append(f"line {node.lineno}: imports {name}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in FORBIDDEN_CALLS - {"append"}
        ):
            found.append(f"line {node.lineno}: calls .{node.func.attr}(")
    return found


@pytest.mark.parametrize("path", DRIVERS, ids=lambda p: p.name)
def test_driver_module_moves_bytes_only(path):
    assert problems(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "source",
    [
        "from appliance.till import Till",
        "def f():\n    from appliance.till import Till",
        "import appliance.till",
        "from appliance import till",
        "def f(till):\n    till.record('x.y', {})",
        "def f(conn):\n    conn.execute('SELECT 1')",
        "import sqlite3",
    ],
)
def test_the_check_finds_each_kind_of_breach(source):
    assert problems(source)
