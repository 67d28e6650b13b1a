"""Every event type name is defined once, in appliance/events.py (issue 12, item 1).

Scans the source of every package for a string literal spelling a known event type:
each must be spelled through the constant instead, so renaming a type is one edit and
a typo is an AttributeError, not a silently different event.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from appliance import events

ROOT = Path(__file__).resolve().parents[2]
# every first-party package (the import contracts' list)
PACKAGES = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
    "importlinter"
]["root_packages"]
TYPE_NAMES = {
    value
    for name, value in vars(events).items()
    if name.isupper() and isinstance(value, str) and events.valid_type_name(value)
}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string nodes that are docstrings (prose may name a type)."""
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.add(id(value))
    return found


def test_the_core_lists_the_types_the_other_packages_record():
    assert {"device.fault", "power.lost", "engraving.started", "consent.recorded"} <= TYPE_NAMES


def test_no_package_spells_an_event_type_outside_appliance_events():
    spelled = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "appliance" / "events.py":
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            skip = _docstrings(tree)
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Constant)
                    and node.value in TYPE_NAMES
                    and id(node) not in skip
                ):
                    spelled.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert not spelled, "use the constant from appliance.events:\n" + "\n".join(spelled)
