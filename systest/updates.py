"""Release bundles and a real RAUC on file-backed slots, for the update tests.

* :class:`ReleaseKit`: a release key made by ``tillbox edge release keygen``'s code and
  bundles of small ext4 root file systems (``mke2fs -d``) signed with it by ``rauc``.
* :class:`RaucRig`: Debian's ``rauc service`` on a private D-Bus bus (never the
  machine's), with two 16 MiB files as slots A and B, its status in a folder, and
  libubootenv's ``fw_printenv``/``fw_setenv`` (what RAUC's U-Boot backend runs) on a
  U-Boot environment file. :meth:`RaucRig.power_on` boots the way the card would: RAUC's
  boot script (:func:`drivers.uboot.choose_slot`) picks the slot from that environment,
  and the service starts as the kernel command line ``rauc.slot=`` would tell it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from drivers import rauc, uboot
from edge import releases

TOOLS = ("rauc", "mksquashfs", "unsquashfs", "mke2fs", "openssl")
RIG_TOOLS = (*TOOLS, "dbus-daemon", "fw_printenv", "fw_setenv")
SLOT_SIZE = 16 << 20
READY_S = 30.0  # the service takes a fraction of a second; a loaded CI machine more


def missing(tools: tuple[str, ...] = TOOLS) -> list[str]:
    return [t for t in tools if shutil.which(t) is None]


def can_install() -> str:
    """Why real ``rauc install`` cannot run here ("" when it can): a plain bundle is
    mounted through a loop device, which takes root."""
    if os.geteuid() != 0:
        return "rauc install mounts the bundle (a loop device): needs root"
    if not Path("/dev/loop-control").exists():
        return "no loop devices (/dev/loop-control)"
    return ""


def rootfs_image(path: Path, files: dict[str, bytes], size_mib: int = 8) -> Path:
    """An ext4 image holding ``files`` (made without mounting anything)."""
    tree = path.with_name(path.name + ".d")
    shutil.rmtree(tree, ignore_errors=True)
    for name, data in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(data)
    subprocess.run(
        ["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(tree), str(path), f"{size_mib}M"],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(tree)
    return path


class ReleaseKit:
    """A release key in ``folder`` and the bundles signed with it."""

    def __init__(self, folder: Path, name: str = "tillbox test release") -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.key_path = folder / "release.key"
        self.cert = folder / "release.pem"
        if not self.key_path.exists():
            releases.keygen(self.key_path, self.cert, name)

    def rootfs(self, version: str) -> Path:
        """The root file system of ``version`` (made once: every bundle of it holds it)."""
        path = self.folder / f"rootfs-{version}.ext4"
        if path.exists():
            return path
        # a random-looking payload: a verity bundle's squashfs must exceed 4 KiB
        noise = os.urandom(24 * 1024)
        release = f"tillbox {version}\n".encode()
        return rootfs_image(path, {"etc/tillbox-release": release, "opt/tillbox/blob": noise})

    def bundle(
        self, version: str, compatible: str, *, bundle_format: str = "plain", name: str = ""
    ) -> Path:
        out = self.folder / (name or f"tillbox-{compatible}-{version}-{bundle_format}.raucb")
        if not out.exists():
            releases.build(
                self.rootfs(version),
                out,
                version=version,
                compatible=compatible,
                cert=self.cert,
                key=self.key_path,
                bundle_format=bundle_format,
            )
        return out


class RaucRig:
    """Real RAUC over file-backed A/B slots, booted by RAUC's U-Boot script."""

    def __init__(self, folder: Path, keyring: Path, compatible: str = "tillbox-test") -> None:
        self.folder = folder
        self.compatible = compatible
        folder.mkdir(parents=True, exist_ok=True)
        self.env_path = folder / "uboot.env"
        self.fw_config = folder / "fw_env.config"
        self.fw_config.write_text(f"{self.env_path} 0x0000 {uboot.ENV_SIZE:#x}\n")
        uboot.write(self.env_path, {"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3"})
        self.slots = {name: folder / f"slot-{name}.img" for name in uboot.BOOTNAMES}
        for path in self.slots.values():
            with open(path, "wb") as f:
                f.truncate(SLOT_SIZE)
        bin_dir = folder / "bin"
        bin_dir.mkdir(exist_ok=True)
        for tool in ("fw_printenv", "fw_setenv"):
            wrapper = bin_dir / tool
            wrapper.write_text(f'#!/bin/sh\nexec {shutil.which(tool)} -c {self.fw_config} "$@"\n')
            wrapper.chmod(0o755)
        self.conf = folder / "system.conf"
        self.conf.write_text(
            rauc.system_conf(
                compatible,
                self.slots,
                keyring,
                folder / "rauc-data",
                mount_prefix=folder / "mnt",
            )
        )
        (folder / "mnt").mkdir(exist_ok=True)
        self.bus_socket = folder / "bus.sock"
        bus_conf = folder / "bus.conf"
        bus_conf.write_text(
            '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"'
            ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
            "<busconfig><type>session</type>"
            f"<listen>unix:path={self.bus_socket}</listen><auth>EXTERNAL</auth>"
            '<policy context="default"><allow send_destination="*" eavesdrop="true"/>'
            '<allow eavesdrop="true"/><allow own="*"/></policy></busconfig>\n'
        )
        self.env = dict(os.environ)
        self.env.update(
            DBUS_SESSION_BUS_ADDRESS=f"unix:path={self.bus_socket}",
            DBUS_STARTER_BUS_TYPE="session",  # rauc's switch from the system bus
            PATH=f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        )
        with open(folder / "dbus.log", "wb") as log:  # the child keeps its own copy
            self._bus = subprocess.Popen(
                ["dbus-daemon", "--nofork", f"--config-file={bus_conf}"],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self._service: subprocess.Popen | None = None
        self.booted: str | None = None
        self._wait(lambda: self.bus_socket.exists(), "the private D-Bus bus")

    def _wait(self, ready: object, what: str) -> None:
        deadline = time.monotonic() + READY_S
        while not ready():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not come up; see {self.folder}")
            time.sleep(0.05)

    def fw_printenv(self) -> dict[str, str]:
        """The environment as the real fw_printenv reads it."""
        out = subprocess.run(
            ["fw_printenv"], env=self.env, capture_output=True, text=True, check=True
        ).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def power_on(self) -> str:
        """Run the boot script on the environment, then start RAUC on the booted slot."""
        self.power_off()
        chosen, env = uboot.choose_slot(uboot.read(self.env_path))
        uboot.write(self.env_path, env)
        if chosen is None:  # counters reset, board reset: the script runs again
            chosen, env = uboot.choose_slot(env)
            uboot.write(self.env_path, env)
        assert chosen is not None
        self.booted = chosen
        with open(self.folder / "service.log", "ab") as log:
            self._service = subprocess.Popen(
                ["rauc", "service", f"--conf={self.conf}", f"--override-boot-slot={chosen}"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self._wait(self._answers, "rauc service")
        return chosen

    def _answers(self) -> bool:
        if self._service is not None and self._service.poll() is not None:
            raise RuntimeError(f"rauc service exited; see {self.folder / 'service.log'}")
        probe = subprocess.run(
            ["rauc", "status", "--output-format=json"], env=self.env, capture_output=True
        )
        return probe.returncode == 0

    def power_off(self) -> None:
        """Pull the plug on the service (SIGKILL: no clean shutdown)."""
        if self._service is not None:
            if self._service.poll() is None:
                self._service.send_signal(signal.SIGKILL)
            self._service.wait()
            self._service = None

    def updater(self) -> rauc.RaucUpdater:
        return rauc.RaucUpdater(f"rauc://{self.conf}", env=self.env)

    def close(self) -> None:
        self.power_off()
        if self._bus.poll() is None:
            self._bus.terminate()
        self._bus.wait()
