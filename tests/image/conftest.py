"""Shared helpers for the image tests: the repo's install map, a unit root to verify, and
the image itself (built once per run, or the one TILLBOX_IMAGE names)."""

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


IMAGE_BUILD_TIMEOUT_S = 5400


@pytest.fixture(scope="session")
def image_xz() -> Path:
    """The SD image to boot: TILLBOX_IMAGE (.img.xz, or the build's raw .img), or one
    built now by image-build/build.sh, once for every image test of the run."""
    import time
    import tomllib

    given = os.environ.get("TILLBOX_IMAGE")
    if given:
        return Path(given)
    started = time.monotonic()
    done = subprocess.run([str(REPO / "image-build" / "build.sh")], timeout=IMAGE_BUILD_TIMEOUT_S,
                          capture_output=True, text=True)  # fmt: skip
    print(f"\nimage build took {time.monotonic() - started:.0f} s")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    return REPO / "image-build" / "out" / f"tillbox-{version}.img.xz"


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
