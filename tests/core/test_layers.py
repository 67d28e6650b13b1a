"""The package layers of issue 12 (items 1 and 6), checked on the source's imports.

The integrator's import-linter contracts will state the whole picture; this pins the
part these moves made true: the formats live in the core, the MQTT plumbing in mqttio,
so the edge and the agent need nothing of each other, and the core needs neither.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "appliance": {"drivers", "ui", "sync_agent", "edge", "compliance", "mqttio", "systest"},
    "mqttio": {"drivers", "ui", "sync_agent", "edge", "compliance", "systest"},
    "edge": {"sync_agent", "systest", "ui"},
    "sync_agent": {"edge", "systest", "ui"},
    "compliance": {"sync_agent", "edge", "systest", "ui"},
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_nothing_from_the_packages_beside_or_above_it(package):
    crossings = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in sorted(_imports(path) & FORBIDDEN[package])
    ]
    assert not crossings, "\n".join(crossings)
