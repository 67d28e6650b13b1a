"""Shared helpers for the image tests: the repo's install map and a unit root to verify."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
FILES = REPO / "image-build" / "files.txt"
VENV_TILLBOX = "/opt/tillbox/venv/bin/tillbox"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "image: builds the SD-card image and boots it under QEMU (make image-test)"
    )


def install_map() -> list[tuple[str, str, str]]:
    """(source, destination, mode) of every repository file the image installs."""
    rows = []
    for line in FILES.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            src, dest, mode = line.split()
            rows.append((src, dest, mode))
    return rows


def unit_names() -> list[str]:
    """The unit files (not drop-ins) the image installs."""
    return [
        Path(dest).name
        for src, dest, _ in install_map()
        if dest.startswith("/usr/lib/systemd/system/") and dest.count("/") == 5
    ]


def make_unit_root(root: Path, overrides: dict[str, str] | None = None) -> Path:
    """Lay out ``root`` like the image: host units, our files from the install map, the
    venv's ``tillbox`` (the one executable the image build makes, not the repo), and a
    stub sshd unit for our drop-in. ``overrides`` maps an installed path to new text."""
    overrides = overrides or {}
    host_units = Path("/usr/lib/systemd/system")
    shutil.copytree(host_units, root / "usr/lib/systemd/system", symlinks=True)
    for src, dest, mode in install_map():
        target = root / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if dest in overrides:
            target.write_text(overrides[dest])
        else:
            shutil.copyfile(REPO / src, target)
        target.chmod(int(mode, 8))
    for exe in (VENV_TILLBOX, "/usr/sbin/sshd", "/usr/bin/rauc"):  # pip, openssh, rauc in the image
        path = root / exe.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    ssh = root / "usr/lib/systemd/system/ssh.service"
    if not ssh.exists():  # the host may have no openssh-server; the image does
        ssh.write_text(
            "[Unit]\nDescription=OpenBSD Secure Shell server\n\n[Service]\n"
            "ExecStartPre=/usr/sbin/sshd -t\nExecStart=/usr/sbin/sshd -D\n"
        )
    return root


def verify(root: Path, units: list[str]) -> tuple[int, str]:
    """``systemd-analyze verify`` against ``root``: exit status and everything it said.

    systemd-analyze exits 0 for many problems it only warns about (an unknown key, a
    value it cannot parse); a clean unit produces no output at all, so callers treat any
    output as a failure."""
    done = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", "--man=no", *units],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root / "usr/lib/systemd/system",
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )
    return done.returncode, (done.stdout + done.stderr).strip()


def load_provision() -> ModuleType:
    """systemd/provision.py as a module (it is installed as /usr/lib/tillbox/provision)."""
    spec = importlib.util.spec_from_file_location(
        "tillbox_provision", REPO / "systemd" / "provision.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["tillbox_provision"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def helpers() -> SimpleNamespace:
    """This module's helpers for the test files (conftest cannot be imported by name)."""
    return SimpleNamespace(
        REPO=REPO,
        install_map=install_map,
        unit_names=unit_names,
        make_unit_root=make_unit_root,
        verify=verify,
    )


@pytest.fixture(scope="session")
def provision_module() -> ModuleType:
    return load_provision()


@pytest.fixture
def host_tillbox() -> str:
    return str(Path(sys.executable).with_name("tillbox"))
