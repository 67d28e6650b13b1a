"""The layers are enforced by import-linter in `make lint` (contracts in pyproject.toml).

The first test runs the real tool on the tree. The others copy the packages, add one
forbidden import each, and show that the tool then fails: a contract that cannot break
would prove nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "appliance",
    "drivers",
    "mqttio",
    "ui",
    "sync_agent",
    "edge",
    "compliance",
    "console",
    "systest",
)
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_the_tree_keeps_every_contract():
    run = _lint(ROOT)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "0 broken" in run.stdout


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("tree")
    shutil.copy(ROOT / "pyproject.toml", dest)
    for pkg in PACKAGES:
        shutil.copytree(
            ROOT / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.png", "*.mo")
        )
    return dest


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("appliance/_probe_up.py", "import drivers.printer", "front ends and services above"),
        ("drivers/_probe_up.py", "from ui import session", "front ends and services above"),
        (
            "edge/_probe_side.py",
            "import sync_agent.agent",
            "the region's edge and the till's sync agent",
        ),
        (
            "sync_agent/_probe_side.py",
            "from edge import ingest",
            "the region's edge and the till's sync agent",
        ),
        ("ui/_probe_side.py", "import drivers.grbl", "the drivers and the kiosk"),
        ("appliance/_probe_ext.py", "import paho.mqtt.client", "the core knows nothing"),
        ("edge/_probe_up.py", "import console.scope", "front ends and services above"),
        ("console/_probe_till.py", "import sync_agent.agent", "the region console stands"),
        ("edge/_probe_web.py", "import fastapi", "only the console knows the web"),
        (
            "edge/_probe_harness.py",
            "import systest.sync",
            "the product never imports the system-test",
        ),
    ],
)
def test_a_forbidden_import_breaks_lint(tree_copy, module, line, contract):
    probe = tree_copy / module
    probe.write_text(f"{line}\n")
    try:
        run = _lint(tree_copy)
    finally:
        probe.unlink()
    assert run.returncode != 0, run.stdout[-2000:]
    assert _verdicts(run.stdout).get(contract) == "BROKEN", run.stdout[-2000:]


def _verdicts(stdout: str) -> dict[str, str]:
    """{contract name prefix: KEPT|BROKEN}, from lines "NAME ... KEPT" (names may wrap)."""
    text = stdout.split("--------------------------------------", 1)[-1]
    found: dict[str, str] = {}
    pending = ""
    for line in text.splitlines():
        pending = f"{pending} {line.strip()}".strip()
        if pending.endswith((" KEPT", " BROKEN")):
            name, _, verdict = pending.rpartition(" ")
            found.update({key: verdict for key in CONTRACT_KEYS if name.startswith(key)})
            pending = ""
        elif not line.strip():
            pending = ""
    return found


CONTRACT_KEYS = (
    "front ends and services above",
    "the region's edge and the till's sync agent",
    "the drivers and the kiosk",
    "the core knows nothing",
    "the product never imports the system-test",
    "the region console stands",
    "only the console knows the web",
)
