"""How the kiosk's code is laid out: screens in their own modules, no rules in the view.

These read the source (no Kivy needed): one module and one KV file per screen, a
small shell, dependencies given to the screens rather than fetched from the running
app, no SQL and no compliance imports in the view, no test facts in the screens.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

UI = Path(__file__).resolve().parents[2] / "ui"
SCREENS = UI / "screens"
SCREEN_NAMES = [
    "start",
    "sell",
    "pay",
    "receipt",
    "pers_pick",
    "pers_text",
    "pers_proof",
    "pers_sign",
    "engrave",
    "refund",
    "bookings",
    "shift",
    "inspect",
    "settings",
]
# ui/devices.py still starts compliance's self-test and bundle export on its worker; it is
# another change's file (drivers stop writing events). ui/cli.py is the composition root.
COMPLIANCE_ALLOWED = {"devices.py", "cli.py"}


def sources() -> list[Path]:
    return sorted(UI.rglob("*.py"))


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def screen_classes(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [n.name for n in tree.body if isinstance(n, ast.ClassDef) and n.name.endswith("Screen")]


@pytest.mark.parametrize("name", SCREEN_NAMES)
def test_each_screen_has_its_module_and_its_kv_rules_beside_it(name):
    module, kv = SCREENS / f"{name}.py", SCREENS / f"{name}.kv"
    assert module.is_file() and kv.is_file(), f"ui/screens/{name}.py and .kv"
    classes = screen_classes(module)
    assert len(classes) == 1, f"one screen per module: {classes}"
    rules = re.findall(r"^<(\w+)>:", kv.read_text(), re.M)
    assert classes[0] in rules, f"the <{classes[0]}> rule belongs in {kv.name}"
    assert "load_kv(__file__)" in module.read_text()


def test_the_app_module_is_a_shell_without_screens():
    app = UI / "app.py"
    assert screen_classes(app) == []
    assert len(app.read_text().splitlines()) < 320
    assert not (UI / "layout.kv").exists()


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(UI)))
def test_no_module_reaches_for_the_running_app(path):
    text = path.read_text()
    assert "get_running_app" not in text
    assert not re.search(r"(?<![\w.])app\(\)", text), "pass the KioskContext in instead"


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(UI)))
def test_no_sql_in_the_view(path):
    text = path.read_text()
    assert ".execute(" not in text and not re.search(r"\bSELECT\b", text), (
        "ask the core (appliance.inspection, Till) for what the screen shows"
    )


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(UI)))
def test_the_view_does_not_import_compliance(path):
    if path.name in COMPLIANCE_ALLOWED and path.parent == UI:
        return
    bad = sorted(m for m in imports(path) if m == "compliance" or m.startswith("compliance."))
    assert not bad, f"{path.name} imports {bad}; the workflow belongs in the core (appliance)"


@pytest.mark.parametrize("name", SCREEN_NAMES)
def test_screens_write_no_test_facts(name):
    text = (SCREENS / f"{name}.py").read_text()
    written = re.search(r"\b(?:ctx|a|app\(\))\.facts\b|\bfacts\[", text)
    assert not written and "perf_counter" not in text, (
        "announce what happened (ctx.announce); ui/probe.py turns it into test facts"
    )


def test_the_refund_scan_policy_and_engraving_records_are_the_cores():
    session = (UI / "session.py").read_text()
    assert "expected_fields" not in session and "verify_receipt_payload" not in session
    everything = "".join(p.read_text() for p in sources())
    assert 'record(f"engraving.' not in everything and '"engraving.started"' not in everything
    assert "record_consent" not in everything and "store_personal" not in everything
