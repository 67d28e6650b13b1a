"""Permission denied on a device node, for real: the file is there, we may not open it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import sys
from drivers.printer import ReceiptPrinter
from drivers.grbl import Engraver
print(ReceiptPrinter("file://" + sys.argv[1]).state().message)
print(Engraver("serial://" + sys.argv[1]).state().message)
"""


def test_permission_denied_says_which_group(tmp_path):
    node = tmp_path / "ttyUSB0"
    node.write_bytes(b"")
    os.chmod(node, 0o600)
    cmd = [sys.executable, "-c", PROBE, str(node)]
    if os.geteuid() == 0:
        # root ignores file modes; drop the capabilities that let it, as a service user lacks
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: cannot show permission denied")
        os.chown(node, 65534, 65534)
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *cmd]
    else:
        os.chmod(node, 0o000)
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    printer, engraver = run.stdout.splitlines()
    assert "permission denied" in printer and "dialout/lp group" in printer
    assert "permission denied" in engraver and f"serial://{node}" in engraver
