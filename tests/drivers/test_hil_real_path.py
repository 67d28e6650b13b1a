"""The hil/ suite's [real] path, run against simulators in another process.

Proves the environment variables, URL handling and rig lock work the way a real rig
uses them (the simulators stand in for the hardware, across a process boundary).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_hil_suite_runs_against_devices_named_by_env(tmp_path):
    server = subprocess.Popen(
        [sys.executable, "-m", "drivers.simserve", "--speed", "200"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        urls = dict(server.stdout.readline().strip().split("=", 1) for _ in range(2))
        env = {
            **os.environ,
            "TILLBOX_HIL_PRINTER": urls["printer"],
            "TILLBOX_HIL_ENGRAVER": urls["engraver"],
            "TILLBOX_HIL_LOCK": str(tmp_path / "rig.lock"),
        }
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-k",
                "real",
                "hil/test_contract_printer.py",
                "hil/test_contract_engraver.py",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
        assert "9 passed" in run.stdout
        assert (tmp_path / "rig.lock").read_text().strip().isdigit()
    finally:
        server.terminate()
        server.wait(timeout=10)
