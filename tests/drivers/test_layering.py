"""Drivers move bytes: no driver module sees the till, writes an event or runs SQL.

The core's services (appliance.services) record what the drivers report. And one module,
drivers/layout.py, composes every printed document's ESC/POS. This reads each module's
syntax tree, so a lazy import inside a function counts too.
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


# -- one layout module for everything printed (issue 12, item 3) ----------------------------
ROOT = Path(drivers.__file__).resolve().parents[1]
PRODUCT = ("appliance", "compliance", "console", "drivers", "edge", "mqttio", "sync_agent", "ui")
LAYOUT = "drivers/layout.py"
# escpos itself: the layout (composes), the printer (its transports) and the simulator
# (reads what was sent). Nothing else imports it.
ESCPOS_USERS = {LAYOUT, "drivers/printer.py", "drivers/escpos_sim.py"}


def composing(source: str, rel: str) -> list[str]:
    """Where ``source`` composes ESC/POS itself: a document of its own (``new_document()``),
    escpos imported, or an ESC or GS command spelled as bytes."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "new_document" and rel != LAYOUT:
                found.append(f"line {node.lineno}: new_document()")
        elif isinstance(node, ast.Import | ast.ImportFrom) and rel not in ESCPOS_USERS:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            if any((n or "").split(".")[0] == "escpos" for n in names):
                found.append(f"line {node.lineno}: imports escpos")
        elif isinstance(node, ast.Constant) and isinstance(node.value, bytes):
            if (b"\x1b" in node.value or b"\x1d" in node.value) and rel not in ESCPOS_USERS:
                found.append(f"line {node.lineno}: ESC/GS bytes {node.value[:8]!r}")
    return found


@pytest.mark.parametrize(
    "path",
    sorted(p for pkg in PRODUCT for p in (ROOT / pkg).rglob("*.py")),
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_only_the_layout_module_composes_printed_documents(path):
    rel = path.relative_to(ROOT).as_posix()
    assert composing(path.read_text(encoding="utf-8"), rel) == [], (
        f"{rel} builds printer bytes; lay the document out in {LAYOUT}"
    )


@pytest.mark.parametrize(
    "source",
    [
        "def f(p):\n    doc = p.new_document()",
        "def f():\n    from escpos.printer import Dummy",
        "import escpos",
        "CUT = b'\\x1dV\\x00'",
        "KICK = b'\\x1bp\\x00\\x19\\xfa'",
    ],
)
def test_the_layout_check_finds_each_kind_of_composing(source):
    assert composing(source, "ui/devices.py")
